"""The soak: many streamed requests under faults, reloads, fallbacks and a breaker; nothing lost.

Run the long version (the figures in docs/reliability.md)::

    .venv/bin/python benchmarks/soak.py                       # 10,000 requests, 1,000 reloads
    .venv/bin/python benchmarks/soak.py --requests 600 --reloads 60 --json   # what CI runs

What runs, all real: the project's stub API server in a child process (loopback), a
watched manifest (``provcfg.watch``) with providers on both anthropic-api transports
and a fake agent CLI (tests/fake_clis/replay.py in its own process group), a
``flaky`` provider with a fallback and a circuit breaker, and ``--concurrency``
workers streaming requests chosen by a seeded random generator:

* plain answers; injected faults by the stub's model-name grammar: connection drops
  mid-stream, 429 and 529 with ``retry-after`` (persistent, and one-shot through the
  stub's fault queue so that the retry succeeds), in-stream overload errors, hangs
  (ended by the request's ``timeout``);
* CLI answers, CLI crashes (exit code and a stderr holding the CLI's secret; then the
  fallback answers, or, on a provider without one, the scrubbed ``cli_failed`` error
  reaches the caller), CLI hangs (ended by ``idle_timeout``, process group killed);
* the ``flaky`` provider in phases its breaker leads: a request that starts while the
  breaker is closed asks for a 529 ("down"), so the breaker opens and requests go
  straight to the fallback; one that starts while it is open or half-open asks for an
  answer ("up"), so the probe after the cooldown succeeds and the breaker closes; and
  so on for as long as the run lasts (phases counted in requests ended before the
  cooldown on a fast machine: the breaker opened but never closed). So ``flaky``
  itself answers only probes, and its closed, healthy path is not what this soaks;
* meanwhile a reloader rewrites the manifest ``--reloads`` times, in turn a good change
  (a spare provider's model), a bad one (an unknown fallback name) and an identical
  save, each followed by ``live.reload()`` while the folder watcher runs too.

Checked: every request ends in a complete answer (a ``result`` chunk) or a typed
``ProviderError`` within its watchdog; descriptors, threads, child processes and RSS
are sampled (start after warm-up, peak, end after the run) and must come back; the
breaker opened and closed; no planted secret appears in any log line, error message,
error detail, stderr tail or chunk. Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

import provcfg
from provcfg import ProviderError
from provcfg._resilience import BreakerEvent
from provcfg.stub import StubProcess

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "tests" / "fake_clis" / "replay.py"

API_SECRET = "sk-soak-SENTINEL-4f1c9a7e2b"
CLI_SECRET = "cli-soak-SENTINEL-8d3e6b0a51"
SECRETS = (API_SECRET, CLI_SECRET)
CLIS = ("cli", "cli_bare")

CLAUDE_INIT = {"type": "system", "subtype": "init", "session_id": "s", "model": "m", "tools": []}
CLAUDE_TEXT = {
    "type": "assistant",
    "message": {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "soak answer from the cli"}],
        "stop_reason": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
    "parent_tool_use_id": None,
    "session_id": "s",
}
CLAUDE_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "result": "soak answer from the cli",
    "session_id": "s",
    "total_cost_usd": 0.0,
    "usage": {"input_tokens": 1, "output_tokens": 1},
    "stop_reason": "end_turn",
}


def _lines(*events: object) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


SCENARIOS = {
    "ok": _lines("#!read_stdin", CLAUDE_INIT, CLAUDE_TEXT, CLAUDE_RESULT),
    # A crash that prints the secret it holds: provcfg must scrub it from every report.
    "crash": _lines(
        "#!read_stdin", f"#!stderr_text fatal: token {CLI_SECRET} rejected", "#!exit 3"
    ),
    "hang": _lines("#!read_stdin", CLAUDE_INIT, "#!ignore_term", "#!hang"),
}


def manifest_text(stub_url: str, cli: Path, scenarios: Path, spare_model: str, bad: bool) -> str:
    """The soak's manifest; ``spare_model`` is what good reloads change, ``bad`` breaks it."""

    def api(retries: int = 2, model: str = "claude-haiku-4-5") -> str:
        return (
            "    kind: anthropic-api\n"
            f"    base_url: {stub_url}\n"
            f"    api_key: {API_SECRET}\n"
            "    pool: soak\n"
            f"    max_retries: {retries}\n"
            "    retry_max_wait: 200ms\n"
            f"    model: {model}\n"
        )

    spare_fallback = "nowhere" if bad else "fast"
    return (
        "version: 1\n"
        "default_provider: fast\n"
        "pools:\n"
        "  soak: {max_connections: 200, max_keepalive_connections: 64}\n"
        "providers:\n"
        "  fast:\n" + api() + "    transport: fast\n"
        "    models: {down: claude-haiku-4-5, up: claude-haiku-4-5}\n"
        "  sdk:\n" + api() + "    transport: sdk\n"
        "  flaky:\n" + api(retries=0) + "    transport: fast\n"
        "    models: {down: stub-529-retry-after-0, up: claude-haiku-4-5}\n"
        "    fallbacks: [fast]\n"
        "    breaker: {failures: 5, window: 10s, cooldown: 500ms}\n"
        "  cli:\n"
        "    kind: claude-code\n"
        f"    path: {cli}\n"
        "    kill_grace: 200ms\n"
        "    idle_timeout: 1s\n"
        "    model: claude-sonnet-4-5\n"
        "    fallbacks: [fast]\n"
        f"    env: {{FAKE_SCENARIO_DIR: {scenarios}, SOAK_TOKEN: {CLI_SECRET}}}\n"
        "  cli_bare:\n"
        "    kind: claude-code\n"
        f"    path: {cli}\n"
        "    kill_grace: 200ms\n"
        "    idle_timeout: 1s\n"
        f"    env: {{FAKE_SCENARIO_DIR: {scenarios}, SOAK_TOKEN: {CLI_SECRET}}}\n"
        "  spare:\n" + api(model=spare_model) + "    transport: fast\n"
        f"    fallbacks: [{spare_fallback}]\n"
    )


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Plan:
    """One request: which provider, which model alias or fault, and its timeout."""

    provider: str
    model: str | None = None
    prompt: str = "soak"
    timeout: float | None = None
    queue_fault: str | None = None


def plan_for(rng: random.Random) -> Plan:
    """One request of the soak (seeded; the mix is in the module docstring)."""
    roll = rng.random()
    transport = "fast" if rng.random() < 0.6 else "sdk"
    if roll < 0.40:
        return Plan(transport)
    if roll < 0.46:
        return Plan(transport, model=f"claude-haiku-4-5-stub-drop-{rng.randint(1, 5)}")
    if roll < 0.50:
        return Plan(transport, model="claude-haiku-4-5-stub-429-retry-after-0")
    if roll < 0.53:
        return Plan(transport, model="claude-haiku-4-5-stub-529-retry-after-0")
    if roll < 0.58:
        return Plan(transport, queue_fault=rng.choice(["429-retry-after-0", "529-retry-after-0"]))
    if roll < 0.61:
        return Plan(transport, model="claude-haiku-4-5-stub-error-2")
    if roll < 0.63:
        return Plan("fast", model="claude-haiku-4-5-stub-hang", timeout=0.5)
    if roll < 0.635:
        return Plan("sdk", model="claude-haiku-4-5-stub-stall-2", timeout=0.5)
    if roll < 0.80:
        return Plan("flaky")  # the model is the breaker's phase when the request starts
    if roll < 0.92:
        return Plan("cli", prompt="ok please")
    if roll < 0.955:
        return Plan("cli", prompt="crash please")
    if roll < 0.97:
        # No fallback: the crash (its stderr holds the secret) reaches the caller.
        return Plan("cli_bare", prompt="crash please")
    return Plan("cli", prompt="hang please")


@dataclass
class Tally:
    """What the requests ended in."""

    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: list[str] = field(default_factory=list)
    by_provider: collections.Counter[str] = field(default_factory=collections.Counter)
    fallbacks: int = 0
    leaks: int = 0
    """Captured texts (chunks, error messages and details, stderr tails) holding a secret."""

    def check(self, text: str) -> None:
        """Look for the planted secrets in one captured text (nothing is kept)."""
        if any(secret in text for secret in SECRETS):
            self.leaks += 1


def _error_text(error: BaseException) -> str:
    parts = [str(error), repr(error), json.dumps(getattr(error, "details", {}), default=str)]
    parts.append(getattr(error, "stderr_tail", "") or "")
    return "\n".join(parts)


def _flaky_model(live: Any) -> str:
    """The ``flaky`` provider's phase from its breaker now (read per request, so that a
    breaker replaced by a reload, or events arriving out of order, cannot stall it)."""
    return "down" if live.breakers.states().get("flaky", "closed") == "closed" else "up"


async def one(live: Any, plan: Plan, tally: Tally, stub: Any, watchdog: float) -> None:
    """Run one request to its end; anything but an answer or a ProviderError is 'lost'."""
    model = _flaky_model(live) if plan.provider == "flaky" else plan.model
    if plan.queue_fault is not None:
        await asyncio.to_thread(_enqueue, stub.base_url, plan.queue_fault)
    try:
        async with asyncio.timeout(watchdog):
            handle = live.runtime.provider(plan.provider)
            stream = handle.stream(plan.prompt, model=model, timeout=plan.timeout)
            done = False
            text = []
            try:
                async for chunk in stream:
                    if chunk.type == "text":
                        text.append(chunk.text)
                    elif chunk.type == "result":
                        done = True
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            answered = getattr(stream, "provider", None) or plan.provider
            if getattr(stream, "attempts", None):
                tally.fallbacks += 1
            if not done:
                tally.lost.append(f"{plan}: stream ended without a result chunk")
                return
            tally.ok += 1
            tally.by_provider[answered] += 1
            tally.check("".join(text))
    except ProviderError as error:
        tally.errors[error.kind] += 1
        tally.check(_error_text(error))
    except TimeoutError:
        tally.lost.append(f"{plan}: no end within the {watchdog:g}s watchdog")
    except Exception as error:  # the soak's finding: an untyped failure
        tally.lost.append(f"{plan}: {type(error).__name__}: {error}")
        tally.check(_error_text(error))


def _enqueue(base_url: str, spec: str) -> None:
    import urllib.request

    body = json.dumps({"faults": [spec]}).encode()
    request = urllib.request.Request(f"{base_url}/_stub/faults", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


# ---------------------------------------------------------------------------- resources


def resources(exclude: set[int]) -> dict[str, int]:
    """Descriptors, threads, child processes (not ``exclude``) and RSS (KiB) of this process."""
    me = os.getpid()
    children = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split(b" ")
        # Direct children, and anything in a process group one of them leads.
        if fields[0] != b"Z" and (int(fields[1]) == me or _led_by_child(int(fields[2]), me)):
            children += 1
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "children": children,
        "rss_kib": rss,
    }


def _led_by_child(pgid: int, me: int) -> bool:
    try:
        stat = Path(f"/proc/{pgid}/stat").read_bytes()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split(b" ")
    return int(fields[1]) == me


# ---------------------------------------------------------------------------- the run


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    # Logs go to a file (in memory they would grow this process's RSS); read at the end.
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed at the end
        mode="w+", prefix="provcfg-soak-", suffix=".log", delete=False
    )
    handler = logging.StreamHandler(log_file)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, StubProcess(["--deltas", "12"]) as stub:
        root = Path(folder)
        scenarios = root / "scenarios"
        scenarios.mkdir()
        for name, text in SCENARIOS.items():
            (scenarios / f"{name}.txt").write_text(text)
        cli = root / "fake-claude"
        cli.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{REPLAY}' \"$@\"\n")
        cli.chmod(0o755)
        path = root / "providers.yaml"
        path.write_text(manifest_text(stub.base_url, cli, scenarios, "claude-haiku-4-5", False))
        stub_pid = stub.process.pid
        events: list[BreakerEvent] = []
        tally = Tally()
        samples: list[dict[str, int]] = []
        rss_by_quarter: dict[float, int] = {}
        reloads: collections.Counter[str] = collections.Counter()
        async with provcfg.watch(path) as live:
            live.breakers.subscribe(events.append)
            # Warm-up: every provider once (SDK import, clients, the CLI path), then measure.
            for name in ("fast", "sdk", "cli"):
                await one(live, Plan(name, prompt="ok warm"), Tally(), stub, args.watchdog)
            start = resources({stub_pid})
            samples.append(start)
            plans = [plan_for(rng) for _ in range(args.requests)]
            queue: asyncio.Queue[Plan] = asyncio.Queue()
            for plan in plans:
                queue.put_nowait(plan)

            async def worker() -> None:
                while True:
                    try:
                        plan = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await one(live, plan, tally, stub, args.watchdog)
                    left = queue.qsize()
                    if left % max(1, args.requests // 50) == 0:
                        sample = resources({stub_pid})
                        samples.append(sample)
                        done_share = 1 - left / max(1, args.requests)
                        for quarter in (0.25, 0.5, 0.75):
                            if done_share >= quarter and quarter not in rss_by_quarter:
                                rss_by_quarter[quarter] = sample["rss_kib"]

            async def reloader() -> None:
                for i in range(args.reloads):
                    variant = ("good", "bad", "identical")[i % 3]
                    if variant == "good":
                        text = manifest_text(
                            stub.base_url, cli, scenarios, f"claude-haiku-4-{i}", False
                        )
                    elif variant == "bad":
                        text = manifest_text(stub.base_url, cli, scenarios, "x-1", True)
                    else:
                        text = path.read_text()
                    path.write_text(text)
                    await live.reload()
                    reloads[variant] += 1
                    # Spread the reloads over the run (not all in the first second).
                    await asyncio.sleep(args.reload_pause)
                    if queue.empty() and i > args.reloads // 2:
                        args.reload_pause = 0.0

            await asyncio.gather(reloader(), *(worker() for _ in range(args.concurrency)))
            metrics = live.metrics
            counters = metrics.counters()
            generation = live.generation
            # Leave the manifest good, so that the live runtime closes on a good generation.
            path.write_text(manifest_text(stub.base_url, cli, scenarios, "claude-haiku-4-5", False))
            await live.reload()
        # After aclose(): everything the run opened must be released. The loop's default
        # executor (asyncio.to_thread) is this script's, not provcfg's: asyncio.run would
        # shut it down next; do it now so that it does not count.
        await asyncio.get_running_loop().shutdown_default_executor()
        await asyncio.sleep(0.5)
        end = resources({stub_pid})
    samples.append(end)
    wall = time.perf_counter() - started
    handler.flush()
    log_file.seek(0)
    log_lines = 0
    leaked = tally.leaks
    for line in log_file:
        log_lines += 1
        if any(secret in line for secret in SECRETS):
            leaked += 1
    log_file.close()
    logging.getLogger().removeHandler(handler)
    os.unlink(log_file.name)
    leaked += sum(1 for lost in tally.lost if any(secret in lost for secret in SECRETS))
    peak = {key: max(sample[key] for sample in samples) for key in start}
    report = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "wall_seconds": round(wall, 1),
        "ok": tally.ok,
        "errors": dict(sorted(tally.errors.items())),
        "lost": len(tally.lost),
        "lost_examples": tally.lost[:5],
        "answered_by": dict(sorted(tally.by_provider.items())),
        "fallbacks": tally.fallbacks,
        "breaker_transitions": collections.Counter(e.state for e in events),
        "reloads": dict(reloads),
        "reload_counters": {
            k: counters.get((f"reload_{k}", ""), 0) for k in ("success", "failure", "unchanged")
        },
        "generation": generation,
        "cli_spawned": sum(counters.get(("cli_process_spawned", p), 0) for p in CLIS),
        "cli_killed": sum(counters.get(("cli_process_killed", p), 0) for p in CLIS),
        "resources": {"start": start, "peak": peak, "end": end},
        "rss_kib_at": {
            "start": start["rss_kib"],
            **{f"{int(q * 100)}%": v for q, v in sorted(rss_by_quarter.items())},
            "end": end["rss_kib"],
        },
        "secrets_leaked": leaked,
        "log_lines": log_lines,
    }
    report["checks"] = checks(report)
    return report


def checks(report: dict[str, Any]) -> dict[str, bool]:
    """The soak's pass conditions."""
    res = report["resources"]
    start, end = res["start"], res["end"]
    return {
        "every request accounted for": report["ok"] + sum(report["errors"].values())
        == report["requests"]
        and report["lost"] == 0,
        "breaker opened and closed": report["breaker_transitions"].get("open", 0) >= 1
        and report["breaker_transitions"].get("closed", 0) >= 1,
        "fallbacks answered": report["fallbacks"] >= 1,
        "reloads good, bad and identical": all(
            report["reloads"].get(k, 0) >= 1 for k in ("good", "bad", "identical")
        )
        and report["reload_counters"]["success"] >= 1
        and report["reload_counters"]["failure"] >= 1,
        # Flat: back to the start, give or take what a warm runtime keeps (a few sockets).
        "descriptors flat": end["fds"] <= start["fds"] + 4,
        "threads flat": end["threads"] <= start["threads"] + 1,
        "no child process left": end["children"] == 0,
        # Warm-up growth (pools, SDK caches, metric reservoirs) is allowed in the first
        # half; the second half must not keep growing.
        "rss flat": end["rss_kib"] <= report["rss_kib_at"].get("50%", start["rss_kib"]) + 8 * 1024
        and end["rss_kib"] <= start["rss_kib"] + 64 * 1024,
        "no secret in any output": report["secrets_leaked"] == 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--reloads", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--watchdog", type=float, default=60.0, help="seconds a request may take")
    parser.add_argument("--reload-pause", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.reload_pause is None:
        # About one reload per ten requests' worth of time; tuned so both end together.
        args.reload_pause = 0.02
    report = asyncio.run(soak(args))
    if args.json:
        print(json.dumps(report, default=dict))
    else:
        for key, value in report.items():
            print(f"{key:>22}: {value}")
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
