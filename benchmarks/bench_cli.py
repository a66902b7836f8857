"""CLI runner benchmarks: per-line overhead and first-chunk latency, side by side in one run.

1. Per line: the same NDJSON output (``cat`` of a file, so the producer is never the
   bottleneck) read by a bare ``asyncio`` readline loop, by readline + ``json.loads``,
   by :class:`CliProcess.events` and by the claude-code provider (text deltas ->
   chunks, through BaseProvider's wrapper). Reported in microseconds per line.
2. First chunk: a tiny ``/bin/sh`` CLI printing one stream-json line, spawned by
   hand (create_subprocess_exec, prompt on stdin, first readline) versus the
   claude-code provider's first chunk. Runs alternate; medians compared.
3. The same with the real ``claude`` (tools/clis) against ``provcfg stub``, when
   installed. Budget: provider first chunk <= by hand + 2 ms.

Run: ``.venv/bin/python benchmarks/bench_cli.py [--lines N] [--runs N] [--real-runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provcfg._manifest import ClaudeCodeSpec
from provcfg._metrics import Metrics
from provcfg._providers._subprocess import CliCommand, CliProcess, minimal_env
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg.testing import make_context

ROOT = Path(__file__).resolve().parent.parent
REAL_CLAUDE = ROOT / "tools" / "clis" / "node_modules" / ".bin" / "claude"
INIT = json.dumps({"type": "system", "subtype": "init", "session_id": "s", "model": "m"})
RESULT = json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "session_id": "s",
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "total_cost_usd": 0.0,
    }
)


def delta_line(i: int) -> str:
    return json.dumps(
        {
            "type": "stream_event",
            "event": {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"token {i} "},
            },
            "session_id": "s",
            "parent_tool_use_id": None,
        }
    )


def provider_for(cli: Path, env: dict[str, str] | None = None, **fields: Any) -> ClaudeCodeProvider:
    fields.setdefault("model", "claude-sonnet-4-5")
    spec = ClaudeCodeSpec(kind="claude-code", env=env or {}, **fields)
    ctx = make_context(spec, name="bench", cli_path=cli, metrics=Metrics())
    provider = ClaudeCodeProvider(ctx)
    provider.prepare_now()
    return provider


# --------------------------------------------------------------------------- per line


async def bare_readline(argv: list[str], parse: bool) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        limit=16 * 1024 * 1024,
    )
    assert proc.stdout is not None
    n = 0
    loads = json.loads
    while line := await proc.stdout.readline():
        if parse:
            loads(line)
        n += 1
    await proc.wait()
    return n


async def runner_events(argv: list[str]) -> int:
    n = 0
    async with CliProcess(CliCommand(argv=tuple(argv), env=minimal_env())) as proc:
        async for _ in proc.events():
            n += 1
        await proc.wait()
    return n


async def provider_chunks(cli: Path) -> int:
    provider = provider_for(cli, partial_messages=True)
    n = 0
    async for _ in provider.stream("go"):
        n += 1
    return n


async def per_line(lines: int, rounds: int, folder: Path) -> None:
    data = folder / "out.ndjson"
    with data.open("w") as f:
        f.write(INIT + "\n")
        for i in range(lines):
            f.write(delta_line(i) + "\n")
        f.write(RESULT + "\n")
    cli = folder / "cat-cli"
    cli.write_text(f"#!/bin/sh\nexec cat '{data}'\n")
    cli.chmod(0o755)
    argv = ["/bin/cat", str(data)]
    cases = {
        "bare readline": lambda: bare_readline(argv, parse=False),
        "readline + json.loads": lambda: bare_readline(argv, parse=True),
        "CliProcess.events()": lambda: runner_events(argv),
        "claude-code provider": lambda: provider_chunks(cli),
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, make in cases.items():
            start = time.perf_counter()
            await make()
            took = time.perf_counter() - start
            best[name] = min(best.get(name, took), took)
    total = lines + 2
    print(f"\nper line ({total} lines, best of {rounds}, microseconds per line):")
    for name, seconds in best.items():
        print(f"  {name:24s} {seconds / total * 1e6:7.3f} us")
    base = best["readline + json.loads"] / total * 1e6
    runner = best["CliProcess.events()"] / total * 1e6
    prov = best["claude-code provider"] / total * 1e6
    print(f"  runner vs readline+loads: {runner - base:+.3f} us/line (ratio {runner / base:.2f})")
    print(
        f"  runner vs bare readline:  {runner - best['bare readline'] / total * 1e6:+.3f} us/line"
    )
    print(f"  provider vs runner:       {prov - runner:+.3f} us/line (dispatch + chunk + wrapper)")


# --------------------------------------------------------------------------- first chunk


async def by_hand_first_line(argv: list[str], env: dict[str, str], cwd: str | None) -> float:
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
    proc.stdin.write(b"Say hello")
    proc.stdin.close()
    await proc.stdout.readline()
    took = time.perf_counter() - start
    while await proc.stdout.read(65536):
        pass
    await proc.wait()
    return took


async def provider_first_chunk(provider: ClaudeCodeProvider) -> float:
    start = time.perf_counter()
    stream = provider.stream("Say hello")
    await anext(stream)  # type: ignore[call-overload]
    took = time.perf_counter() - start
    async for _ in stream:
        pass
    return took


async def first_chunk(
    label: str,
    provider: ClaudeCodeProvider,
    argv: list[str],
    env: dict[str, str],
    cwd: str | None,
    runs: int,
) -> None:
    hand: list[float] = []
    ours: list[float] = []
    await by_hand_first_line(argv, env, cwd)  # warm caches (page cache, node compile cache)
    await provider_first_chunk(provider)
    for i in range(runs):
        # ABBA order, so neither side always runs right after the other's teardown.
        if i % 2:
            ours.append(await provider_first_chunk(provider))
            hand.append(await by_hand_first_line(argv, env, cwd))
        else:
            hand.append(await by_hand_first_line(argv, env, cwd))
            ours.append(await provider_first_chunk(provider))
    mh, mo = statistics.median(hand), statistics.median(ours)
    paired = statistics.median(o - h for o, h in zip(ours, hand, strict=True))
    q = statistics.quantiles(hand, n=4)
    print(f"\nfirst chunk, {label} ({runs} runs, ABBA order, medians):")
    print(f"  by hand (spawn + first line) {mh * 1e3:9.3f} ms  (IQR {(q[2] - q[0]) * 1e3:.3f} ms)")
    print(f"  claude-code provider         {mo * 1e3:9.3f} ms")
    verdict = "within" if paired <= 0.002 else "OVER"
    print(f"  median paired difference {paired * 1e3:+.3f} ms ({verdict} the +2 ms budget)")


async def fake_first_chunk(runs: int, folder: Path) -> None:
    cli = folder / "sh-cli"
    cli.write_text(f"#!/bin/sh\necho '{INIT}'\ncat >/dev/null\necho '{RESULT}'\n")
    cli.chmod(0o755)
    provider = provider_for(cli)
    argv = [str(cli), *provider.arguments("claude-sonnet-4-5", None, {})]
    await first_chunk("fake /bin/sh CLI", provider, argv, minimal_env(), None, runs)


async def real_first_chunk(runs: int) -> None:
    if not REAL_CLAUDE.exists():
        print("\nreal claude: not installed (scripts/install-clis.sh); skipped")
        return
    from provcfg.stub.process import StubProcess

    with StubProcess() as stub, tempfile.TemporaryDirectory() as home:
        env = {
            "ANTHROPIC_BASE_URL": stub.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-bench",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "HOME": home,
        }
        provider = provider_for(REAL_CLAUDE, env=env, cwd=home)
        argv = [str(REAL_CLAUDE), *provider.arguments("claude-sonnet-4-5", None, {})]
        await first_chunk("real claude vs stub", provider, argv, minimal_env(env), home, runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--real-runs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await per_line(args.lines, args.rounds, Path(tmp))
        await fake_first_chunk(args.runs, Path(tmp))
    if args.real_runs:
        await real_first_chunk(args.real_runs)


if __name__ == "__main__":
    import structlog

    # One log event per process would drown the numbers; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    asyncio.run(main())
