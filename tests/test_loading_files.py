"""Every path that reads a manifest refuses non-regular files at once and reads at most the cap.

A FIFO, a socket, a character device reached through a symlink (``/dev/zero``,
``/dev/null``, ``/dev/urandom``) or a folder given as the manifest is refused with a
ManifestReadError (exit 2 in the command line) before anything is read: nothing waits
for a FIFO's writer, nothing reads an endless device. The paths: ``load_manifest``,
``provcfg.load``, ``provcfg validate``, ``show``, ``run``, ``schema --check``; the
``watch`` paths are in tests/test_reload_hostile.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import provcfg
from provcfg._errors import ManifestError, ManifestReadError
from provcfg._loading import DEFAULT_MAX_BYTES, load_manifest, read_manifest_file
from tests.support_manifest import clean_env, run_cli
from tests.support_special import EXPECTED_WORDS, SPECIAL_KINDS, make_special, open_descriptors

GOOD = "version: 1\nproviders:\n  api: {kind: anthropic-api, api_key: k}\n"


def _in_thread(call: Callable[[], object], guard: float = 30.0) -> BaseException | object:
    """Run ``call`` in a daemon thread; its result or exception. The guard only stops a hang."""
    outcome: list[BaseException | object] = []

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(guard)
    assert not thread.is_alive(), "the call blocked (a FIFO open or an endless read)"
    return outcome[0]


@pytest.fixture(params=SPECIAL_KINDS)
def special(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """A special file of each kind at tmp_path/providers.yaml."""
    kind: str = request.param
    path = tmp_path / "providers.yaml"
    release = make_special(kind, path)
    request.addfinalizer(release)
    return kind, path


def test_load_manifest_refuses_without_blocking(special: tuple[str, Path]) -> None:
    """load_manifest raises ManifestReadError naming what the path is, and never blocks."""
    kind, path = special
    outcome = _in_thread(lambda: load_manifest(path, environ={}))
    assert isinstance(outcome, ManifestReadError), outcome
    (problem,) = outcome.problems
    assert EXPECTED_WORDS[kind] in problem.message
    assert (problem.line, problem.column) == (0, 0)
    if kind.endswith("symlink"):
        assert "a symlink to /dev/" in problem.message


def test_provcfg_load_refuses_without_blocking(special: tuple[str, Path]) -> None:
    """provcfg.load (what `run` and applications call) refuses the same way."""
    outcome = _in_thread(lambda: provcfg.load(special[1], environ={}))
    assert isinstance(outcome, ManifestReadError), outcome


def test_refusals_leak_no_descriptor(special: tuple[str, Path]) -> None:
    """Refusing 200 times leaves the number of open descriptors unchanged."""
    before = open_descriptors()
    for _ in range(200):
        with pytest.raises(ManifestReadError):
            read_manifest_file(special[1])
    assert open_descriptors() == before


@pytest.mark.parametrize("command", ["validate", "show", "run"])
def test_cli_refuses_special_files_with_exit_2(
    special: tuple[str, Path], command: str, tmp_path: Path
) -> None:
    """validate, show and run exit 2 with the reason, no traceback, no hang."""
    kind, path = special
    argv = {"validate": ["validate", str(path)], "show": ["show", str(path)]}.get(
        command, ["run", "-f", str(path), "hi"]
    )
    done = run_cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    output = done.stdout + done.stderr
    assert EXPECTED_WORDS[kind] in output
    assert "Traceback" not in output


def test_schema_check_refuses_a_fifo(tmp_path: Path) -> None:
    """`provcfg schema --check -o FIFO` exits 2 instead of waiting for a writer."""
    fifo = tmp_path / "schema.json"
    os.mkfifo(fifo)
    done = run_cli("schema", "--check", "-o", str(fifo), cwd=tmp_path)
    assert done.returncode == 2
    assert "named pipe (FIFO)" in done.stderr


def test_a_sparse_300_mb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 300 MB file is refused by its size: the process's peak memory does not grow by it."""
    path = tmp_path / "big.yaml"
    with open(path, "wb") as stream:
        stream.truncate(300 * 1024 * 1024)
    script = (
        "import resource, sys\n"
        "from provcfg._loading import load_manifest\n"
        "from provcfg._errors import ManifestError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    load_manifest(sys.argv[1], environ={})\n"
        "except ManifestError as exc:\n"
        "    print(exc.problems[0].message)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=True,
    )
    message, grown_kib = done.stdout.splitlines()
    assert f"larger than the {DEFAULT_MAX_BYTES}-byte limit" in message
    assert int(grown_kib) < 50 * 1024  # KiB: far below the 300 MB a whole read would take


def test_reading_stops_at_the_cap(tmp_path: Path) -> None:
    """A file one byte over the cap is refused; one at the cap is read whole."""
    path = tmp_path / "m.yaml"
    path.write_bytes(GOOD.encode() + b"#" * (1000 - len(GOOD)))
    assert len(read_manifest_file(path, max_bytes=1000).data) == 1000
    path.write_bytes(GOOD.encode() + b"#" * (1001 - len(GOOD)))
    with pytest.raises(ManifestError, match="larger than the 1000-byte limit") as info:
        read_manifest_file(path, max_bytes=1000)
    assert not isinstance(info.value, ManifestReadError)


def test_regular_files_through_symlinks_still_load(tmp_path: Path) -> None:
    """A symlink to a regular manifest (a ConfigMap, a dotfiles repo) loads as before."""
    target = tmp_path / "real.yaml"
    target.write_text(GOOD)
    link = tmp_path / "providers.yaml"
    os.symlink(target.name, link)
    assert set(load_manifest(link, environ={}).providers) == {"api"}


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
def test_a_special_baseline_file_is_refused(tmp_path: Path, kind: str) -> None:
    """monitoring.baseline naming a FIFO or /dev/zero: a ManifestError, not a hang or a
    read without end (the same reader as the manifest)."""
    release = make_special(kind, tmp_path / "baseline.json")
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  api: {kind: anthropic-api, api_key: x, model: m-1}\n"
        "monitoring:\n  baseline: baseline.json\n  alerts:\n"
        "    - {metric: first_chunk_seconds, provider: api, above_baseline: 1.2}\n"
    )
    try:
        outcome = _in_thread(lambda: provcfg.load(manifest, environ={}))
        assert isinstance(outcome, ManifestError), outcome
        assert "not a regular file" in outcome.problems[0].message
    finally:
        release()
