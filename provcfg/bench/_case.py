"""What a benchmark case is: contenders measured side by side against one in-run reference.

A :class:`Case` names its contenders and how to build them. Each contender is a
*time function*: called with a loop count, it runs the operation that many times and
returns a :class:`Sample` holding the seconds **per operation** (plus optional
extras such as first-chunk latency or RSS). The runner calibrates the loop count,
interleaves the contenders round by round in a rotating order, and compares each
one with the case's ``reference`` contender of the same round.

Roles: ``reference`` (exactly one: the yardstick, e.g. the SDK used directly or a
dict lookup), ``subject`` (provcfg's code: its ratio is gated), ``control`` (an
A/A copy of the reference: shows the run's own noise), ``floor`` and ``other``
(shown, never gated).

Adding a case: see :mod:`provcfg.bench.cases` (one small module per case family).
"""

from __future__ import annotations

import inspect
import time
import timeit
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from provcfg.bench._spin import Spin

__all__ = [
    "ROLES",
    "SUITES",
    "Budget",
    "Case",
    "CaseContext",
    "Contender",
    "Role",
    "Sample",
    "TimeFunc",
    "async_contender",
    "statement_contender",
]

Role = Literal["reference", "subject", "control", "floor", "other"]
ROLES: tuple[Role, ...] = ("reference", "subject", "control", "floor", "other")
SUITES = ("quick", "full")


@dataclass(frozen=True, slots=True)
class Sample:
    """One contender's measurement in one round: seconds per operation, and extras."""

    seconds: float
    extra: Mapping[str, float] = field(default_factory=dict)
    op_seconds: float | None = None
    """Seconds of one whole call when ``seconds`` is per unit (per chunk): what a
    calibration spin of 15 % is 15 % of. ``None``: the same as ``seconds``."""


TimeFunc = Callable[[int], "Awaitable[Sample] | Sample"]
"""``run(loops)``: perform the operation ``loops`` times; return seconds per operation."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One way of doing the case's operation."""

    name: str
    role: Role
    run: TimeFunc
    label: str = ""
    """One line for tables: what exactly runs (``rt.provider('api0')``)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A documented budget: on the ratio to the reference, or on the absolute time.

    ``contender``: whose figure it judges. ``max_ratio`` / ``min_rate_ratio``: the
    ratio (time) must be at most / the rate ratio (1 / time ratio) at least;
    ``max_seconds``: the absolute median seconds per operation; ``max_added``:
    the paired difference to the reference, seconds per operation. Absolute
    budgets are reported, never gated (they depend on the machine).
    """

    contender: str
    text: str
    max_ratio: float | None = None
    min_rate_ratio: float | None = None
    max_seconds: float | None = None
    max_added: float | None = None
    versus: str | None = None
    """Judge ``max_ratio`` against this contender instead of the reference."""


@dataclass(frozen=True)
class CaseContext:
    """What the runner hands a case while it builds its contenders.

    ``spin``: the inserted slowdown of a calibration run, ``None`` otherwise; a case
    puts it *inside its subjects' operation* (never the reference's). ``smoke``: build
    the smallest useful version (tests run every case this way). ``project``: the
    folder ``provcfg bench`` runs in (the real CLIs are looked up under
    ``tools/clis`` there).
    """

    spin: Spin | None = None
    smoke: bool = False
    project: Path = field(default_factory=Path.cwd)
    options: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.perf_counter
    """The case's clock (set by the runner from ``Case.clock``); time functions use it."""

    def slowed(self, role: Role) -> Spin | None:
        """The spin for a contender of ``role``: only subjects are slowed down."""
        return self.spin if role == "subject" else None

    def with_spin(self, spin: Spin | None) -> CaseContext:
        """The same context with ``spin`` inserted into the subjects (``None``: none)."""
        return replace(self, spin=spin)


Builder = Callable[[CaseContext], AbstractAsyncContextManager[Sequence[Contender]]]


@dataclass(frozen=True)
class Case:
    """A benchmark case; see the module docstring.

            ``rounds``: (minimum, maximum) rounds per suite; the runner stops adding rounds
            once ``seconds`` (per suite) have passed and the minimum is reached.
            ``sample_seconds``: target duration of one sample (the loop count is calibrated
            to reach it; 0 means one operation per sample). ``repeats``: samples per contender
            per round, interleaved; the round keeps each contender's fastest (interference on a
            shared machine only ever adds time, so the minimum of a few short samples is the
            least disturbed one). ``warmup``: untimed calls per contender first (imports,
        connections, caches). ``clock``: ``wall`` (:func:`time.perf_counter`) for latency,
        ``cpu`` (:func:`time.process_time`, this process's CPU) for in-process CPU-bound
        work: time other processes take from this one is not counted, so a loaded machine
        adds far less noise. ``gc_off``: no garbage collection while a sample runs (a full
    collection is made before each round instead), as :mod:`timeit` does for statements:
    for allocation-heavy in-process cases, where a collection landing in one sample and
    not the other is most of the noise. ``threshold``: the relative
            slowdown of a subject's ratio the gate fails on (0.10 = 10 %); a case that
            cannot resolve 10 % declares a wider one. ``rate_unit``: show ``1 / seconds``
            in this unit (``chunks/s``) instead of a time. ``requires``: returns why the
            case cannot run here (a missing CLI), or ``None``.
    """

    name: str
    title: str
    build: Builder
    suites: tuple[str, ...] = SUITES
    rounds: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"quick": (8, 30), "full": (20, 100)}
    )
    seconds: Mapping[str, float] = field(default_factory=lambda: {"quick": 4.0, "full": 20.0})
    sample_seconds: float = 0.005
    repeats: int = 1
    warmup: int = 2
    clock: Literal["wall", "cpu"] = "wall"
    gc_off: bool = False
    threshold: float = 0.10
    rate_unit: str | None = None
    budgets: tuple[Budget, ...] = ()
    note: str = ""
    requires: Callable[[CaseContext], str | None] | None = None
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", self.name.split(".", 1)[0])


def statement_contender(
    name: str,
    role: Role,
    stmt: str,
    namespace: Mapping[str, object],
    ctx: CaseContext,
    *,
    label: str = "",
) -> Contender:
    """A contender timing the Python statement ``stmt`` with :mod:`timeit` (GC off while timed).

    The statement is compiled into timeit's loop, so no function call is added around
    it; a subject's calibration spin is pasted in after it.
    """
    spin = ctx.slowed(role)
    names = dict(namespace)
    code = stmt
    if spin is not None:
        block, extra = spin.inline()
        code = f"{stmt}\n{block}"
        names.update(extra)
    timer = timeit.Timer(code, timer=ctx.clock, globals=names)

    def run(loops: int) -> Sample:
        return Sample(timer.timeit(loops) / loops)

    return Contender(name, role, run, label or stmt)


def async_contender(
    name: str,
    role: Role,
    operation: Callable[[], Awaitable[Mapping[str, float] | None]],
    ctx: CaseContext,
    *,
    label: str = "",
    per_operation: Callable[[Mapping[str, float]], float] | None = None,
) -> Contender:
    """A contender timing ``await operation()`` ``loops`` times on the case's clock.

    ``operation`` may return extras (``{"first_chunk": s, "chunks": n}``); each extra
    in the sample is the mean over the loop. ``per_operation``: divide the time by
    this (e.g. the chunk count, for seconds per chunk). A subject's calibration spin
    runs inside the timed region, once per operation.
    """
    spin = ctx.slowed(role)
    clock = ctx.clock

    async def run(loops: int) -> Sample:
        totals: dict[str, float] = {}
        elapsed = 0.0
        units = 0.0
        for _ in range(loops):
            start = clock()
            extra = await operation()
            if spin is not None:
                spin()
            elapsed += clock() - start
            extra = extra or {}
            for key, value in extra.items():
                totals[key] = totals.get(key, 0.0) + value
            units += per_operation(extra) if per_operation is not None else 1.0
        means = {key: value / loops for key, value in totals.items()}
        return Sample(elapsed / units if units else float("nan"), means, elapsed / loops)

    return Contender(name, role, run, label)


async def call(run: TimeFunc, loops: int) -> Sample:
    """Run a time function, awaiting it if it is a coroutine function's result."""
    result = run(loops)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Sample)
    return result
