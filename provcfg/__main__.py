"""``python -m provcfg``: the same as the ``provcfg`` command."""

from provcfg._cli import main

raise SystemExit(main())
