"""Warm agent processes vs cold starts, side by side in one run (issue 12's budgets).

Every contender of a kind runs once per round, in an order rotated each round; round 0
is a warm-up and is not recorded. Before a round is timed, every pre-started process
(provcfg's spares and servers, the SDK's connected client, the session's process) is
ready and left to go idle, so no start-up competes with a measurement. Times are from
"the request exists" to the first text the caller can see; ratios are taken per round
(contender / reference of the same round) and summarised as median, IQR, min-max.
The load average is printed per round: on a loaded machine absolute times stretch
3-10x, the ratios much less.

"By hand" means the CLI spawned with asyncio, prompt on stdin, the environment provcfg
gives it (minimal_env plus the manifest's env) and the same flags as provcfg's cold path:
the CLI's own cost, without whatever a user's shell environment adds (see
docs/performance.md: a large NODE_EXTRA_CA_CERTS slows every Node CLI).

Contenders (each against the pinned CLIs and the project's stub, in a loopback-only
network namespace: the script re-executes itself under ``unshare -n``):

claude   hand        claude -p --output-format stream-json --verbose (cold)
         warm        rt.provider("claude").stream(): a primed spare (a hit)
         sdk_client  claude-agent-sdk's connected ClaudeSDKClient, next query()
         provcfg     a cold request through provcfg (a launch no spare matches)
         resume      claude -p --resume SID by hand (cold), a follow-up turn
         turn2       the second turn of a provcfg session (same process)
codex    hand / warm / resume (codex exec resume) / turn2
opencode hand / warm / resume (opencode run --session) / turn2
cli_path rt.cli_path() with the resolver's watcher, and with fstat checks only

Run (as root or with CAP_SYS_ADMIN for the namespace; tools/clis installed):

    .venv/bin/python benchmarks/bench_warm.py --rounds 8 [--kinds claude,codex,opencode]
        [-o warm.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support_clis import (  # noqa: E402
    claude_env,
    codex_env,
    netns_argv,
    opencode_env,
    write_codex_config,
    write_opencode_config,
)

BIN = ROOT / "tools" / "clis" / "node_modules" / ".bin"
KEY = "sk-provcfg-bench-warm"
PROMPT = "Say hello."
Timed = dict[str, float]
ABLATE = "--ablate" in sys.argv


def isolate() -> None:
    """Re-execute in a loopback-only network namespace; refuse to run with any other link."""
    if os.environ.get("PROVCFG_BENCH_NETNS") != "1":
        os.environ["PROVCFG_BENCH_NETNS"] = "1"
        argv = netns_argv([sys.executable, *sys.argv])
        os.execvp(argv[0], argv)
    names = [n for _, n in socket.if_nameindex()]
    if names != ["lo"]:
        raise SystemExit(f"refusing to run: interfaces {names} are visible (want only lo)")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0], v[0], v[0]]
    return {"median": statistics.median(v), "q1": q[0], "q3": q[2], "min": v[0], "max": v[-1]}


def ratio_line(name: str, s: dict[str, float]) -> str:
    return (
        f"{name:34s} {s['median']:7.3f}x  IQR {s['q1']:.3f}-{s['q3']:.3f}  "
        f"range {s['min']:.3f}-{s['max']:.3f}"
    )


# --------------------------------------------------------------------------- by hand


async def by_hand(
    argv: list[str], env: dict[str, str], cwd: Path, is_text: Any, stdin: bytes | None = None
) -> float:
    """Seconds from spawn to the first stdout line ``is_text`` accepts; runs to the end.

    The prompt goes to stdin (``stdin``: other bytes instead, e.g. a stream-json line).
    """
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
    proc.stdin.write(PROMPT.encode() if stdin is None else stdin)
    proc.stdin.close()
    first = None
    while line := await proc.stdout.readline():
        if first is None and line.strip():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if is_text(obj):
                first = time.perf_counter() - start
    await proc.wait()
    if first is None:
        raise RuntimeError(f"{argv[0]} printed no text (exit {proc.returncode})")
    return first


async def session_of(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``argv`` once (prompt "My name is Ada.") and return the session id it reports."""
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
    out, _ = await proc.communicate(b"My name is Ada.")
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        found = obj.get("session_id") or obj.get("thread_id") or obj.get("sessionID")
        if isinstance(found, str) and found:
            return found
    raise RuntimeError(f"{argv[0]} reported no session id (exit {proc.returncode})")


def claude_text(obj: Any) -> bool:
    content = (obj.get("message") or {}).get("content") or ()
    return obj.get("type") == "assistant" and any(b.get("type") == "text" for b in content)


def codex_text(obj: Any) -> bool:
    item = obj.get("item") or {}
    return obj.get("type") == "item.completed" and item.get("type") == "agent_message"


def opencode_text(obj: Any) -> bool:
    return obj.get("type") == "text"


async def first_text(stream: Any) -> float:
    """Seconds to the first text chunk of a provcfg stream (read to the end)."""
    start = time.perf_counter()
    first = None
    async for chunk in stream:
        if first is None and chunk.type == "text":
            first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("no text chunk")
    return first


async def settle(rt: Any, provider: str) -> None:
    """Wait for the provider's spares to be ready, then a second for them to go idle."""
    await asyncio.to_thread(rt.warm_pool.wait_ready, provider, 300)
    await asyncio.sleep(1.0)


# --------------------------------------------------------------------------- one kind


class Kind:
    """One CLI kind's contenders; ``rounds()`` returns per-round seconds by contender."""

    name = ""
    reference = "hand"
    pairs: tuple[tuple[str, str], ...] = ()

    def __init__(self, rt: Any, env: dict[str, str], work: Path, binary: Path) -> None:
        self.rt = rt
        self.env = env
        self.work = work
        self.binary = binary
        self.session: Any = None
        self.session_id = ""  # a session made by the CLI by hand, for the cold resume

    def hand_argv(self) -> list[str]:
        raise NotImplementedError

    def resume_argv(self) -> list[str]:
        raise NotImplementedError

    is_text: Callable[[Any], bool] = staticmethod(claude_text)

    async def prepare_round(self) -> None:
        """Open this round's session (turn 1 done) and let every spare settle."""
        if not self.session_id:
            self.session_id = await session_of(self.hand_argv(), self.env, self.work)
        self.session = self.rt.provider(self.name).session()
        await self.session.__aenter__()
        async for _ in self.session.send("My name is Ada."):
            pass
        await settle(self.rt, self.name)

    async def end_round(self) -> None:
        await self.session.aclose()

    def contenders(self) -> dict[str, Callable[[], Awaitable[float]]]:
        return {
            "hand": lambda: by_hand(self.hand_argv(), self.env, self.work, self.is_text),
            "warm": lambda: first_text(self.rt.provider(self.name).stream(PROMPT)),
            "resume": lambda: by_hand(self.resume_argv(), self.env, self.work, self.is_text),
            "turn2": lambda: first_text(self.session.send("What is my name?")),
        }


class Claude(Kind):
    name = "claude"
    pairs = (
        ("warm", "hand"),
        ("warm", "sdk_client"),
        ("sdk_client", "hand"),
        ("provcfg", "hand"),
        ("provcfg", "plain"),
        ("provcfg", "sdk_query"),
        ("provcfg", "sdk_preset"),
        ("sdk_query", "hand"),
        ("sdk_preset", "hand"),
        ("hand_stream", "hand"),
        ("hand_sdkenv", "hand"),
        ("hand_fullenv", "hand"),
        ("turn2", "resume"),
    )

    def hand_argv(self) -> list[str]:
        base = [str(self.binary), "-p", "--output-format", "stream-json", "--verbose"]
        return [*base, "--model", "claude-sonnet-4-5", "--permission-mode", "default"]

    def resume_argv(self) -> list[str]:
        return [*self.hand_argv(), "--resume", self.session_id]

    async def prepare_round(self) -> None:
        await super().prepare_round()
        self.client = None
        try:
            from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
        except ImportError:
            return
        options = ClaudeAgentOptions(
            cli_path=str(self.binary),
            model="claude-sonnet-4-5",
            cwd=str(self.work),
            env=self.env,
            permission_mode="default",
        )
        self.client = ClaudeSDKClient(options)
        await self.client.connect()
        await asyncio.sleep(1.0)

    async def end_round(self) -> None:
        await super().end_round()
        if self.client is not None:
            await self.client.disconnect()

    async def sdk_client(self) -> float:
        from claude_agent_sdk import AssistantMessage, TextBlock

        start = time.perf_counter()
        first = None
        await self.client.query(PROMPT)
        async for message in self.client.receive_response():
            texts = isinstance(message, AssistantMessage) and any(
                isinstance(b, TextBlock) for b in message.content
            )
            if first is None and texts:
                first = time.perf_counter() - start
        if first is None:
            raise RuntimeError("the SDK client printed no text")
        return first

    async def sdk_query(self, preset: bool) -> float:
        from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, TextBlock, query

        extra: dict[str, Any] = {}
        if preset:
            extra["system_prompt"] = {"type": "preset", "preset": "claude_code"}
        options = ClaudeAgentOptions(
            cli_path=str(self.binary),
            model="claude-sonnet-4-5",
            cwd=str(self.work),
            env=self.env,
            permission_mode="default",
            max_buffer_size=64 * 2**20,
            **extra,
        )
        start = time.perf_counter()
        first = None
        async for message in query(prompt=PROMPT, options=options):
            texts = isinstance(message, AssistantMessage) and any(
                isinstance(b, TextBlock) for b in message.content
            )
            if first is None and texts:
                first = time.perf_counter() - start
        if first is None:
            raise RuntimeError("the SDK's query() printed no text")
        return first

    def contenders(self) -> dict[str, Callable[[], Awaitable[float]]]:
        out = super().contenders()
        if self.client is not None:
            out["sdk_query"] = lambda: self.sdk_query(False)
            out["sdk_preset"] = lambda: self.sdk_query(True)
        if ABLATE:
            # What the SDK does differently, one thing at a time, by hand.
            line = json.dumps({"type": "user", "message": {"role": "user", "content": PROMPT}})
            stream = [*self.hand_argv(), "--input-format", "stream-json"]
            out["hand_stream"] = lambda: by_hand(
                stream, self.env, self.work, self.is_text, (line + "\n").encode()
            )
            sdk_env = {**self.env, "CLAUDE_CODE_ENTRYPOINT": "sdk-py"}
            out["hand_sdkenv"] = lambda: by_hand(self.hand_argv(), sdk_env, self.work, self.is_text)
            full_env = {**os.environ, **self.env}
            full_env.pop("PROVCFG_BENCH_NETNS", None)
            out["hand_fullenv"] = lambda: by_hand(
                self.hand_argv(), full_env, self.work, self.is_text
            )
        # A launch no spare matches (max_tokens is in the environment): provcfg's cold path.
        out["provcfg"] = lambda: first_text(
            self.rt.provider(self.name).stream(PROMPT, max_tokens=32000)
        )
        # The same request through a provider without warm: the cold path as before.
        out["plain"] = lambda: first_text(
            self.rt.provider("claude_plain").stream(PROMPT, max_tokens=32000)
        )
        if self.client is not None:
            out["sdk_client"] = self.sdk_client
        return out


class Codex(Kind):
    name = "codex"
    is_text = staticmethod(codex_text)
    pairs = (
        ("warm", "hand"),
        ("warm", "launcher"),
        ("hand", "launcher"),
        ("turn2", "resume"),
        ("turn2", "resume_launcher"),
    )

    def contenders(self) -> dict[str, Callable[[], Awaitable[float]]]:
        out = super().contenders()
        # What `codex exec` from a shell runs: the npm launcher (Node, then the binary).
        launcher = [str(BIN / "codex"), *self.hand_argv()[1:]]
        out["launcher"] = lambda: by_hand(launcher, self.env, self.work, self.is_text)
        resume = [str(BIN / "codex"), *self.resume_argv()[1:]]
        out["resume_launcher"] = lambda: by_hand(resume, self.env, self.work, self.is_text)
        return out

    def hand_argv(self) -> list[str]:
        return [
            str(self.binary),
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "-m",
            "gpt-5.5",
            "-",
        ]

    def resume_argv(self) -> list[str]:
        argv = self.hand_argv()
        return [*argv[:-1], "resume", self.session_id, "-"]


class OpenCode(Kind):
    name = "opencode"
    is_text = staticmethod(opencode_text)
    pairs = (("warm", "hand"), ("turn2", "resume"))

    def hand_argv(self) -> list[str]:
        model = "provcfg/claude-sonnet-4-5"
        return [str(self.binary), "run", "--format", "json", "--title", "provcfg", "-m", model]

    def resume_argv(self) -> list[str]:
        return [*self.hand_argv(), "--session", self.session_id]


# --------------------------------------------------------------------------- the run


def manifest(stub_url: str, home: Path, work: Path, kinds: list[str]) -> dict[str, Any]:
    codex_home = home / ".codex"
    write_codex_config(codex_home, stub_url)
    config = write_opencode_config(home, stub_url, ["claude-sonnet-4-5"])
    warm = {"spares": 1, "idle_timeout": "1h", "max_age": "1h"}
    common: dict[str, Any] = {"cwd": str(work), "init": "eager", "timeout": "5m", "warm": warm}
    providers = {
        "claude": {
            "kind": "claude-code",
            "path": str(BIN / "claude"),
            "model": "claude-sonnet-4-5",
            "env": claude_env(stub_url, home, KEY),
            **common,
        },
        "codex": {
            "kind": "codex",
            "path": str(BIN / "codex"),
            "model": "gpt-5.5",
            "env": codex_env(home, codex_home, KEY),
            **common,
        },
        "opencode": {
            "kind": "opencode",
            "path": str(BIN / "opencode"),
            "model": "provcfg/claude-sonnet-4-5",
            "env": opencode_env(home, KEY, config=config),
            **common,
        },
    }
    chosen = {k: providers[k] for k in kinds}
    if "claude" in chosen:
        plain = dict(chosen["claude"])
        del plain["warm"]
        chosen["claude_plain"] = plain
    return {"version": 1, "warm": {"max_processes": 8}, "providers": chosen}


async def run_kind(kind: Kind, rounds: int) -> dict[str, Any]:
    rows: list[dict[str, float]] = []
    loads: list[str] = []
    for rnd in range(rounds + 1):
        await kind.prepare_round()
        try:
            contenders = kind.contenders()
            names = list(contenders)
            shift = rnd % len(names)
            row: dict[str, float] = {}
            for name in names[shift:] + names[:shift]:
                row[name] = await contenders[name]()
                await asyncio.sleep(0.3)
        finally:
            await kind.end_round()
        loads.append(load())
        if rnd == 0:
            continue
        rows.append(row)
        shown = " ".join(f"{n}={v * 1000:.0f}ms" for n, v in row.items())
        print(f"{kind.name} round {rnd} load {loads[-1]}: {shown}", flush=True)
    ratios = {}
    for a, b in kind.pairs:
        pairs = [(r[a], r[b]) for r in rows if a in r and b in r]
        if pairs:
            ratios[f"{a}/{b}"] = summary([x / y for x, y in pairs])
    times = {n: summary([r[n] for r in rows if n in r]) for n in rows[0]}
    return {"loads": loads, "rows": rows, "ratios": ratios, "first_text": times}


def footprint(rt: Any, seconds: float = 5.0) -> dict[str, dict[str, float]]:
    """Per provider: RSS (MiB) of its ready warm processes and their CPU while idle (ms/s)."""
    clock = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / clock

    pool = rt.warm_pool
    with pool._cond:
        procs = [p for spares in pool._ready.values() for p in spares]
    before = {p.pid: cpu(p.pid) for p in procs}
    time.sleep(seconds)
    out: dict[str, dict[str, float]] = {}
    for p in procs:
        entry = out.setdefault(p.owner_name, {"rss_mib": 0.0, "idle_cpu_ms_per_s": 0.0})
        entry["rss_mib"] += p.rss_bytes() / 2**20
        entry["idle_cpu_ms_per_s"] += (cpu(p.pid) - before[p.pid]) * 1000 / seconds
    return out


def cli_path_bench(rt: Any, provider: str, number: int = 200_000) -> dict[str, float]:
    """Seconds per rt.cli_path() hit, with the resolver's watcher and without (fstat)."""
    from provcfg._clipath import CliLookup, CLIResolver
    from provcfg._metrics import Metrics

    rt.cli_path(provider)
    deadline = time.monotonic() + 30
    while not rt.cli_resolver.watching and time.monotonic() < deadline:
        time.sleep(0.01)
    watched = min(timeit.repeat(lambda: rt.cli_path(provider), number=number, repeat=5))
    plain_resolver = CLIResolver(Metrics())
    lookup = rt._cli[provider]
    plain = CliLookup(
        plain_resolver, lookup.command, lookup.path, lookup.search_paths, "", provider
    )
    plain.resolve()
    fstat = min(timeit.repeat(plain.resolve, number=number, repeat=5))
    plain_resolver.close()
    return {"watched_us": watched / number * 1e6, "fstat_us": fstat / number * 1e6}


def miss_cost(rt: Any, provider: str, number: int = 2000) -> dict[str, float]:
    """What a cold request pays for the warm pool: the spare lookup that misses.

    The cold path is today's plus this lookup (the launch key: realpath, one stat, a
    digest of the environment; the pool's dict; the miss counter), timed on its own.
    """
    instance = rt.provider(provider).instance()
    group = instance._warm
    command = instance._default_command("/nonexistent-folder-never-kept")
    group.take(command, False)
    seconds = min(timeit.repeat(lambda: group.take(command, False), number=number, repeat=5))
    return {"miss_us": seconds / number * 1e6}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--kinds", default="claude,codex,opencode")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="also run claude by hand with one SDK difference at a time (stream-json input, "
        "CLAUDE_CODE_ENTRYPOINT=sdk-py, the whole environment)",
    )
    args = parser.parse_args()
    isolate()
    import provcfg
    from provcfg.stub import StubProcess

    kinds = [k for k in args.kinds.split(",") if k]
    report: dict[str, Any] = {"load_start": load(), "rounds": args.rounds}
    print(f"bench_warm: load {report['load_start']}, {os.cpu_count()} CPUs, rounds {args.rounds}")
    with (
        StubProcess(["--text", "Hello from the stub.", "--chunk-size", "5"]) as stub,
        tempfile.TemporaryDirectory(prefix="provcfg-bench-warm-") as tmp,
    ):
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        home.mkdir()
        work.mkdir()
        data = manifest(stub.base_url, home, work, kinds)
        path = Path(tmp) / "providers.yaml"
        path.write_text(json.dumps(data))
        async with provcfg.load(path) as rt:
            warmed = await rt.warmup(timeout=600)
            failed = {k: str(v) for k, v in warmed.items() if v is not None}
            if failed:
                raise SystemExit(f"warm-up failed: {failed}")
            await asyncio.sleep(2.0)
            report["footprint_ready"] = await asyncio.to_thread(footprint, rt)
            print(f"warm processes when ready: {json.dumps(report['footprint_ready'])}")
            classes = {"claude": Claude, "codex": Codex, "opencode": OpenCode}
            for name in kinds:
                spec = data["providers"][name]
                env = {"PATH": os.environ["PATH"], **spec["env"], "PWD": str(work)}
                binary = Path(spec["path"])
                if name == "codex":
                    from provcfg._providers.codex import native_codex

                    native = native_codex(binary)
                    if native is not None:
                        binary = native[0]
                        env["CODEX_MANAGED_BY_NPM"] = "1"
                        env["CODEX_MANAGED_PACKAGE_ROOT"] = native[1]
                kind = classes[name](rt, env, work, binary)
                report[name] = await run_kind(kind, args.rounds)
                print(f"\n== {name}: per-round ratios of the first text ==")
                for pair, s in report[name]["ratios"].items():
                    print(ratio_line(pair, s))
                print()
            for name in kinds:
                await settle(rt, name)
            report["footprint_used"] = await asyncio.to_thread(footprint, rt)
            print(f"warm processes after the rounds: {json.dumps(report['footprint_used'])}")
            first = kinds[0]
            if "claude" in kinds:
                report["miss"] = miss_cost(rt, "claude")
                print(f"cold request's spare lookup (a miss): {report['miss']['miss_us']:.1f} us")
            report["cli_path"] = cli_path_bench(rt, first)
            cp = report["cli_path"]
            print(
                f"cli_path hit: {cp['watched_us']:.3f} us with the watcher, "
                f"{cp['fstat_us']:.3f} us with fstat checks "
                f"({cp['watched_us'] / cp['fstat_us']:.2f}x)"
            )
    report["load_end"] = load()
    print(f"load at the end: {report['load_end']}")
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
