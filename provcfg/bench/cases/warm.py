"""Warm agent processes vs the CLI spawned by hand, and the syscall-free CLI lookup.

For each pinned real CLI (loopback-only network namespace, the stub), a provider with
``warm: {spares: 1}`` against the same CLI spawned by hand (the argv and environment
provcfg's cold path would use, the prompt on stdin): seconds to the first text the
caller sees. Before each timed request the provider's spare (or server) is ready and
idle; that wait is not timed. A Claude Code session's next turn is measured against a
cold ``--resume`` of a session by hand. ``clipath.watched`` times ``rt.cli_path()``
with the resolver's watcher against the fstat-checked hit.

benchmarks/bench_warm.py measures the same side by side with more contenders
(claude-agent-sdk's client and ``query()``, the npm launcher, the SDK's differences one
at a time); docs/performance.md has the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from provcfg.bench._case import (
    Budget,
    Case,
    CaseContext,
    Contender,
    Sample,
    TimeFunc,
    statement_contender,
)
from provcfg.bench.cases._fixtures import scratch, write
from provcfg.bench.cases.cli import REAL, _configure, real_cli

PROMPT = "Say hello."
_TEXT: dict[str, Callable[[Any], bool]] = {
    "claude-code": lambda o: (
        o.get("type") == "assistant"
        and any(b.get("type") == "text" for b in (o.get("message") or {}).get("content") or ())
    ),
    "codex": lambda o: (
        o.get("type") == "item.completed" and (o.get("item") or {}).get("type") == "agent_message"
    ),
    "opencode": lambda o: o.get("type") == "text",
}
_BUDGETS = {"claude-code": 0.15, "codex": 0.45, "opencode": 0.15}


async def first_text_by_hand(
    argv: list[str], env: dict[str, str], cwd: str, is_text: Callable[[Any], bool]
) -> float:
    """Spawn ``argv``, write the prompt, return the seconds to its first text line."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
        limit=64 * 2**20,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(PROMPT.encode())
    proc.stdin.close()
    first = None
    while line := await proc.stdout.readline():
        if first is None:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and is_text(obj):
                first = time.perf_counter() - start
    await proc.wait()
    if first is None:
        raise RuntimeError(f"{argv[0]} printed no text (exit {proc.returncode})")
    return first


async def first_text(stream: Any, spin: Callable[[], None] | None) -> float:
    """Seconds to the first text chunk of a provcfg stream (read to its end)."""
    start = time.perf_counter()
    first = None
    async for chunk in stream:
        if first is None and chunk.type == "text":
            if spin is not None:
                spin()
            first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the stream had no text")
    return first


def _timed(op: Callable[[], Awaitable[float]], before: Callable[[], Awaitable[None]]) -> TimeFunc:
    async def run(loops: int) -> Sample:
        total = 0.0
        for _ in range(loops):
            await before()  # the spare is ready and idle: not timed
            total += await op()
        return Sample(total / loops)

    return run


async def _nothing() -> None:
    return None


@asynccontextmanager
async def _rig(
    ctx: CaseContext, kind: str
) -> AsyncIterator[tuple[Any, list[str], dict[str, str], str]]:
    """A runtime with one warm provider of ``kind`` on the stub, and its cold argv by hand."""
    import provcfg
    from provcfg._providers._subprocess import minimal_env
    from provcfg.bench._netns import loopback_netns
    from provcfg.stub import StubProcess

    with ExitStack() as stack:
        stack.enter_context(loopback_netns())
        stub = stack.enter_context(StubProcess())
        folder = stack.enter_context(scratch())
        home, work = folder / "home", folder / "work"
        home.mkdir()
        work.mkdir()
        env, model = _configure(kind, stub.base_url, home, work)
        cli = real_cli(ctx, kind)
        spec = {
            "kind": kind,
            "path": str(cli),
            "model": model,
            "cwd": str(work),
            "env": env,
            "init": "eager",
            "warm": {"spares": 1, "idle_timeout": "1h", "max_age": "1h"},
        }
        manifest = {"version": 1, "providers": {"agent": spec}}
        rt = provcfg.load(write(folder, "providers.yaml", json.dumps(manifest)))
        try:
            await rt.warmup(timeout=600)
            instance: Any = rt.provider("agent").instance()
            cold = instance.command(_request(), instance.ctx.resolve_model(None))
            child_env = {**minimal_env(env), **cold.env}
            yield rt, list(cold.argv), child_env, str(work)
        finally:
            await rt.aclose()


def _request() -> Any:
    from provcfg._providers._cli import _Request

    return _Request(PROMPT, None, None, None, None, None, {})


def _first_text_case(kind: str) -> Case:
    def requires(ctx: CaseContext) -> str | None:
        cli = real_cli(ctx, kind)
        return None if cli.exists() else f"{cli} is not installed (scripts/install-clis.sh)"

    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        async with _rig(ctx, kind) as (rt, argv, env, cwd):

            async def ready() -> None:
                await asyncio.to_thread(rt.warm_pool.wait_ready, "agent", 300)
                await asyncio.sleep(0.5)

            spin = ctx.slowed("subject")
            yield [
                Contender(
                    "by-hand",
                    "reference",
                    _timed(lambda: first_text_by_hand(argv, env, cwd, _TEXT[kind]), _nothing),
                    f"{os.path.basename(argv[0])} spawned cold, prompt on stdin, first text",
                ),
                Contender(
                    f"warm-{kind}",
                    "subject",
                    _timed(lambda: first_text(rt.provider("agent").stream(PROMPT), spin), ready),
                    "rt.provider('agent').stream(): a ready spare or server, first text",
                ),
            ]

    ratio = _BUDGETS[kind]
    return Case(
        name=f"warm.real-{REAL[kind]}",
        title=f"real {REAL[kind]}: first text through a warm spare vs the CLI by hand",
        build=build,
        sample_seconds=0.0,
        warmup=1,
        rounds={"quick": (4, 6), "full": (8, 16)},
        seconds={"quick": 30.0, "full": 120.0},
        suites=("full",),
        threshold=0.30,
        requires=requires,
        budgets=(Budget(f"warm-{kind}", f"<= {ratio}x by hand", max_ratio=ratio),),
        note="the CLI's start-up dominates by hand; docs/performance.md explains codex's budget",
    )


def _session_case() -> Case:
    kind = "claude-code"

    def requires(ctx: CaseContext) -> str | None:
        cli = real_cli(ctx, kind)
        return None if cli.exists() else f"{cli} is not installed (scripts/install-clis.sh)"

    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        async with _rig(ctx, kind) as (rt, argv, env, cwd):
            done = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                cwd=cwd,
            )
            out, _ = await done.communicate(b"My name is Ada.")
            session_id = next(
                json.loads(ln)["session_id"] for ln in out.splitlines() if b'"result"' in ln
            )
            resume = [*argv, "--resume", session_id]
            session = rt.provider("agent").session()
            await session.__aenter__()
            try:
                async for _ in session.send("My name is Ada."):
                    pass
                spin = ctx.slowed("subject")
                yield [
                    Contender(
                        "resume-by-hand",
                        "reference",
                        _timed(lambda: first_text_by_hand(resume, env, cwd, _TEXT[kind]), _nothing),
                        "claude -p --resume SID spawned cold: a follow-up turn",
                    ),
                    Contender(
                        "session-turn",
                        "subject",
                        _timed(lambda: first_text(session.send("And now?"), spin), _nothing),
                        "the next turn of a provider.session() (the same process)",
                    ),
                ]
            finally:
                await session.aclose()

    return Case(
        name="warm.claude-session-turn",
        title="Claude Code: a session's next turn vs a cold --resume by hand",
        build=build,
        sample_seconds=0.0,
        warmup=1,
        rounds={"quick": (4, 6), "full": (8, 16)},
        seconds={"quick": 30.0, "full": 120.0},
        suites=("full",),
        threshold=0.30,
        requires=requires,
        budgets=(Budget("session-turn", "<= 0.15x a cold --resume", max_ratio=0.15),),
    )


@asynccontextmanager
async def _clipath(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import provcfg
    from provcfg._clipath import CliLookup, CLIResolver
    from provcfg._metrics import Metrics

    with scratch() as folder:
        tool = write(folder, "fake-agent", "#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
        text = f"version: 1\nproviders:\n  agent: {{kind: claude-code, path: '{tool}'}}\n"
        rt = provcfg.load(write(folder, "providers.yaml", text))
        plain = CLIResolver(Metrics())
        try:
            rt.cli_path("agent")
            await asyncio.to_thread(_until_watching, rt.cli_resolver)
            lookup = CliLookup(plain, "claude", str(tool), (), "", "agent")
            lookup.resolve()
            names = {"rt": rt, "lookup": lookup}
            yield [
                statement_contender("fstat-checked", "reference", "lookup.resolve()", names, ctx),
                statement_contender("watched", "subject", "rt.cli_path('agent')", names, ctx),
            ]
        finally:
            plain.close()
            await rt.aclose()


def _until_watching(resolver: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not resolver.watching and time.monotonic() < deadline:
        time.sleep(0.01)


CASES = [
    *(_first_text_case(k) for k in REAL),
    _session_case(),
    Case(
        name="clipath.watched",
        title="rt.cli_path() hit with the resolver's watcher vs the fstat-checked hit",
        build=_clipath,
        sample_seconds=0.002,
        repeats=5,
        suites=("quick", "full"),
        budgets=(
            Budget("watched", "<= 0.3 us, no system call", max_seconds=0.3e-6),
            Budget("watched", "<= 0.3x the fstat-checked hit", max_ratio=0.3),
        ),
    ),
]
