"""``provcfg run`` as users run it: a real process streaming from the stub over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provcfg.stub import StubServer
from tests.support_services import free_port

SECRET = "sk-test-RUNSECRET-123456"


def write_manifest(tmp_path: Path, base_url: str, transport: str = "fast") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "version: 1\n"
        "default_provider: local\n"
        "pools:\n  p: {max_connections: 4}\n"
        "providers:\n"
        "  local:\n"
        "    kind: anthropic-api\n"
        f"    base_url: {base_url}\n"
        f"    api_key: {SECRET}\n"
        "    pool: p\n"
        "    model: claude-haiku-4-5\n"
        f"    transport: {transport}\n"
        "    max_retries: 0\n"
    )
    return path


def provcfg(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]  # noqa: PLW1510
        [sys.executable, "-m", "provcfg", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


@pytest.mark.parametrize("transport", ["fast", "sdk"])
def test_run_streams_the_reply(tmp_path: Path, stub_thread: StubServer, transport: str) -> None:
    """The reply text reaches stdout, timings reach stderr, and exit is 0."""
    m = write_manifest(tmp_path, stub_thread.base_url, transport)
    done = provcfg("run", "-f", str(m), "--timings", "Say hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello from the provcfg stub."
    assert "first_chunk=" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_json_writes_one_event_per_line(tmp_path: Path, stub_thread: StubServer) -> None:
    """--json writes a JSON object per chunk, the last one the result with usage."""
    m = write_manifest(tmp_path, stub_thread.base_url)
    done = provcfg("run", "-f", str(m), "--json", "-", input="Say hello")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["type"] for e in events[:-1]} == {"text"}
    assert events[-1]["type"] == "result"
    assert events[-1]["data"]["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    ("model", "code", "fragment"),
    [
        ("stub-fault-401", 3, "authentication"),
        ("stub-fault-429-retry-after-1", 4, "rate_limit"),
        ("stub-fault-404", 5, "model_not_found"),
        ("stub-fault-drop-2", 10, "stream_incomplete"),
        ("stub-fault-no-stop", 10, "stream_incomplete"),
        ("stub-fault-500", 7, "server_error"),
    ],
)
def test_run_exit_code_per_error_family(
    tmp_path: Path, stub_thread: StubServer, model: str, code: int, fragment: str
) -> None:
    """Each error family exits with its own code, one clean line, no traceback, no secret."""
    m = write_manifest(tmp_path, stub_thread.base_url)
    done = provcfg("run", "-f", str(m), "-m", model, "hi")
    assert done.returncode == code, (done.stdout, done.stderr)
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_run_unreachable_server_is_a_network_error(tmp_path: Path) -> None:
    """Nothing listening on the port gives the network exit code and a clear message."""
    m = write_manifest(tmp_path, f"http://127.0.0.1:{free_port()}")
    done = provcfg("run", "-f", str(m), "hi")
    assert done.returncode == 7, done.stderr
    assert "network" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_invalid_manifest_exits_1_with_position(tmp_path: Path) -> None:
    """A bad manifest gives FILE:LINE:COL and exit 1."""
    m = tmp_path / "providers.yaml"
    m.write_text("version: 1\nproviders:\n  a: {kind: anthropic-api, bse_url: x}\n")
    done = provcfg("run", "-f", str(m), "hi")
    assert done.returncode == 1
    assert f"{m}:3:" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_cancels_cleanly(tmp_path: Path, stub_thread: StubServer) -> None:
    """SIGINT during a hanging stream exits 130 with one line and no traceback."""
    m = write_manifest(tmp_path, stub_thread.base_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "provcfg", "run", "-f", str(m), "-m", "stub-hang", "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            r.model == "stub-hang" for r in stub_thread.requests
        ):
            time.sleep(0.02)
        assert any(r.model == "stub-hang" for r in stub_thread.requests)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "cancelled" in err
    assert "Traceback" not in err


def test_embedded_stub_serves_the_local_provider(tmp_path: Path) -> None:
    """--stub serves the stub on the provider's loopback port for the run (the offline demo)."""
    m = write_manifest(tmp_path, f"http://127.0.0.1:{free_port()}")
    done = provcfg("run", "-f", str(m), "--stub", "--repeat", "2", "--timings", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hello from the provcfg stub."] * 2
    assert done.stderr.count("first_chunk=") == 2


def test_embedded_stub_refuses_a_remote_base_url(tmp_path: Path) -> None:
    """--stub for a provider pointing off the machine is refused, not served."""
    m = write_manifest(tmp_path, "https://api.example.invalid")
    done = provcfg("run", "-f", str(m), "--stub", "hi", env={**os.environ})
    assert done.returncode == 2
    assert "loopback" in done.stderr


def test_every_error_kind_has_its_exit_code() -> None:
    """Each ProviderError kind maps to a documented exit code other than 0, 1, 2 and 70."""
    from typing import get_args

    from provcfg._errors import ErrorKind, ProviderError
    from provcfg._run import EXIT_CODES, exit_code_for

    for kind in get_args(ErrorKind):
        code = exit_code_for(ProviderError("x", kind=kind))
        assert code == EXIT_CODES[kind]
        assert code not in (0, 1, 2, 70)


def test_provcfg_stub_subcommand_passes_its_options_through(tmp_path: Path) -> None:
    """`provcfg stub --port 0 --port-file F` listens, answers HEAD /, and exits 0 on SIGTERM."""
    import http.client

    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "provcfg", "stub", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        port = int(port_file.read_text())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("HEAD", "/")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_unknown_option_of_a_normal_command_is_a_usage_error() -> None:
    """Options a command does not know still exit 2 with argparse's message."""
    done = provcfg("validate", "--bogus")
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr


@pytest.mark.parametrize(
    "args",
    [["-"], [""], ["--repeat", "0", "hi"], ["--max-tokens", "-5", "hi"]],
)
def test_run_refuses_empty_prompt_and_bad_numbers(tmp_path: Path, args: list[str]) -> None:
    """An empty prompt or a count below 1 is a usage error (exit 2) before anything is sent."""
    m = write_manifest(tmp_path, f"http://127.0.0.1:{free_port()}")
    done = provcfg("run", "-f", str(m), *args, input="")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "network" not in done.stderr
