"""Helpers for the hot-reload tests: manifests, the ways editors save, bounded waits.

Import explicitly: ``from tests.support_reload import ...``. Every save style writes
real files in a real folder, the way the named editor or tool does it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from provcfg._reload import LiveRuntime, ReloadEvent

__all__ = [
    "SAVE_STYLES",
    "api_manifest",
    "configmap_update",
    "configmap_write",
    "copy_over",
    "jetbrains_save",
    "os_replace",
    "read_text",
    "settled",
    "until",
    "until_event",
    "vim_backupcopy_yes",
    "vim_save",
    "vscode_atomic_save",
    "write_in_place",
    "write_in_two_parts",
]

DEAD_URL = "http://127.0.0.1:9"
"""A loopback URL nothing listens on: providers are built, never called."""


def api_manifest(
    providers: Mapping[str, int],
    *,
    base_url: str = DEAD_URL,
    model: str | None = None,
    transport: str = "fast",
    extra: str = "",
) -> str:
    """A manifest of anthropic-api providers, name -> max_tokens (change it to rebuild one)."""
    lines = ["version: 1", "providers:"]
    for name, max_tokens in providers.items():
        lines.append(
            f"  {name}: {{kind: anthropic-api, base_url: '{base_url}', api_key: stub, "
            f"transport: {transport}, max_tokens: {max_tokens}, max_retries: 0"
            + (f", model: {model}" if model else "")
            + "}"
        )
    return "\n".join(lines) + "\n" + extra


def read_text(path: Path) -> str:
    """The file's text (a plain function so async tests need no pathlib call)."""
    return path.read_text()


def write_in_place(path: Path, text: str) -> None:
    """Truncate and write the same inode (VS Code's default, ``echo > file``)."""
    with open(path, "w") as stream:
        stream.write(text)


def os_replace(path: Path, text: str) -> None:
    """Write a temporary file in the same folder and ``os.replace`` it over the target."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_two_parts(path: Path, text: str) -> None:
    """Truncate, write half, flush (a reader may see it), then the rest: a slow in-place save."""
    half = len(text) // 2
    with open(path, "w") as stream:
        stream.write(text[:half])
        stream.flush()
        os.fsync(stream.fileno())
        stream.write(text[half:])


def vscode_atomic_save(path: Path, text: str) -> None:
    """VS Code with atomic saving: write a sibling temporary file, then rename it over."""
    tmp = path.with_name(f".{path.name}.vsctmp")
    with open(tmp, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.rename(tmp, path)


def vim_backupcopy_yes(path: Path, text: str) -> None:
    """vim with ``backupcopy=yes``: copy the original to ``name~``, write in place, drop it."""
    backup = path.with_name(path.name + "~")
    shutil.copyfile(path, backup)
    with open(path, "w") as stream:  # same inode: truncate, then write
        stream.write(text)
    backup.unlink()


def vim_save(path: Path, text: str) -> None:
    """vim with ``backupcopy=no`` (its default here): probe file ``4913``, rename the
    original to ``name~``, write a new file, delete ``name~``."""
    probe = path.with_name("4913")
    probe.touch()
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    path.write_text(text)
    backup.unlink()


def jetbrains_save(path: Path, text: str) -> None:
    """JetBrains "safe write": write ``___jb_tmp___``, move the original aside, rename."""
    tmp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    tmp.write_text(text)
    os.rename(path, old)
    os.rename(tmp, path)
    old.unlink()


def copy_over(path: Path, text: str) -> None:
    """``cp new providers.yaml``: copy a file from elsewhere over the target."""
    source = path.with_name(f".source{os.getpid()}")
    source.write_text(text)
    shutil.copyfile(source, path)
    source.unlink()


SAVE_STYLES: dict[str, Callable[[Path, str], None]] = {
    "in-place (vscode default)": write_in_place,
    "in-place in two parts": write_in_two_parts,
    "vscode-atomic": vscode_atomic_save,
    "os.replace": os_replace,
    "vim backupcopy=no": vim_save,
    "vim backupcopy=yes": vim_backupcopy_yes,
    "jetbrains safe write": jetbrains_save,
    "cp": copy_over,
}


def configmap_write(folder: Path, name: str, text: str, stamp: str) -> Path:
    """Lay out a Kubernetes ConfigMap volume: ``name -> ..data/name``, ``..data -> ..stamp``."""
    data_dir = folder / f"..{stamp}"
    data_dir.mkdir()
    (data_dir / name).write_text(text)
    os.symlink(data_dir.name, folder / "..data")
    os.symlink(f"..data/{name}", folder / name)
    return folder / name


def configmap_update(folder: Path, name: str, text: str, stamp: str) -> None:
    """Update like the kubelet: new timestamped folder, swap ``..data`` atomically, remove old."""
    old = os.readlink(folder / "..data")
    data_dir = folder / f"..{stamp}"
    data_dir.mkdir()
    (data_dir / name).write_text(text)
    tmp_link = folder / "..data_tmp"
    os.symlink(data_dir.name, tmp_link)
    os.rename(tmp_link, folder / "..data")
    shutil.rmtree(folder / old)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds; TimeoutError names nothing else."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def settled(live: LiveRuntime, timeout: float = 10.0) -> None:
    """Wait until the re-check made once the watcher listens has run (so the next save
    is heard by the watch itself, not picked up by that re-check)."""
    await until(lambda: live.runtime.metrics.counter("reload_unchanged") >= 1, timeout)


async def until_event(
    live: LiveRuntime, condition: Callable[[ReloadEvent], bool], timeout: float = 10.0
) -> ReloadEvent:
    """The first reload event (from now) for which ``condition`` holds."""
    async with asyncio.timeout(timeout):
        while True:
            event = await live.reload_event()
            if condition(event):
                return event
