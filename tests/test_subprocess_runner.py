"""The shared CLI runner (CliProcess) against real child processes running tests/fake_clis."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tracemalloc
from pathlib import Path

import pytest

from provcfg._errors import ProviderError
from provcfg._metrics import Metrics
from provcfg._providers._subprocess import CliCommand, CliProcess, minimal_env, scrub
from tests.support_fake_cli import process_gone, reaped, runner_command, scenario


async def collect(cmd: CliCommand, metrics: Metrics | None = None) -> tuple[list[dict], int]:
    async with CliProcess(cmd, metrics) as proc:
        events = [e async for e in proc.events()]
        return events, await proc.wait()


async def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if process_gone(pid):
            return True
        await asyncio.sleep(0.01)
    return process_gone(pid)


async def test_events_in_order_and_exit_code(tmp_path: Path) -> None:
    """Each JSON line becomes one dict, blank lines are skipped, exit code 0 is reported."""
    script = scenario(tmp_path, '{"type":"a"}\n\n{"type":"b","x":[1,2]}\n')
    events, code = await collect(runner_command(script))
    assert events == [{"type": "a"}, {"type": "b", "x": [1, 2]}]
    assert code == 0


async def test_streaming_is_incremental(tmp_path: Path) -> None:
    """The first object reaches the reader while the CLI is still blocked before its last line."""
    go = tmp_path / "go"
    script = scenario(tmp_path, f'{{"type":"first"}}\n#!wait_file {go}\n{{"type":"last"}}\n')
    async with asyncio.timeout(20), CliProcess(runner_command(script)) as proc:
        events = proc.events()
        first = await anext(events)
        assert first == {"type": "first"}
        assert not go.exists()  # the CLI cannot have written "last" yet
        go.touch()
        rest = [e async for e in events]
    assert rest == [{"type": "last"}]


async def test_last_line_without_newline_is_parsed(tmp_path: Path) -> None:
    """A final line that lacks its newline is still delivered."""
    script = scenario(tmp_path, '{"type":"a"}\n#!raw {"type":"end"}\n')
    events, _ = await collect(runner_command(script))
    assert events == [{"type": "a"}, {"type": "end"}]


async def test_bad_lines_counted_and_skipped(tmp_path: Path) -> None:
    """Non-JSON and non-object lines are counted (cli_bad_line) and skipped."""
    script = scenario(tmp_path, 'warning: not json\n[1,2]\n{"type":"ok"}\n')
    metrics = Metrics()
    events, _ = await collect(runner_command(script), metrics)
    assert events == [{"type": "ok"}]
    assert metrics.counter("cli_bad_line", "fake") == 2


async def test_memory_flat_over_100k_lines(tmp_path: Path) -> None:
    """100,000 lines (about 12 MB) stream with a traced peak far below the output size."""
    script = scenario(tmp_path, "#!lines 100000 100\n")
    count = 0
    tracemalloc.start()
    try:
        async with CliProcess(runner_command(script)) as proc:
            async for event in proc.events():
                count += 1
                assert event["type"] == "tick"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 3 * 1024 * 1024, peak


async def test_one_mib_line_within_default_limit(tmp_path: Path) -> None:
    """A single 1 MiB line (16x asyncio's readline limit) passes with the default limit."""
    script = scenario(tmp_path, '#!big 1048576\n{"type":"after"}\n')
    events, code = await collect(runner_command(script))
    assert len(events[0]["data"]) == 1048576
    assert events[1] == {"type": "after"} and code == 0


@pytest.mark.parametrize("trailer", ["", "#!hang\n"])
async def test_line_over_limit_is_reported_not_hung(tmp_path: Path, trailer: str) -> None:
    """A line over line_limit raises cli_failed naming the limit, also when it never ends."""
    body = "#!big 200000\n" if not trailer else '#!raw {"type":"big","data":"' + "y" * 200000 + "\n"
    script = scenario(tmp_path, body + trailer)
    cmd = runner_command(script, line_limit=65536)
    async with asyncio.timeout(20):
        with pytest.raises(ProviderError) as info:
            await collect(cmd)
    assert info.value.kind == "cli_failed"
    assert "65536" in str(info.value) and "line_limit" in str(info.value)


async def test_line_over_limit_inside_one_read(tmp_path: Path) -> None:
    """A too-long line that arrives inside one read block, between short lines, is caught."""
    script = scenario(tmp_path, '{"type":"a"}\n#!big 5000\n{"type":"b"}\n')
    with pytest.raises(ProviderError, match="line limit of 2048"):
        await collect(runner_command(script, line_limit=2048))


async def test_stderr_flood_does_not_deadlock(tmp_path: Path) -> None:
    """8 MiB on stderr before stdout output completes; only a bounded tail is kept."""
    script = scenario(tmp_path, '#!stderr 8388608\n#!stderr_text LAST-LINE\n{"type":"done"}\n')
    async with asyncio.timeout(30), CliProcess(runner_command(script)) as proc:
        events = [e async for e in proc.events()]
        assert await proc.wait() == 0
    assert events == [{"type": "done"}]
    assert len(proc.stderr_tail) <= 8192
    assert proc.stderr_tail.rstrip().endswith("LAST-LINE")


async def test_idle_timeout(tmp_path: Path) -> None:
    """Silence longer than idle_timeout raises timeout (idle) and the process is gone."""
    pidfile = tmp_path / "pid"
    script = scenario(tmp_path, f'#!pidfile {pidfile}\n{{"type":"a"}}\n#!hang\n')
    got: list[dict] = []
    with pytest.raises(ProviderError) as info:
        async with CliProcess(runner_command(script, idle_timeout=0.3)) as proc:
            async for event in proc.events():
                got.append(event)
    assert got == [{"type": "a"}]
    assert info.value.kind == "timeout" and info.value.details["timeout"] == "idle"
    assert "idle_timeout" in str(info.value)
    assert await wait_gone(int(pidfile.read_text()))


async def test_total_deadline(tmp_path: Path) -> None:
    """A CLI that keeps printing past the total deadline raises timeout (total)."""
    script = scenario(tmp_path, "#!ticks 0.02\n")
    cmd = runner_command(script, idle_timeout=5.0, timeout=0.5)
    with pytest.raises(ProviderError) as info:
        await collect(cmd)
    assert info.value.kind == "timeout" and info.value.details["timeout"] == "total"


async def test_cancel_kills_group_including_term_ignoring_grandchild(tmp_path: Path) -> None:
    """Cancelling the reading task stops the CLI and a SIGTERM-ignoring grandchild; child reaped."""
    gpid = tmp_path / "gpid"
    script = scenario(tmp_path, f'#!ignore_term\n#!grandchild {gpid}\n{{"type":"a"}}\n#!hang\n')
    started = asyncio.Event()
    holder: list[CliProcess] = []

    async def consume() -> None:
        async with CliProcess(runner_command(script, kill_grace=0.3)) as proc:
            holder.append(proc)
            async for _ in proc.events():
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    proc = holder[0]
    assert proc.pid is not None
    assert proc._proc is not None and proc._proc.returncode is not None  # reaped
    assert reaped(proc.pid)
    assert await wait_gone(int(gpid.read_text()), 2.0)


async def test_break_out_of_events_kills_group(tmp_path: Path) -> None:
    """Leaving the async with early (break) stops the whole group."""
    gpid = tmp_path / "gpid"
    script = scenario(tmp_path, f"#!grandchild {gpid}\n#!ticks 0.01\n")
    async with CliProcess(runner_command(script)) as proc:
        async for _ in proc.events():
            break
    assert reaped(proc.pid)
    assert await wait_gone(int(gpid.read_text()), 2.0)


async def test_leftover_grandchild_holding_stdout_does_not_hang(tmp_path: Path) -> None:
    """A CLI that exits 0 but leaves a stdout-holding, SIGTERM-ignoring grandchild still ends."""
    gpid = tmp_path / "gpid"
    script = scenario(tmp_path, f'#!grandchild {gpid}\n{{"type":"a"}}\n')
    async with asyncio.timeout(20):
        events, code = await collect(runner_command(script, kill_grace=0.3))
    assert events == [{"type": "a"}] and code == 0
    assert await wait_gone(int(gpid.read_text()), 2.0)


async def test_nonzero_exit_failure_with_scrubbed_tail(tmp_path: Path) -> None:
    """Exit code 3 gives cli_failed with exit_code and the stderr tail, secret values masked."""
    secret = "sk-very-secret-value"
    script = scenario(tmp_path, f"#!stderr_text auth failed for {secret}\n#!exit 3\n")
    cmd = runner_command(script, secrets=(secret,))
    async with CliProcess(cmd) as proc:
        assert [e async for e in proc.events()] == []
        error = proc.failure(await proc.wait())
    assert error.kind == "cli_failed" and error.exit_code == 3
    assert "auth failed for **********" in error.stderr_tail
    assert secret not in error.stderr_tail and secret not in str(error)
    assert "(exit code 3)" in str(error)


async def test_large_prompt_on_stdin_is_delivered(tmp_path: Path) -> None:
    """A 2 MiB prompt reaches the child's stdin whole, with no deadlock against its stdout."""
    dump = tmp_path / "dump.json"
    script = scenario(tmp_path, '#!lines 5000 50\n{"type":"end"}\n')
    prompt = ("word " * 419431).encode()
    cmd = runner_command(script, stdin=prompt, env_extra={"FAKE_DUMP": str(dump)})
    events, code = await collect(cmd)
    assert code == 0 and events[-1] == {"type": "end"}
    assert json.loads(dump.read_text())["stdin"].encode() == prompt


async def test_missing_program_and_missing_cwd(tmp_path: Path) -> None:
    """A missing executable is cli_not_found; a missing working folder is invalid_request."""
    with pytest.raises(ProviderError) as info:
        await collect(CliCommand(argv=(str(tmp_path / "nope"),)))
    assert info.value.kind == "cli_not_found"
    script = scenario(tmp_path, "")
    with pytest.raises(ProviderError) as info2:
        await collect(runner_command(script, cwd=str(tmp_path / "no-such-dir")))
    assert info2.value.kind == "invalid_request" and "no-such-dir" in str(info2.value)


async def test_no_resource_warning_after_cancel(tmp_path: Path) -> None:
    """Pipes and transports are closed after an early exit (no ResourceWarning at collection)."""
    script = scenario(tmp_path, "#!ticks 0.01\n")
    for _ in range(3):
        async with CliProcess(runner_command(script)) as proc:
            async for _ in proc.events():
                break
    gc.collect()
    await asyncio.sleep(0.05)


def test_minimal_env_keeps_only_basics_and_declared() -> None:
    """minimal_env passes PATH/HOME/LANG/LC_*/TERM/TMPDIR/USER and declared values only."""
    from pydantic import SecretStr

    base = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "AWS_SECRET": "x", "TERM": "xterm"}
    env = minimal_env({"API_KEY": SecretStr("k"), "HOME": SecretStr("/other")}, base)
    assert env == {"PATH": "/bin", "HOME": "/other", "LC_ALL": "C", "TERM": "xterm", "API_KEY": "k"}


def test_scrub_masks_secrets_only() -> None:
    """scrub replaces secret values and leaves tiny values and other text alone."""
    assert scrub("key=abcd1234 and a", ["abcd1234", "a"]) == "key=********** and a"


def test_os_environ_untouched_by_minimal_env() -> None:
    """Building a child env never changes our own environment."""
    before = dict(os.environ)
    minimal_env({"X_TEST_SECRET": "v"})
    assert dict(os.environ) == before
    assert sys.executable


def _count_proc_listings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.listdir

    def counting(path: str = ".") -> list[str]:
        if str(path) == "/proc":
            calls.append(1)
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    return calls


async def test_ending_a_stream_with_nothing_left_behind_reads_no_process_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel is asked about the group (killpg 0): a CLI that leaves nothing behind costs
    no scan of /proc, however many processes the host runs."""
    listings = _count_proc_listings(monkeypatch)
    script = scenario(tmp_path, '{"type":"a"}\n')
    events, code = await collect(runner_command(script))
    assert events == [{"type": "a"}] and code == 0
    assert listings == []


async def test_a_dying_group_is_waited_for_without_polling_the_process_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grandchild left behind is found with at most a couple of /proc reads (not one every
    10 ms while it dies) and is gone afterwards."""
    listings = _count_proc_listings(monkeypatch)
    gpid = tmp_path / "gpid"
    script = scenario(tmp_path, f'#!grandchild {gpid}\n{{"type":"a"}}\n')
    events, code = await collect(runner_command(script, kill_grace=0.5))
    assert events == [{"type": "a"}] and code == 0
    assert await wait_gone(int(gpid.read_text()), 2.0)
    assert 1 <= len(listings) <= 3
