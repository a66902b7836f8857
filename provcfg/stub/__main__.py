"""``python -m provcfg.stub``: the same as ``provcfg stub``, logging set up the same way."""

from __future__ import annotations

import sys

from provcfg._logs import configure
from provcfg.stub.command import main

if __name__ == "__main__":
    configure()  # a command: its log events go to stderr, as `provcfg stub`'s do
    sys.exit(main())
