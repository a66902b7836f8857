"""`provcfg doctor` as users run it: real processes, real sockets, real redis and memcached."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from provcfg.stub import StubServer
from tests.support_agents import TESTED, blackholed_port, fake_agent, silent_port
from tests.support_fake_cli import process_gone
from tests.support_manifest import (
    API_KEY,
    ENV_SECRET,
    EXAMPLE,
    REDIS_PASSWORD,
    assert_no_secret,
    clean_env,
)
from tests.support_services import held_port, held_port_number, start_redis

PROVCFG = str(Path(sys.executable).with_name("provcfg"))
NO_CLIS = "/usr/bin:/bin"  # the agent CLIs are not in these folders on the test machines
BASE_URL_PASSWORD = "baseurlPW-SECRET-5151"


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `provcfg doctor` (bounded: a hung doctor fails the test)."""
    return subprocess.run(
        [PROVCFG, "doctor", *args],
        env=env if env is not None else clean_env(PATH=NO_CLIS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def checks_of(report: dict[str, Any], part: str, name: str | None) -> dict[str, dict[str, Any]]:
    """The checks of one part, by check name."""
    return {c["check"]: c for c in report["checks"] if c["part"] == part and c["name"] == name}


def test_example_manifest_with_everything_down(tmp_path: Path) -> None:
    """The example manifest with no CLI installed, the API blackholed and nothing on the stub's
    port: exit 1, every failure and warning with its fix, and the hanging connection is cut
    at --timeout instead of the pool's 5 s connect timeout."""
    with blackholed_port() as api_port, held_port() as local_port:
        env = clean_env(
            PATH=NO_CLIS,
            HOME=str(tmp_path),
            PROVCFG_PROVIDERS__API__BASE_URL=f"https://127.0.0.1:{api_port}",
            PROVCFG_PROVIDERS__LOCAL__BASE_URL=f"http://127.0.0.1:{local_port}",
        )
        done = doctor(str(EXAMPLE), "--format", "json", "--timeout", "1", env=env)
        text = doctor(str(EXAMPLE), "--timeout", "1", env=env)
    assert done.returncode == 1, done.stderr
    report = report_of(done)
    assert report["ok"] is False and report["file"] == str(EXAMPLE)
    for name, package in [
        ("claude", "@anthropic-ai/claude-code"),
        ("opencode", "opencode-ai"),
        ("codex", "@openai/codex"),
    ]:
        cli = checks_of(report, "provider", name)["cli"]
        assert cli["verdict"] == "fail" and "not on PATH" in cli["message"]
        assert f"npm install -g {package}" in cli["fix"]
    api = checks_of(report, "provider", "api")["connect"]
    assert api["verdict"] == "fail"
    assert f"no TCP connection to 127.0.0.1:{api_port} within 1 s" in api["message"]
    local = checks_of(report, "provider", "local")["connect"]
    assert local["verdict"] == "warn" and "nothing listens" in local["message"]
    assert "provcfg run --stub -p local" in local["fix"]
    for check in report["checks"]:
        assert check["verdict"] == "ok" or check["fix"], check
    assert text.returncode == 1
    assert "\x1b" not in text.stdout  # piped: no colour codes
    lines = text.stdout.splitlines()
    assert lines[0].startswith("ok    manifest")
    assert any(line.startswith("fail  provider claude") for line in lines)
    assert any(line.strip().startswith("fix: install it (npm install -g") for line in lines)
    assert lines[-1].endswith(
        f"{report['counts']['fail']} failed, "
        f"{report['counts']['warn']} warnings, {report['counts']['ok']} ok"
    )


def _stub_manifest(tmp_path: Path, base_url: str, bin_dir: Path) -> Path:
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        textwrap.dedent(f"""\
            version: 1
            default_provider: local
            cache:
              providers: {{backend: memory, max_size: 8}}
              notes: {{backend: file, path: "{tmp_path / "cache" / "notes.dbm"}"}}
            pools:
              p: {{max_connections: 10, max_keepalive_connections: 5}}
            providers:
              claude:
                kind: claude-code
                path: "{bin_dir / "claude"}"
                env: {{ANTHROPIC_API_KEY: "${{ANTHROPIC_API_KEY}}"}}
              opencode: {{kind: opencode, search_paths: ["{bin_dir}"],
                          env: {{OPENAI_API_KEY: "${{OPENAI_API_KEY}}"}}}}
              codex: {{kind: codex, env: {{CODEX_API_KEY: "${{OPENAI_API_KEY}}"}}}}
              local: {{kind: anthropic-api, base_url: "{base_url}", api_key: stub, pool: p}}
            """)
    )
    (tmp_path / "cache").mkdir()
    return manifest


def test_stub_backed_manifest_with_fake_clis_is_all_ok(
    tmp_path: Path, stub_thread: StubServer
) -> None:
    """Fake CLIs that print the tested versions, keys passed in env, the stub listening, a
    writable file region: every check is ok, exit 0, and each says where things were found."""
    bin_dir = tmp_path / "bin"
    for command in ("claude", "opencode"):
        fake_agent(bin_dir, command)
    fake_agent(tmp_path / "onpath", "codex")
    manifest = _stub_manifest(tmp_path, stub_thread.base_url, bin_dir)
    env = clean_env(
        PATH=f"{tmp_path / 'onpath'}:{NO_CLIS}",
        ANTHROPIC_API_KEY=API_KEY,
        OPENAI_API_KEY=ENV_SECRET,
    )
    done = doctor(str(manifest), "--format", "json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = report_of(done)
    assert report["ok"] is True
    assert report["counts"]["warn"] == 0 and report["counts"]["fail"] == 0
    claude = checks_of(report, "provider", "claude")
    assert claude["cli"]["details"] == {"path": str(bin_dir / "claude"), "source": "path"}
    assert (
        claude["version"]["message"] == f"{TESTED['claude']} (the version provcfg is tested with)"
    )
    assert claude["auth"]["details"]["passed"] == ["ANTHROPIC_API_KEY"]
    opencode = checks_of(report, "provider", "opencode")
    assert opencode["cli"]["details"]["source"] == f"search_paths {bin_dir}"
    codex = checks_of(report, "provider", "codex")
    assert codex["cli"]["details"]["source"] == "PATH"
    assert codex["version"]["details"]["version"] == TESTED["codex"]
    local = checks_of(report, "provider", "local")
    assert local["connect"]["message"].endswith("reachable (DNS and TCP; no request sent)")
    assert checks_of(report, "cache", "notes")["writable"]["verdict"] == "ok"
    assert checks_of(report, "pool", "p")["limits"]["verdict"] == "ok"
    assert stub_thread.requests == []  # nothing was sent, let alone a billable request
    assert_no_secret(done.stdout, done.stderr)


def test_untested_version_warns_with_the_pinned_install(tmp_path: Path) -> None:
    """A CLI at another version than the tested one is a warning naming the version to install."""
    fake_agent(tmp_path / "bin", "codex", version="0.100.0")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nproviders:\n  codex: {kind: codex}\n")
    done = doctor(str(manifest), "--format", "json", env=clean_env(PATH=f"{tmp_path / 'bin'}"))
    assert done.returncode == 0
    version = checks_of(report_of(done), "provider", "codex")["version"]
    assert version["verdict"] == "warn"
    assert version["message"].startswith(f"0.100.0; provcfg is tested with {TESTED['codex']}")
    assert version["fix"] == f"npm install -g @openai/codex@{TESTED['codex']}"


def test_cli_hanging_on_version_is_stopped_with_its_children(tmp_path: Path) -> None:
    """A CLI that hangs on --version (and started a child) gets a bounded warning; the probe
    stops its whole process group, so neither process outlives doctor."""
    pids = tmp_path / "pids"
    fake_agent(tmp_path / "bin", "claude", hang=True, pid_file=pids)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nproviders:\n  claude: {kind: claude-code}\n")
    done = doctor(
        str(manifest), "--format", "json", "--timeout", "0.5",
        env=clean_env(PATH=f"{tmp_path / 'bin'}:{NO_CLIS}"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # a slow CLI is a warning, not a failure
    version = checks_of(report_of(done), "provider", "claude")["version"]
    assert version["verdict"] == "warn"
    assert version["message"] == "did not answer --version within 0.5 s (stopped)"
    assert "--timeout" in version["fix"]
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2
    assert all(process_gone(pid) for pid in started)


def test_failing_version_is_a_failure_and_its_output_is_scrubbed(tmp_path: Path) -> None:
    """A CLI whose --version fails is a failure quoting its output, with secrets masked."""
    fake_agent(tmp_path / "bin", "claude", output=f"boom: key {ENV_SECRET} rejected", exit_code=3)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  claude: {kind: claude-code, env: {TOKEN_X: "
        f"'{ENV_SECRET}'}}}}\n"
    )
    done = doctor(str(manifest), "--format", "json", env=clean_env(PATH=f"{tmp_path / 'bin'}"))
    assert done.returncode == 1
    version = checks_of(report_of(done), "provider", "claude")["version"]
    assert version["verdict"] == "fail"
    assert version["message"] == "--version exited with status 3: boom: key ********** rejected"
    assert_no_secret(done.stdout, done.stderr)


def test_redis_region_up_then_stopped(tmp_path: Path) -> None:
    """A real redis-server answers PING (ok); once stopped, with its port held, doctor fails the
    region with the fix, and the URL is shown without its password."""
    manifest = tmp_path / "m.yaml"
    with start_redis() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        manifest.write_text(
            "version: 1\nproviders:\n  local: {kind: anthropic-api, base_url: 'http://127.0.0.1:1'}\n"
            f"cache:\n  responses: {{backend: redis, url: '{url}', ttl: 10m}}\n"
        )
        up = doctor(str(manifest), "--format", "json")
    with held_port_number(port):
        down = doctor(str(manifest), "--format", "json")
    region = checks_of(report_of(up), "cache", "responses")["reachable"]
    assert region["verdict"] == "ok" and region["message"] == f"{url} answered PING"
    region = checks_of(report_of(down), "cache", "responses")["reachable"]
    assert down.returncode == 1
    assert region["verdict"] == "fail" and "did not answer PING" in region["message"]
    assert region["fix"] == f"start redis at {url}, or fix cache.responses.url"


def test_memcached_region_up_and_down(tmp_path: Path, memcached_server: str) -> None:
    """memcached answering `version` is ok; a held dead port fails with the fix."""
    with held_port() as dead:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            "version: 1\nproviders:\n  local: {kind: anthropic-api, base_url: 'http://127.0.0.1:1'}\n"
            f"cache:\n  up: {{backend: memcached, url: '{memcached_server}'}}\n"
            f"  down: {{backend: memcached, url: 'memcached://127.0.0.1:{dead}'}}\n"
        )
        report = report_of(doctor(str(manifest), "--format", "json"))
    up = checks_of(report, "cache", "up")["reachable"]
    assert up["verdict"] == "ok" and up["message"].startswith(
        f"{memcached_server} answered version"
    )
    down = checks_of(report, "cache", "down")["reachable"]
    assert down["verdict"] == "fail" and down["fix"].startswith("start memcached at")


def test_tls_handshake_that_never_ends_is_bounded(tmp_path: Path) -> None:
    """An https base_url whose server accepts TCP and then says nothing: the connect check
    fails at the TLS step within --timeout."""
    with silent_port() as port:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            "version: 1\nproviders:\n"
            f"  api: {{kind: anthropic-api, base_url: 'https://127.0.0.1:{port}', api_key: k}}\n"
        )
        done = doctor(str(manifest), "--format", "json", "--timeout", "0.5")
    connect = checks_of(report_of(done), "provider", "api")["connect"]
    assert done.returncode == 1
    assert (
        connect["message"] == f"no TLS handshake with 127.0.0.1:{port} within 0.5 s "
        "(the pool's connect timeout is 5 s)"
    )


def test_shared_parts_are_checked(tmp_path: Path) -> None:
    """A providers region smaller than the providers and a pool with keep-alive over its maximum
    warn; a file region in a missing folder fails; a missing key fails."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        textwrap.dedent(f"""\
            version: 1
            cache:
              providers: {{backend: memory, max_size: 1}}
              notes: {{backend: file, path: "{tmp_path / "nowhere" / "notes.dbm"}"}}
            pools:
              p: {{max_connections: 2, max_keepalive_connections: 5}}
            providers:
              a: {{kind: anthropic-api, base_url: "http://127.0.0.1:1", pool: p}}
              b: {{kind: anthropic-api, base_url: "http://127.0.0.1:1", api_key: k}}
            """)
    )
    done = doctor(str(manifest), "--format", "json")
    report = report_of(done)
    assert done.returncode == 1
    size = checks_of(report, "cache", "providers")["size"]
    assert size["verdict"] == "warn" and size["fix"] == "set cache.providers.max_size to at least 2"
    limits = checks_of(report, "pool", "p")["limits"]
    assert limits["verdict"] == "warn"
    assert limits["fix"] == "set pools.p.max_keepalive_connections to at most 2"
    notes = checks_of(report, "cache", "notes")["writable"]
    assert notes["verdict"] == "fail" and "mkdir -p" in notes["fix"]
    key = checks_of(report, "provider", "a")["key"]
    assert key["verdict"] == "fail" and "providers.a.api_key" in key["fix"]
    assert checks_of(report, "provider", "b")["key"]["verdict"] == "ok"


def test_invalid_and_unreadable_manifests(tmp_path: Path) -> None:
    """An invalid manifest fails (exit 1) listing its problems; a missing one exits 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nproviders:\n  a: {kind: anthropic-api, bse_url: x}\n")
    done = doctor(str(bad), "--format", "json")
    assert done.returncode == 1
    (check,) = report_of(done)["checks"]
    assert check["part"] == "manifest" and check["verdict"] == "fail"
    assert any("bse_url" in p for p in check["details"]["problems"])
    missing = doctor(str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2
    assert missing.stdout.startswith("fail  manifest")


def test_json_shape_is_stable(tmp_path: Path) -> None:
    """The JSON report has exactly the documented keys and types (docs/cli.md)."""
    with held_port() as port:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            f"version: 1\nproviders:\n  a: {{kind: anthropic-api, base_url: 'http://127.0.0.1:{port}'}}\n"
        )
        report = report_of(doctor(str(manifest), "--format", "json"))
    assert set(report) == {"format", "file", "ok", "counts", "checks"}
    assert report["format"] == 1
    assert set(report["counts"]) == {"ok", "warn", "fail"}
    assert sum(report["counts"].values()) == len(report["checks"])
    for check in report["checks"]:
        assert set(check) == {"part", "name", "check", "verdict", "message", "fix", "details"}
        assert check["part"] in {"manifest", "provider", "cache", "pool"}
        assert check["verdict"] in {"ok", "warn", "fail"}
        assert isinstance(check["message"], str) and isinstance(check["details"], dict)
        assert check["fix"] is None or isinstance(check["fix"], str)


def test_no_secret_in_either_format(tmp_path: Path, redis_server: str) -> None:
    """Sentinels in every secret field (api_key, CLI env values, a redis URL password, a
    base_url's userinfo, secret-named variables of the environment), on good and failing
    paths: none appears in the text or the JSON output, nor on stderr."""
    fake_agent(tmp_path / "bin", "claude")
    redis_host = redis_server.removeprefix("redis://")
    with held_port() as dead, blackholed_port() as hole:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            textwrap.dedent(f"""\
                version: 1
                cache:
                  live: {{backend: redis, url: "redis://:{REDIS_PASSWORD}@{redis_host}"}}
                  dead: {{backend: redis, url: "redis://u:{REDIS_PASSWORD}@127.0.0.1:{dead}/0"}}
                providers:
                  claude: {{kind: claude-code, env: {{ANTHROPIC_API_KEY: "{ENV_SECRET}"}}}}
                  api: {{kind: anthropic-api, api_key: "{API_KEY}",
                         base_url: "http://user:{BASE_URL_PASSWORD}@127.0.0.1:{dead}"}}
                  slow: {{kind: anthropic-api, api_key: "${{ANTHROPIC_API_KEY}}",
                          base_url: "https://user:{BASE_URL_PASSWORD}@127.0.0.1:{hole}"}}
                """)
        )
        env = clean_env(
            PATH=f"{tmp_path / 'bin'}:{NO_CLIS}",
            ANTHROPIC_API_KEY=API_KEY,
            MY_SERVICE_TOKEN=ENV_SECRET,
        )
        outputs = [
            doctor(str(manifest), *fmt, "--timeout", "0.5", env=env)
            for fmt in ((), ("--format", "json"))
        ]
    for done in outputs:
        assert done.returncode == 1, done.stdout + done.stderr
        assert_no_secret(done.stdout, done.stderr)
        assert BASE_URL_PASSWORD not in done.stdout + done.stderr
    report = report_of(outputs[1])
    assert checks_of(report, "provider", "api")["connect"]["details"]["base_url"] == (
        f"http://user:**********@127.0.0.1:{dead}"
    )
    live = checks_of(report, "cache", "live")["reachable"]
    assert live["message"] == f"redis://:**********@{redis_host} answered PING"


def test_colours_only_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the verdicts are coloured; NO_COLOR turns it off (piped output never has
    colour, see the everything-down test)."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  a: {kind: anthropic-api, api_key: k,"
        " base_url: 'http://127.0.0.1:1'}\n"
    )

    def on_a_terminal(**extra: str) -> str:
        leader, follower = pty.openpty()
        with subprocess.Popen(
            [PROVCFG, "doctor", str(manifest)],
            stdout=follower, stderr=follower, env=clean_env(**extra), close_fds=True,
        ) as process:  # fmt: skip
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the terminal closed with the process
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            process.wait(timeout=60)
        os.close(leader)
        return b"".join(chunks).decode()

    coloured = on_a_terminal()
    assert "\x1b[32mok" in coloured
    assert "\x1b[" not in on_a_terminal(NO_COLOR="1")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_positive(value: str) -> None:
    """--timeout 0, negative, NaN or infinite is a usage error (exit 2) that says what it takes."""
    done = doctor(str(EXAMPLE), "--timeout", value)
    assert done.returncode == 2
    assert "--timeout takes a positive number of seconds" in done.stderr
