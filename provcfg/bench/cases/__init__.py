"""The built-in cases of ``provcfg bench``, one small module per family.

Adding a case (or a family): create ``provcfg/bench/cases/NAME.py`` with a module
docstring and a module-level ``CASES: list[Case]``. The registry imports every module
of this package, so nothing else changes. A case is a
:class:`~provcfg.bench._case.Case`: a dotted name (``FAMILY.WHAT``; the family
groups it in tables and reports), a title, a ``build(ctx)`` async context manager
yielding its :class:`~provcfg.bench._case.Contender` list (exactly one
``reference``, the provcfg code as ``subject``), its suites, and a ``threshold``
wider than 10 % if ``provcfg bench --calibrate`` shows the quick suite cannot
resolve 10 % on it. ``statement_contender`` times a Python statement with timeit;
``async_contender`` times an awaited operation. Subjects must put ``ctx.spin`` (when
set) inside their timed operation: that is how the gate's power is measured.
docs/performance.md, "Adding a case", has a complete example.
"""
