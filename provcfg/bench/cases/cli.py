"""CLI providers vs spawning the same CLI by hand: first chunk and total.

With a fake CLI (a ``/bin/sh`` script printing the kind's JSON lines: the cheapest
real process, so what differs is provcfg) for claude-code, opencode and codex, and
with the real pinned CLIs (``tools/clis/node_modules/.bin``) against the stub inside
a loopback-only network namespace, when they are installed. By hand: the same argv
and environment, ``create_subprocess_exec``, the prompt on stdin, read to the first
line and then to the end. Rounds alternate the order (ABBA).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Sample, TimeFunc
from provcfg.bench.cases._fixtures import claude_lines, scratch, shell_cli, write

PROMPT = "Say hello"
_OPENCODE = [
    {"type": "step_start", "sessionID": "s", "part": {"type": "step-start"}},
    {"type": "text", "sessionID": "s", "part": {"type": "text", "text": "Hello from the stub."}},
    {
        "type": "step_finish",
        "sessionID": "s",
        "part": {"type": "step-finish", "reason": "stop", "tokens": {"input": 5, "output": 4}},
    },
]
_CODEX = [
    {"type": "thread.started", "thread_id": "t"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": "Hello."}},
    {"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 4}},
]
FAKE_LINES: dict[str, list[str]] = {
    "claude-code": claude_lines(3),
    "opencode": [json.dumps(e) for e in _OPENCODE],
    "codex": [json.dumps(e) for e in _CODEX],
}
REAL = {"claude-code": "claude", "opencode": "opencode", "codex": "codex"}


async def by_hand(
    argv: list[str], env: dict[str, str], cwd: str | None, spin: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Spawn ``argv``, write the prompt, read the first line then the rest: (first, total)."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(PROMPT.encode())
    proc.stdin.close()
    await proc.stdout.readline()
    first = time.perf_counter() - start
    while await proc.stdout.read(65536):
        pass
    await proc.wait()
    return first, time.perf_counter() - start


async def through_provider(provider: Any, spin: Callable[[], None] | None) -> tuple[float, float]:
    """The provider's first chunk (any type) and its whole stream: (first, total)."""
    start = time.perf_counter()
    stream = provider.stream(PROMPT)
    await anext(stream)
    if spin is not None:
        spin()
    first = time.perf_counter() - start
    async for _ in stream:
        pass
    return first, time.perf_counter() - start


def _timed(op: Callable[[], Any]) -> TimeFunc:
    async def run(loops: int) -> Sample:
        first = total = 0.0
        for _ in range(loops):
            f, t = await op()
            first += f
            total += t
        return Sample(first / loops, {"total": total / loops}, total / loops)

    return run


def _argv(handle: Any, cli: Path) -> list[str]:
    # The instance behind the runtime's handle builds the argv the provider passes.
    instance = getattr(handle, "instance", None)
    provider = instance() if callable(instance) else handle
    args = provider.arguments(provider.ctx.resolve_model(None), None, {})
    trailing = getattr(provider, "trailing_arguments", None)
    tail: list[str] = list(trailing()) if trailing is not None else []
    return [str(cli), *args, *tail]


def _spec_line(kind: str, cli: Path, env: dict[str, str], cwd: str | None, model: str) -> str:
    env_text = ", ".join(f"{k}: {json.dumps(v)}" for k, v in env.items())
    extra = f", cwd: {json.dumps(cwd)}" if cwd else ""
    return (
        f"  agent: {{kind: {kind}, command: {cli.name}, search_paths: ['{cli.parent}'], "
        f"model: {json.dumps(model)}, env: {{{env_text}}}{extra}}}\n"
    )


@asynccontextmanager
async def _contenders(
    ctx: CaseContext, kind: str, cli: Path, *, env: dict[str, str], cwd: str | None, model: str
) -> AsyncIterator[Sequence[Contender]]:
    import provcfg
    from provcfg._providers._subprocess import minimal_env

    with scratch() as folder:
        text = "version: 1\nproviders:\n" + _spec_line(kind, cli, env, cwd, model)
        rt = provcfg.load(write(folder, "providers.yaml", text))
        try:
            provider = rt.provider("agent")
            argv = _argv(provider, cli)
            child_env = minimal_env(env)
            spin = ctx.slowed("subject")
            yield [
                Contender(
                    "by-hand",
                    "reference",
                    _timed(lambda: by_hand(argv, child_env, cwd)),
                    "create_subprocess_exec, prompt on stdin, first line, then the rest",
                ),
                Contender(
                    f"provcfg-{kind}",
                    "subject",
                    _timed(lambda: through_provider(provider, spin)),
                    f"provcfg {kind} provider: first chunk, then the rest",
                ),
            ]
        finally:
            await rt.aclose()


def _fake(kind: str) -> Case:
    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        with scratch() as folder:
            cli = shell_cli(folder, f"fake-{kind}", FAKE_LINES[kind])
            async with _contenders(ctx, kind, cli, env={}, cwd=None, model="bench-model") as found:
                yield found

    return Case(
        name=f"cli.fake-{kind}",
        title=f"{kind} provider vs the same fake CLI spawned by hand: first chunk",
        build=build,
        sample_seconds=0.0,
        repeats=3,
        rounds={"quick": (12, 200), "full": (60, 600)},
        seconds={"quick": 5.0, "full": 30.0},
        suites=("quick", "full") if kind == "claude-code" else ("full",),
        budgets=(Budget(f"provcfg-{kind}", "<= +2 ms over by hand", max_added=2e-3),),
    )


def real_cli(ctx: CaseContext, kind: str) -> Path:
    """Where the pinned real CLI of ``kind`` is installed in the project."""
    return ctx.project / "tools" / "clis" / "node_modules" / ".bin" / REAL[kind]


def _configure(kind: str, base_url: str, home: Path, work: Path) -> tuple[dict[str, str], str]:
    """Environment and model that point the real CLI of ``kind`` at the stub only."""
    if kind == "claude-code":
        return {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-bench",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }, "claude-sonnet-4-5"
    if kind == "opencode":
        config = {
            "autoupdate": False,
            "share": "disabled",
            "provider": {
                "provcfg": {
                    "npm": "@ai-sdk/anthropic",
                    "name": "provcfg stub",
                    "options": {"baseURL": f"{base_url}/v1", "apiKey": "{env:PROVCFG_STUB_KEY}"},
                    "models": {"claude-sonnet-4-5": {"name": "claude-sonnet-4-5"}},
                }
            },
        }
        (work / "opencode.json").write_text(json.dumps(config))
        env = {
            "HOME": str(home),
            "PROVCFG_STUB_KEY": "sk-bench",
            "OPENCODE_CONFIG": str(work / "opencode.json"),
        }
        env.update(
            {
                f"OPENCODE_{k}": "1"
                for k in (
                    "DISABLE_MODELS_FETCH",
                    "DISABLE_DEFAULT_PLUGINS",
                    "DISABLE_AUTOUPDATE",
                    "DISABLE_LSP_DOWNLOAD",
                    "DISABLE_SHARE",
                    "DISABLE_CLAUDE_CODE",
                    "DISABLE_EXTERNAL_SKILLS",
                    "EXPERIMENTAL_DISABLE_FILEWATCHER",
                )
            }
        )
        return env, "provcfg/claude-sonnet-4-5"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model_provider = "provcfg"\ncheck_for_update_on_startup = false\n\n'
        '[model_providers.provcfg]\nname = "provcfg stub"\n'
        f'base_url = "{base_url}/v1"\nenv_key = "PROVCFG_STUB_KEY"\nwire_api = "responses"\n'
        "request_max_retries = 0\nstream_max_retries = 0\n\n[analytics]\nenabled = false\n"
    )
    return {
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "PROVCFG_STUB_KEY": "sk-bench",
    }, "gpt-5.5"


def _real(kind: str) -> Case:
    def requires(ctx: CaseContext) -> str | None:
        cli = real_cli(ctx, kind)
        if not cli.exists():
            return f"{cli} is not installed (scripts/install-clis.sh installs the pinned CLIs)"
        return None

    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
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
            async with _contenders(
                ctx, kind, real_cli(ctx, kind), env=env, cwd=str(work), model=model
            ) as found:
                yield found

    return Case(
        name=f"cli.real-{REAL[kind]}",
        title=f"real {REAL[kind]} against the stub (loopback-only netns): provider vs by hand",
        build=build,
        sample_seconds=0.0,
        rounds={"quick": (6, 10), "full": (20, 40)},
        seconds={"quick": 8.0, "full": 60.0},
        suites=("full",),
        threshold=0.30,
        requires=requires,
        budgets=(Budget(f"provcfg-{kind}", "<= +2 ms over by hand", max_added=2e-3),),
        note="node start-up and the CLI's own work dominate; the spread is tens of ms",
    )


CASES = [*(_fake(k) for k in FAKE_LINES), *(_real(k) for k in REAL)]


async def _read_lines(argv: list[str], parse: bool) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        limit=16 * 1024 * 1024,
    )
    assert proc.stdout is not None
    count = 0
    loads = json.loads
    while line := await proc.stdout.readline():
        if parse:
            loads(line)
        count += 1
    await proc.wait()
    return count


@asynccontextmanager
async def _per_line(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import provcfg

    lines = 2000 if ctx.smoke else 20000
    with scratch() as folder:
        data = write(folder, "out.ndjson", "\n".join(claude_lines(lines)) + "\n")
        cli = write(folder, "cat-claude", f"#!/bin/sh\nexec cat '{data}'\n")
        cli.chmod(0o755)
        text = (
            "version: 1\nproviders:\n"
            f"  agent: {{kind: claude-code, command: {cli.name}, search_paths: ['{cli.parent}'],"
            " partial_messages: true, model: bench-model}\n"
        )
        rt = provcfg.load(write(folder, "providers.yaml", text))
        argv = ["/bin/cat", str(data)]
        clock = ctx.clock
        spin = ctx.slowed("subject")

        def timed(op: Callable[[], Any], role_spin: Callable[[], None] | None) -> TimeFunc:
            async def run(loops: int) -> Sample:
                elapsed = 0.0
                for _ in range(loops):
                    start = clock()
                    await op()
                    if role_spin is not None:
                        role_spin()
                    elapsed += clock() - start
                per = lines + 2
                return Sample(elapsed / loops / per, op_seconds=elapsed / loops)

            return run

        async def through() -> None:
            async for _ in rt.provider("agent").stream(PROMPT):
                pass

        try:
            yield [
                Contender(
                    "readline+json.loads",
                    "reference",
                    timed(lambda: _read_lines(argv, True), None),
                    "asyncio readline + json.loads per line",
                ),
                Contender(
                    "provcfg-claude-code",
                    "subject",
                    timed(through, spin),
                    "claude-code provider: lines -> chunks (partial messages)",
                ),
                Contender(
                    "readline",
                    "floor",
                    timed(lambda: _read_lines(argv, False), None),
                    "asyncio readline alone",
                ),
            ]
        finally:
            await rt.aclose()


CASES.append(
    Case(
        name="cli.per-line",
        title="per output line: claude-code provider vs readline + json.loads (20,000 lines)",
        build=_per_line,
        clock="cpu",
        sample_seconds=0.0,
        repeats=2,
        rounds={"quick": (6, 20), "full": (20, 60)},
        seconds={"quick": 4.0, "full": 20.0},
        suites=("full",),
        note="this process's CPU per line (cat in its own process writes the lines)",
    )
)
