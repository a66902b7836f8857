"""``python -m provcfg.stub``: the same as ``provcfg stub``."""

from __future__ import annotations

import sys

from provcfg.stub.command import main

if __name__ == "__main__":
    sys.exit(main())
