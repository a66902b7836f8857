"""The inserted slowdown of ``provcfg bench --calibrate``: a calibrated amount of CPU work.

The gate's power is measured with a *real* slowdown: CPU work added inside the
operation under test, not a multiplied number. :class:`Spin` runs a counted ``for``
loop whose length is calibrated, once, to take a given number of CPU seconds on this
machine now. It is a fixed amount of *work*, not a deadline: when the machine runs
slower or faster later (a shared VM's speed moves by tens of per cent from one minute
to the next), the spin slows or speeds up with the operation it sits in, so a spin of
15 % stays 15 % of that operation. A deadline loop (burn until the clock has advanced
by the calibrated seconds) does not: the same seconds were 40 % of an operation in one
run and 110 % in the next once the machine sped up, which is what made the inserted
slowdowns of the wall-clock and whole-stream cases scatter from 1.1x to 2.6x of the
size asked in the first quiet-machine calibration. For nanosecond-scale statements
timed with :mod:`timeit`, :meth:`Spin.inline` gives unrolled statements or the loop
itself to paste into the timed statement (a function call would cost more than the
spin).
"""

from __future__ import annotations

import functools
import time
import timeit

__all__ = ["Spin"]

_INLINE_LOOP_FROM = 1e-6
_STATEMENT = "_spin_v = _spin_v + 1"
_CPU = time.process_time


# Both costs are measured once per process: they are the machine's, and every spin of a
# calibration must be the same amount of work per second asked. Measured again for each
# spin, a short window the VM's host slowed (CPU time still counts while another guest
# holds the core) made one spin 1.6x the work of the next. The minimum of 15 short
# windows is the least disturbed.
_REPEAT = 15


@functools.cache
def _per_iteration() -> tuple[float, float]:
    """CPU seconds of one counted-loop call: (fixed part, per iteration)."""
    n = 20_000

    def loop(r: range) -> None:
        for _ in r:
            pass

    # CPU time, not wall time: on a loaded machine a preempted calibration would
    # overstate the cost per iteration and so make every spin too short.
    big = min(timeit.repeat(lambda: loop(range(n)), timer=_CPU, number=10, repeat=_REPEAT)) / 10
    small = (
        min(timeit.repeat(lambda: loop(range(0)), timer=_CPU, number=2000, repeat=_REPEAT)) / 2000
    )
    return small, max((big - small) / n, 1e-10)


@functools.cache
def _per_statement() -> float:
    """CPU seconds of one pasted spin statement."""
    n = 200
    setup = "_spin_v = 0"
    block = "\n".join([_STATEMENT] * n)
    body = min(timeit.repeat(block, setup=setup, timer=_CPU, number=500, repeat=_REPEAT))
    empty = min(timeit.repeat("pass", setup=setup, timer=_CPU, number=500, repeat=_REPEAT))
    return max((body - empty) / 500 / n, 1e-11)


class Spin:
    """Run the CPU work that takes ``seconds`` on this machine now, per call (or per
    pasted :meth:`inline` statement block)."""

    def __init__(self, seconds: float) -> None:
        """Size a loop that takes ``seconds`` (> 0) of CPU on this machine (its costs are
        measured once per process)."""
        if seconds <= 0:
            raise ValueError(f"a spin needs a positive duration, got {seconds!r}")
        self.seconds = seconds
        fixed, per = _per_iteration()
        self._range = range(max(0, round((seconds - fixed) / per)))
        self._statements = max(1, round(seconds / _per_statement()))

    def __call__(self) -> None:
        """Run the calibrated loop in this thread (a fixed number of iterations)."""
        for _ in self._range:
            pass

    def inline(self) -> tuple[str, dict[str, object]]:
        """Source of a statement block that burns :attr:`seconds`, and the globals it reads.

        Paste it into a :mod:`timeit` statement (``f"{op}\\n{block}"``) and merge the
        globals: no function call is added to the timed path.
        """
        if self.seconds < _INLINE_LOOP_FROM:
            return "_spin_v = 0\n" + "\n".join([_STATEMENT] * self._statements), {}
        return "for _spin_i in _spin_range: pass", {"_spin_range": self._range}

    def __repr__(self) -> str:
        return f"Spin({self.seconds * 1e6:.3f} us)"
