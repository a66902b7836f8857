"""The real agent CLIs (Claude Code, OpenCode, Codex) for integration tests; import explicitly.

    from tests.support_clis import agent_clis_fixture, cli_home_fixture, netns_fixture  # noqa: F401

(the fixtures are named ``agent_clis``, ``cli_home`` and ``netns``).

What this module gives:

* ``agent_clis`` (session fixture): the pinned CLIs from tools/clis, installed once per
  session by scripts/install-clis.sh (idempotent). It skips only when npm itself is
  missing, and says so.
* ``netns`` (fixture) / :func:`loopback_netns`: moves the *calling thread* into a fresh
  network namespace that has nothing but ``lo``. Sockets the thread then opens (the
  stub server's listener) and processes it spawns (the CLI and its children) live in
  that namespace, so nothing can leave the machine; on exit the thread returns to its
  own namespace. Where unshare is not permitted it falls back to plain loopback and
  says so in the test output.
* :func:`netns_argv`: the same isolation for one command run by hand
  (``unshare -n`` + ``ip link set lo up``).
* ``cli_home`` (fixture): a throwaway HOME per test.
* Config writers that point each CLI at a stub ``base_url``: :func:`claude_env`,
  :func:`write_opencode_config` + :func:`opencode_env`, :func:`write_codex_config` +
  :func:`codex_env`.
* :func:`marked_processes`: the live processes carrying a test's marker variable, to
  prove that no CLI process (child or grandchild) outlives a request.

``python -m tests.support_clis capture [FOLDER]`` re-captures tests/transcripts/ from
the real CLIs against the stub (see tests/transcripts/README.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from provcfg.stub import tool_words

__all__ = [
    "CLIS_DIR",
    "INSTALL_SCRIPT",
    "MARKER_VAR",
    "STUB_KEY_VAR",
    "AgentClis",
    "Netns",
    "agent_clis_fixture",
    "claude_env",
    "cli_home_fixture",
    "codex_env",
    "install_clis",
    "loopback_netns",
    "marked_processes",
    "netns_argv",
    "netns_fixture",
    "opencode_env",
    "pinned_versions",
    "write_codex_config",
    "write_opencode_config",
]

ROOT = Path(__file__).resolve().parent.parent
CLIS_DIR = ROOT / "tools" / "clis"
INSTALL_SCRIPT = ROOT / "scripts" / "install-clis.sh"
BIN = CLIS_DIR / "node_modules" / ".bin"

# The variable holding the stub's API key, for the CLIs that read a key by variable name
# (codex's env_key, opencode's {env:...}); the key never lands in a config file.
STUB_KEY_VAR = "PROVCFG_STUB_KEY"
# Every process a test starts carries this variable; children inherit it, so scanning
# /proc for it finds grandchildren that escaped their process group too.
MARKER_VAR = "PROVCFG_TEST_MARKER"

_PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "opencode": "opencode-ai",
    "codex": "@openai/codex",
}


# --------------------------------------------------------------------------- install


@dataclass(frozen=True, slots=True)
class AgentClis:
    """Paths of the installed CLI executables and their pinned versions (name -> version)."""

    claude: Path
    opencode: Path
    codex: Path
    versions: Mapping[str, str]


def pinned_versions() -> dict[str, str]:
    """Return the exact versions pinned in tools/clis/package.json, by binary name."""
    deps = json.loads((CLIS_DIR / "package.json").read_text())["dependencies"]
    return {binary: deps[package] for binary, package in _PACKAGES.items()}


def install_clis() -> AgentClis:
    """Run scripts/install-clis.sh (a no-op when already installed) and return the CLIs.

    Raises:
        RuntimeError: the script failed; the message holds its output.
    """
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{INSTALL_SCRIPT} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return AgentClis(
        claude=BIN / "claude",
        opencode=BIN / "opencode",
        codex=BIN / "codex",
        versions=pinned_versions(),
    )


@pytest.fixture(scope="session", name="agent_clis")
def agent_clis_fixture() -> AgentClis:
    """The pinned agent CLIs, installed into tools/clis once per session (skips without npm)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip(
            "npm is not installed: the real-CLI tests need Node.js >= 18 with npm "
            "(Debian: apt-get install nodejs npm); CI installs it"
        )
    return install_clis()


@pytest.fixture(name="cli_home")
def cli_home_fixture(tmp_path: Path) -> Path:
    """A throwaway HOME for one test: the CLIs write sessions, logs and databases there."""
    home = tmp_path / "home"
    home.mkdir()
    return home


# --------------------------------------------------------------------------- network namespace

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFREQ = "16sh22x"  # struct ifreq: name, flags, padded to 40 bytes


@dataclass(frozen=True, slots=True)
class Netns:
    """Where a test's sockets and processes live.

    ``isolated``: True inside a fresh loopback-only namespace; False when the platform
    refused one and everything runs on the host's loopback (``reason`` says why).
    """

    isolated: bool
    reason: str = ""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bring_up_loopback() -> None:
    # An ioctl on a socket of the new namespace: no dependency on iproute2.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP | _IFF_RUNNING))


@contextlib.contextmanager
def loopback_netns() -> Iterator[Netns]:
    """Run the calling thread in a fresh network namespace with only ``lo`` (up).

    A network namespace belongs to a thread, not to the process: only this thread
    moves, and the sockets it opens and the processes and threads it starts meanwhile
    stay in the namespace. Other threads (and the rest of the test session) are not
    affected. On exit the thread returns to the namespace it came from.

    Yields:
        :class:`Netns`; ``isolated`` is False (and nothing changed) where the kernel
        or the sandbox refuses a new namespace (no CAP_SYS_ADMIN, not Linux).
    """
    if not sys.platform.startswith("linux"):
        yield Netns(False, f"network namespaces need Linux, this is {sys.platform}")
        return
    libc = _libc()
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        yield Netns(False, f"cannot open /proc/thread-self/ns/net: {exc.strerror}")
        return
    try:
        if libc.unshare(_CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            yield Netns(False, f"unshare(CLONE_NEWNET) refused: {os.strerror(code)}")
            return
        try:
            _bring_up_loopback()
            yield Netns(True)
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(
                    code, f"cannot return to the original network namespace: {os.strerror(code)}"
                )
    finally:
        os.close(home)


_reported_fallback: list[str] = []


@pytest.fixture(name="netns")
def netns_fixture(request: pytest.FixtureRequest) -> Iterator[Netns]:
    """The test's thread in a loopback-only network namespace (or plain loopback, said once)."""
    with loopback_netns() as where:
        if not where.isolated and not _reported_fallback:
            _reported_fallback.append(where.reason)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            if reporter is not None and capture is not None:
                # Past pytest's output capture, so that the line shows in any run.
                with capture.global_and_fixture_disabled():
                    reporter.write_line(
                        f"\nreal-CLI tests: no network namespace ({where.reason}); "
                        "running on plain loopback (every CLI is configured to the stub only)"
                    )
        yield where


def netns_argv(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` wrapped to run in a new loopback-only network namespace.

    ``unshare -n`` gives a namespace whose ``lo`` is down; ``ip link set lo up`` brings
    it up, then the shell execs the command (same pid, its exit code). Whatever the
    command must reach (the stub) has to start inside the same command.
    """
    script = 'ip link set lo up && exec "$@"'
    return ["unshare", "-n", "sh", "-c", script, "sh", *argv]


# --------------------------------------------------------------------------- processes


def marked_processes(marker: str) -> list[int]:
    """Return the pids of live (not zombie) processes whose environment holds ``marker``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ.split(b"\0") and stat[stat.rfind(b")") + 2 :][:1] != b"Z":
            found.append(int(name))
    return found


# --------------------------------------------------------------------------- configuration


def claude_env(base_url: str, home: Path, api_key: str) -> dict[str, str]:
    """Environment that points Claude Code at ``base_url`` with nothing else reachable.

    Without ``CLAUDE_CODE_MAX_RETRIES`` every failed request is retried for about three
    minutes; ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`` stops telemetry, error
    reporting and update checks.
    """
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


OPENCODE_PROVIDER = "provcfg"


def write_opencode_config(
    folder: Path,
    base_url: str,
    models: Sequence[str],
    *,
    dialect: str = "anthropic",
) -> Path:
    """Write ``folder/opencode.json`` with a provider ``provcfg`` serving ``models`` at the stub.

    ``dialect``: ``anthropic`` (the bundled ``@ai-sdk/anthropic``, ``POST /v1/messages``)
    or ``openai`` (``@ai-sdk/openai-compatible``, ``POST /v1/chat/completions``). The
    key is read from ``$PROVCFG_STUB_KEY`` at run time. opencode reads this file from
    its working folder, or from the path in ``OPENCODE_CONFIG``.

    Returns:
        The path of the written file.
    """
    npm = {"anthropic": "@ai-sdk/anthropic", "openai": "@ai-sdk/openai-compatible"}[dialect]
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            OPENCODE_PROVIDER: {
                "npm": npm,
                "name": "provcfg stub",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": f"{{env:{STUB_KEY_VAR}}}"},
                "models": {model: {"name": model} for model in models},
            }
        },
    }
    path = folder / "opencode.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def opencode_env(home: Path, api_key: str, config: Path | None = None) -> dict[str, str]:
    """Environment for ``opencode run`` against the stub: no downloads, no plugins, no update.

    ``config``: an opencode.json to use instead of the one in the working folder.
    """
    env = {
        "HOME": str(home),
        STUB_KEY_VAR: api_key,
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
        "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
        "OPENCODE_EXPERIMENTAL_DISABLE_FILEWATCHER": "1",
    }
    if config is not None:
        env["OPENCODE_CONFIG"] = str(config)
    return env


def write_codex_config(codex_home: Path, base_url: str) -> Path:
    """Write ``codex_home/config.toml``: a ``provcfg`` model provider at the stub, no retries.

    ``wire_api = "responses"`` (``POST /v1/responses``); the key comes from
    ``$PROVCFG_STUB_KEY``; retries are off so a fault ends the turn at once (codex
    otherwise reconnects five times with back-off); analytics and update checks off.

    Returns:
        The path of the written file.
    """
    codex_home.mkdir(parents=True, exist_ok=True)
    text = f"""\
model_provider = "provcfg"
check_for_update_on_startup = false

[model_providers.provcfg]
name = "provcfg stub"
base_url = "{base_url}/v1"
env_key = "{STUB_KEY_VAR}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
"""
    path = codex_home / "config.toml"
    path.write_text(text)
    return path


def codex_env(home: Path, codex_home: Path, api_key: str) -> dict[str, str]:
    """Environment for ``codex exec`` with its state under ``codex_home``."""
    return {"HOME": str(home), "CODEX_HOME": str(codex_home), STUB_KEY_VAR: api_key}


# --------------------------------------------------------------------------- capture

# name -> (cli, model, extra args, prompt); error transcripts carry "error" in the name.
_WEATHER = "What is the weather in San Francisco?"
# Every capture runs in a folder holding this file; the tool captures read it for real.
NOTES_FILE = "notes.txt"
NOTES_TEXT = "provcfg notes: read by a real tool call.\n"
# Claude Code's Read and codex's exec_command, as the stub's tool-use scenario calls them.
READ_NOTES_MODEL = "stub-tool-use-" + tool_words("Read", {"file_path": NOTES_FILE})
CAT_NOTES_MODEL = "stub-tool-use-" + tool_words("exec_command", {"cmd": f"cat {NOTES_FILE}"})
CAPTURES: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "claude-text": ("claude", "claude-sonnet-4-5", (), "Say hello."),
    "claude-text-partial": (
        "claude",
        "claude-sonnet-4-5",
        ("--include-partial-messages",),
        "Say hello.",
    ),
    "claude-tool-use": ("claude", "stub-tool-use", (), _WEATHER),
    "claude-tool-read": (
        "claude",
        READ_NOTES_MODEL,
        ("--permission-mode", "default", "--allowedTools", "Read"),
        "Read notes.txt.",
    ),
    "claude-error-401": ("claude", "stub-fault-401", (), "Say hello."),
    "claude-error-429": ("claude", "stub-fault-429-retry-after-1", (), "Say hello."),
    "claude-error-529": ("claude", "stub-fault-529", (), "Say hello."),
    "claude-error-dropped": ("claude", "stub-drop-2", (), "Say hello."),
    "claude-error-no-key": ("claude", "claude-sonnet-4-5", (), "Say hello."),
    "opencode-text": ("opencode", "claude-sonnet-4-5", (), "Say hello."),
    "opencode-text-chat": ("opencode-openai", "gpt-5.5", (), "Say hello."),
    "opencode-tool-use": ("opencode", "stub-tool-use", (), _WEATHER),
    "opencode-error-401": ("opencode", "stub-fault-401", (), "Say hello."),
    "codex-text": ("codex", "gpt-5.5", (), "Say hello."),
    "codex-tool-use": ("codex", CAT_NOTES_MODEL, (), "Show notes.txt."),
    "codex-error-401": ("codex", "stub-fault-401", (), "Say hello."),
    "codex-error-429": ("codex", "stub-fault-429-retry-after-1", (), "Say hello."),
    "codex-error-500": ("codex", "stub-fault-500", (), "Say hello."),
    "codex-error-dropped": ("codex", "stub-drop-1", (), "Say hello."),
    "codex-error-no-key": ("codex", "gpt-5.5", (), "Say hello."),
}


def capture_argv(clis: AgentClis, cli: str, model: str, extra: Sequence[str]) -> list[str]:
    """Return the command line that captures one transcript (prompt on stdin)."""
    if cli == "claude":
        base = [str(clis.claude), "-p", "--output-format", "stream-json", "--verbose"]
        return [*base, "--model", model, *extra]
    if cli.startswith("opencode"):
        return [str(clis.opencode), "run", "--format", "json", "-m", f"{OPENCODE_PROVIDER}/{model}"]
    return [
        str(clis.codex),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "read-only",
        "-m",
        model,
        *extra,
        "-",
    ]


def capture(out: Path, only: Sequence[str] = ()) -> None:
    """Capture the transcripts in :data:`CAPTURES` into ``out`` (stub and CLIs in a netns).

    ``only``: capture just these names (all when empty).
    """
    import tempfile

    from provcfg.stub import StubProcess

    clis = install_clis()
    models = sorted({m for c, m, _, _ in CAPTURES.values() if c.startswith("opencode")})
    with (
        loopback_netns() as where,
        StubProcess() as stub,
        tempfile.TemporaryDirectory(prefix="provcfg-capture-") as scratch,
    ):
        print(f"netns isolated={where.isolated} {where.reason} stub={stub.base_url}")
        for name, (cli, model, extra, prompt) in CAPTURES.items():
            if only and name not in only:
                continue
            home = Path(scratch) / name / "home"
            work = Path(scratch) / name / "work"
            home.mkdir(parents=True)
            work.mkdir()
            (work / NOTES_FILE).write_text(NOTES_TEXT)
            if cli == "claude":
                env = claude_env(stub.base_url, home, "sk-stub-capture")
            elif cli.startswith("opencode"):
                dialect = "openai" if cli == "opencode-openai" else "anthropic"
                write_opencode_config(work, stub.base_url, [*models, "gpt-5.5"], dialect=dialect)
                env = opencode_env(home, "sk-stub-capture")
            else:
                write_codex_config(home / ".codex", stub.base_url)
                env = codex_env(home, home / ".codex", "sk-stub-capture")
            if name.endswith("-no-key"):
                # No credentials at all: what a user sees before setting up a key.
                env.pop("ANTHROPIC_API_KEY", None)
                env.pop(STUB_KEY_VAR, None)
            env["PATH"] = os.environ["PATH"]
            done = subprocess.run(
                capture_argv(clis, cli, model, extra),
                input=prompt.encode(),
                capture_output=True,
                cwd=work,
                env=env,
                timeout=180,
                check=False,
            )
            (out / f"{name}.ndjson").write_bytes(done.stdout)
            lines = done.stdout.count(b"\n")
            print(f"{name}: exit {done.returncode}, {lines} lines")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "capture":
        names = [a for a in sys.argv[2:] if a in CAPTURES]
        folders = [a for a in sys.argv[2:] if a not in CAPTURES]
        target = Path(folders[0]) if folders else Path(__file__).parent / "transcripts"
        target.mkdir(exist_ok=True)
        capture(target, names)
    else:
        print("usage: python -m tests.support_clis capture [FOLDER] [NAME...]", file=sys.stderr)
        sys.exit(errno.EINVAL)
