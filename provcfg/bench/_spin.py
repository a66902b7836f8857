"""The inserted slowdown of ``provcfg bench --calibrate``: a calibrated busy wait.

The gate's power is measured with a *real* slowdown: CPU work added inside the
operation under test, not a multiplied number. :class:`Spin` burns a given number of
seconds per call: a deadline loop on :func:`time.perf_counter` from 2 us up, a
counted ``for`` loop below that (one ``perf_counter`` call alone costs ~50 ns), and
for nanosecond-scale statements timed with :mod:`timeit`, :meth:`Spin.inline` gives
unrolled statements to paste into the timed statement itself (a function call would
cost more than the spin).
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

__all__ = ["Spin"]

_DEADLINE_FROM = 2e-6
_INLINE_LOOP_FROM = 1e-6
_STATEMENT = "_spin_v = _spin_v + 1"
_CPU = time.process_time


def _per_iteration() -> tuple[float, float]:
    """Seconds of one counted-loop call: (fixed part, per iteration)."""
    n = 2000

    def loop(r: range) -> None:
        for _ in r:
            pass

    # CPU time, not wall time: on a loaded machine a preempted calibration would
    # overstate the cost per iteration and so make every spin too short.
    big = min(timeit.repeat(lambda: loop(range(n)), timer=_CPU, number=50, repeat=5)) / 50
    small = min(timeit.repeat(lambda: loop(range(0)), timer=_CPU, number=2000, repeat=5)) / 2000
    return small, max((big - small) / n, 1e-10)


def _per_statement() -> float:
    n = 200
    setup = "_spin_v = 0"
    body = min(
        timeit.repeat("\n".join([_STATEMENT] * n), setup=setup, timer=_CPU, number=500, repeat=5)
    )
    empty = min(timeit.repeat("pass", setup=setup, timer=_CPU, number=500, repeat=5))
    return max((body - empty) / 500 / n, 1e-11)


class Spin:
    """Busy-wait ``seconds`` per call (or per pasted :meth:`inline` statement block)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        """Calibrate for ``seconds`` (> 0) on this machine, now, measured on ``clock``.

        ``clock``: the clock the spin is measured on; :func:`time.process_time` for a
        case timed in CPU seconds (a preempted spin then still burns its CPU time).
        """
        if seconds <= 0:
            raise ValueError(f"a spin needs a positive duration, got {seconds!r}")
        self.seconds = seconds
        self._clock = clock
        fixed, per = _per_iteration()
        self._range = range(max(0, round((seconds - fixed) / per)))
        self._statements = max(1, round(seconds / _per_statement()))

    def __call__(self) -> None:
        """Burn :attr:`seconds` of CPU in this thread."""
        if self.seconds >= _DEADLINE_FROM:
            clock = self._clock
            end = clock() + self.seconds
            while clock() < end:
                pass
            return
        for _ in self._range:
            pass

    def inline(self) -> tuple[str, dict[str, object]]:
        """Source of a statement block that burns :attr:`seconds`, and the globals it reads.

        Paste it into a :mod:`timeit` statement (``f"{op}\\n{block}"``) and merge the
        globals: no function call is added to the timed path.
        """
        if self.seconds < _INLINE_LOOP_FROM:
            return "_spin_v = 0\n" + "\n".join([_STATEMENT] * self._statements), {}
        if self.seconds < _DEADLINE_FROM:
            return "for _spin_i in _spin_range: pass", {"_spin_range": self._range}
        return "_spin()", {"_spin": self}

    def __repr__(self) -> str:
        return f"Spin({self.seconds * 1e6:.3f} us)"
