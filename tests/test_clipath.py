"""CLIResolver on real files: lookup order, skipping bad candidates, cache, invalidation."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provcfg._clipath import CLIResolver
from provcfg._errors import CLINotFoundError
from provcfg._metrics import Metrics

HINT = "Install it with: npm install -g @anthropic-ai/claude-code"


def make_exe(folder: Path, name: str = "claude", body: str = "echo hi") -> Path:
    """Create an executable shell script ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / name
    file.write_text(f"#!/bin/sh\n{body}\n")
    file.chmod(0o755)
    return file


def resolve(
    r: CLIResolver,
    command: str = "claude",
    *,
    path: str | None = None,
    search_paths: tuple[str, ...] = (),
    provider: str = "",
) -> Path:
    """resolve() with the defaults a test does not care about."""
    return r.resolve(
        command, path=path, search_paths=search_paths, install_hint=HINT, provider=provider
    )


@pytest.fixture
def resolver() -> Iterator[CLIResolver]:
    """A resolver whose descriptors are released after the test."""
    r = CLIResolver(Metrics())
    yield r
    r.close()


@pytest.fixture
def bin_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two empty folders; PATH is exactly ``first:second``."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("PATH", f"{first}{os.pathsep}{second}")
    return first, second


def test_path_lookup_finds_first_match(resolver: CLIResolver, bin_dirs: tuple[Path, Path]) -> None:
    """The first executable on PATH wins, as with shutil.which."""
    first, second = bin_dirs
    make_exe(second)
    want = make_exe(first)
    assert resolve(resolver) == want


def test_explicit_path_beats_path(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """An explicit path is used even when PATH has the command."""
    make_exe(bin_dirs[0])
    explicit = make_exe(tmp_path / "elsewhere", "my-claude")
    assert resolve(resolver, path=str(explicit)) == explicit


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable"])
def test_bad_explicit_path_is_a_clear_error(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path], tmp_path: Path, kind: str
) -> None:
    """A bad explicit path raises naming it and why, and does not fall back to PATH."""
    make_exe(bin_dirs[0])
    bad = tmp_path / "bad-claude"
    if kind == "directory":
        bad.mkdir()
    elif kind == "not-executable":
        bad.write_text("#!/bin/sh\n")
        bad.chmod(0o644)
    with pytest.raises(CLINotFoundError) as info:
        resolve(resolver, path=str(bad), provider="claude")
    text = str(info.value)
    assert str(bad) in text
    reason = {"missing": "does not exist", "directory": "a directory"}.get(kind, "not executable")
    assert reason in text
    assert "providers.claude.path" in text
    assert info.value.kind == "cli_not_found"
    assert info.value.provider == "claude"


def test_search_paths_expand_home(
    resolver: CLIResolver,
    bin_dirs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """search_paths are tried after PATH with ~ expanded from HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    want = make_exe(home / ".claude" / "local")
    assert resolve(resolver, search_paths=("~/.claude/local",)) == want


def test_directory_and_non_executable_are_skipped(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """A folder or a non-executable file named like the command is passed over."""
    first, second = bin_dirs
    (first / "claude").mkdir()
    plain = second / "claude"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    later = make_exe(first.parent / "third")
    assert resolve(resolver, search_paths=(str(later.parent),)) == later


def test_not_found_lists_every_place_and_the_hint(
    resolver: CLIResolver,
    bin_dirs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLINotFoundError lists PATH folders then search_paths, in order, and how to install."""
    first, second = bin_dirs
    (first / "claude").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(CLINotFoundError) as info:
        resolve(resolver, search_paths=("~/.claude/local",), provider="claude")
    err = info.value
    expanded = str(tmp_path / "home" / ".claude" / "local")
    assert [s.split(" (")[0] for s in err.searched] == [
        f"PATH {first}",
        f"PATH {second}",
        f"search_paths {expanded}",
    ]
    assert "a directory" in err.searched[0]
    assert "from ~/.claude/local" in err.searched[2]
    assert str(second) in str(err)
    assert str(err).endswith(HINT)
    assert err.command == "claude"


def test_cache_hit_returns_same_path_and_counts(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """A second resolve is a hit and is recorded as such; detection time is observed once."""
    make_exe(bin_dirs[0])
    metrics = resolver._metrics
    a = resolve(resolver)
    b = resolve(resolver)
    assert a is b
    assert metrics.counter("cli_path_miss", "claude") == 1
    assert metrics.counter("cli_path_hit", "claude") == 1
    summary = metrics.summary("cli_detect_seconds", "claude")
    assert summary is not None
    assert summary.count == 1


def test_path_change_is_a_new_key(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing PATH re-detects, and changing it back hits the old entry again."""
    first, second = bin_dirs
    in_first, in_second = make_exe(first), make_exe(second)
    assert resolve(resolver) == in_first
    monkeypatch.setenv("PATH", str(second))
    assert resolve(resolver) == in_second
    monkeypatch.setenv("PATH", f"{first}{os.pathsep}{second}")
    assert resolve(resolver) == in_first
    assert resolver._metrics.counter("cli_path_miss", "claude") == 2


def test_configuration_change_is_a_new_key(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """Different explicit path or search_paths give their own results."""
    on_path = make_exe(bin_dirs[0])
    explicit = make_exe(tmp_path / "x", "claude")
    assert resolve(resolver) == on_path
    assert resolve(resolver, path=str(explicit)) == explicit
    assert resolve(resolver) == on_path


def test_removal_falls_back_to_next_candidate(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """Removing the resolved file is noticed on the next call, which finds the next one."""
    first, second = bin_dirs
    gone = make_exe(first)
    fallback = make_exe(second)
    assert resolve(resolver) == gone
    gone.unlink()
    assert resolve(resolver) == fallback


def test_removal_without_fallback_raises(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """Removing the only candidate turns the cached hit into CLINotFoundError."""
    only = make_exe(bin_dirs[0])
    resolve(resolver)
    only.unlink()
    with pytest.raises(CLINotFoundError):
        resolve(resolver)


def test_replacement_is_noticed(resolver: CLIResolver, bin_dirs: tuple[Path, Path]) -> None:
    """os.replace of a new file over the resolved one forces a fresh detection."""
    first = bin_dirs[0]
    target = make_exe(first)
    resolve(resolver)
    fresh = make_exe(first, "claude.new", "echo new")
    os.replace(fresh, target)
    assert resolve(resolver) == target
    assert resolver._metrics.counter("cli_path_miss", "claude") == 2


def test_chmod_minus_x_is_noticed(resolver: CLIResolver, bin_dirs: tuple[Path, Path]) -> None:
    """Dropping the execute bit on the cached file moves on to the next candidate."""
    first, second = bin_dirs
    target = make_exe(first)
    fallback = make_exe(second)
    resolve(resolver)
    target.chmod(0o644)
    assert resolve(resolver) == fallback


def test_rename_away_is_noticed_by_invalidate(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """After a move-away, invalidate(folder) (the watcher's call) makes the next call re-detect."""
    first, second = bin_dirs
    target = make_exe(first)
    fallback = make_exe(second)
    resolve(resolver)
    target.rename(first / "claude.old")
    assert resolver.invalidate(first) == 1
    assert resolve(resolver) == fallback


def test_watched_dirs_and_invalidate_all(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """watched_dirs names the folders of cached files; invalidate() empties the cache."""
    make_exe(bin_dirs[0])
    other = make_exe(tmp_path / "opt", "codex")
    resolve(resolver)
    resolve(resolver, "codex", path=str(other))
    assert resolver.watched_dirs() == {bin_dirs[0], other.parent}
    assert resolver.invalidate() == 2
    assert resolver.watched_dirs() == set()
    assert resolver.invalidate(other) == 0


def test_descriptors_are_released(resolver: CLIResolver, bin_dirs: tuple[Path, Path]) -> None:
    """Cached entries hold descriptors only until close(), also across many re-detections."""
    first = bin_dirs[0]
    target = make_exe(first)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(50):
        os.replace(make_exe(first, "claude.new", f"echo {i}"), target)
        resolve(resolver)
    resolver.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_concurrent_first_calls_detect_once(
    resolver: CLIResolver, bin_dirs: tuple[Path, Path]
) -> None:
    """Sixteen threads resolving at once all get the same path and detection runs once."""
    want = make_exe(bin_dirs[0])
    barrier = threading.Barrier(16)
    results: list[Path] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                results.append(resolve(resolver))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 16 * 200
    assert set(results) == {want}
    assert resolver._metrics.counter("cli_path_miss", "claude") == 1


def test_dropped_resolver_releases_descriptors(bin_dirs: tuple[Path, Path]) -> None:
    """A resolver garbage-collected without close() still closes its descriptors."""
    import gc

    make_exe(bin_dirs[0])
    before = len(os.listdir("/proc/self/fd"))
    r = CLIResolver(Metrics())
    resolve(r)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    del r
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def _shared_region() -> Any:
    from provcfg._cache import build_region
    from provcfg._manifest import MemoryRegionSpec

    spec = MemoryRegionSpec(backend="memory", max_size=8)
    return build_region("cli_paths", spec, namespace="test", metrics=Metrics())


def _shared_key(search_paths: tuple[str, ...] = ()) -> str:
    from provcfg._cache._keys import fields_key

    return fields_key("cli_path", "claude", None, search_paths, os.environ["PATH"])


def test_shared_region_hit_skips_the_scan(bin_dirs: tuple[Path, Path]) -> None:
    """An L1 miss trusts a plausible, executable path from the shared region instead of scanning."""
    first, second = bin_dirs
    make_exe(first)
    later = make_exe(second)
    region = _shared_region()
    # The scan would pick first/claude; the shared entry names second/claude (also on PATH).
    region.set(_shared_key(), str(later))
    metrics = Metrics()
    r = CLIResolver(metrics)
    try:
        got = r.resolve("claude", path=None, search_paths=(), install_hint=HINT, shared=region)
        assert got == later
        assert metrics.counter("cli_path_shared_hit", "claude") == 1
        assert metrics.summary("cli_detect_seconds", "claude") is None
    finally:
        r.close()


def test_shared_region_is_filled_by_a_scan(bin_dirs: tuple[Path, Path]) -> None:
    """A fresh detection is written to the shared region under the cross-process key."""
    first, _ = bin_dirs
    exe = make_exe(first)
    region = _shared_region()
    r = CLIResolver(Metrics())
    try:
        r.resolve("claude", path=None, search_paths=(), install_hint=HINT, shared=region)
        assert region.get(_shared_key()) == str(exe)
    finally:
        r.close()


@pytest.mark.parametrize("where", ["elsewhere", "renamed", "not-executable", "not-a-str"])
def test_implausible_or_unusable_shared_entry_is_rejected(
    bin_dirs: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    """A shared entry outside the search, under another name or not executable is rescanned."""
    first, second = bin_dirs
    exe = make_exe(first)
    bad: object
    if where == "elsewhere":
        bad = str(make_exe(tmp_path / "evil"))
    elif where == "renamed":
        bad = str(make_exe(second, "other"))
    elif where == "not-executable":
        bad = str(make_exe(second))
        Path(str(bad)).chmod(0o644)
    else:
        bad = 42
    region = _shared_region()
    region.set(_shared_key(), bad)
    metrics = Metrics()
    r = CLIResolver(metrics)
    try:
        got = r.resolve("claude", path=None, search_paths=(), install_hint=HINT, shared=region)
        assert got == exe
        assert metrics.counter("cli_path_shared_stale", "claude") == 1
        assert region.get(_shared_key()) == str(exe)
    finally:
        r.close()
