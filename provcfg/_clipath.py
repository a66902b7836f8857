"""Finding the agent CLIs (``claude``, ``opencode``, ``codex``) and remembering where they are.

:class:`CLIResolver` looks in the explicit ``path`` first, then on ``PATH`` (the
semantics of :func:`shutil.which`), then in the provider's ``search_paths`` (``~``
expanded), and accepts only an executable regular file. A found file is cached
under the key ``(command, path, search_paths, PATH value)``, so a change of the
configuration or of ``PATH`` is simply a different key.

Checking a cached file on use: the budget for a cached resolve is about 2 us, and
on this machine kind ``os.stat`` of a path costs about 2.4 us by itself (path
lookup), while ``os.fstat`` of an open descriptor costs about 1.1 us. So each
entry keeps an ``O_PATH`` descriptor (no read access needed, never blocks
anyone from writing or executing the file) and every hit compares ``fstat`` of
it with the identity recorded at detection: ``(st_mode, st_ino, st_dev, st_nlink,
st_uid, st_gid, st_size, st_mtime_ns)``. That catches, on the very next call:

* removal (``rm``) and replacement (``os.replace``, ``npm i -g``, ``cp`` to a
  temp name then rename): the old inode loses its last link, ``st_nlink`` drops;
* a rewrite in place (``st_mtime_ns``/``st_size``) and ``chmod -x`` (``st_mode``).

A descriptor cannot see the *path* move away from the inode (``mv claude
claude.old`` while nothing unlinks the file, or a symlink re-pointed while its
old target lives on). For those, one hit per second at most also stats the path
itself (about 2 us, once a second), the hot-reload watcher calls
:meth:`CLIResolver.invalidate` when a folder from :meth:`CLIResolver.watched_dirs`
changes, and a caller whose exec fails with ``FileNotFoundError`` can call
``invalidate(path)`` and resolve again. A new binary of the same name appearing
earlier on an unchanged ``PATH`` is not noticed until one of those happens.

With a watcher (``CLIResolver(metrics, watch=True)``, what the runtime builds), a hit
makes no system call at all: a thread watches the folders of every hop of each cached
file's symlink chain (watchfiles, non-recursive), and once that watch is listening the
entries it covers are marked *watched*; a hit on a watched entry is a dict lookup and
an attribute read. A change that names a hop drops the entry (the next call detects
again) within the watch's 50 ms step; until then a hit returns the same path, which a
replaced binary still answers to. Entries the watch does not cover yet (just detected,
or the watcher could not start) keep the ``fstat`` check above.

Listeners (:meth:`CLIResolver.on_change`) hear about every file whose entry was dropped
because it changed or was invalidated: the warm-process pool retires the spares of an
old binary that way.

The resolver owns its descriptors (one per cached file): :meth:`CLIResolver.close`
releases them, and so does garbage collection of a resolver never closed.

A second level (``shared=``, the manifest's ``cli_paths`` cache region) carries
detections across processes: on a miss of the in-process cache the resolver
reads the region under ``fields_key("cli_path", command, path, search_paths,
PATH)`` (sha256, the same in every process). A path found there is trusted only
if it is a place this very search could have produced (the explicit path, or
``command`` directly in a PATH folder or a search path: a shared cache must not
be able to point at any other program) and it is still an executable regular
file; then the scan is skipped. Otherwise, and on a miss, the scan runs and its
result is written back (a stale entry whose file is gone is deleted when the
scan finds nothing).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from provcfg._errors import CLINotFoundError
from provcfg._logs import get_logger
from provcfg._metrics import Metrics

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

__all__ = ["CLIResolver", "CliLookup"]

_log = get_logger(__name__)

# A path-based stat at most this often per entry: catches a path moved away from the inode.
_PATH_RECHECK_SECONDS: Final = 1.0
# Keys include PATH, so a process that keeps changing PATH would grow the cache forever.
_MAX_ENTRIES: Final = 256
# os.environ.get("PATH") costs ~0.7 us (Mapping.get, key encoding, value decoding); the
# encoded key looked up in the underlying dict costs ~50 ns and sees every os.environ write.
_PATH_KEY: Final = os.environ.encodekey("PATH")
# os.environ's underlying dict: every os.environ write lands there (the object never changes).
_ENV_DATA: Final[dict[object, object]] = getattr(os.environ, "_data", {})
_OPEN_FLAGS: Final = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
# Module-level bindings: each saves an attribute lookup on the cached path.
_fstat: Final = os.fstat
_monotonic: Final = time.monotonic

_Key = tuple[str, str | None, tuple[str, ...], object]


def _decode_path(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return os.fsdecode(raw)
    return str(raw)


def _stat_or_none(file: str) -> os.stat_result | None:
    try:
        return os.stat(file)
    except OSError:
        return None


def _unusable(candidate: str) -> str | None:
    """Why ``candidate`` cannot be run, or None when it is an executable regular file."""
    try:
        st = os.stat(candidate)
    except FileNotFoundError:
        return "broken symlink" if os.path.islink(candidate) else "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not os.access(candidate, os.X_OK):
        return "not executable"
    return None


class _Entry:
    """One cached resolution: the file, a descriptor on it and its identity when found.

    The identity is ``st[:7]`` (mode, inode, device, link count, uid, gid, size: one C
    slice instead of six attribute reads) plus ``st_mtime_ns``.
    """

    __slots__ = (
        "checked_at",
        "command",
        "fd",
        "file",
        "head",
        "hits",
        "hops",
        "mtime_ns",
        "raw_path",
        "result",
        "watched",
    )

    def __init__(self, result: Path, file: str, fd: int, st: os.stat_result) -> None:
        self.result = result
        self.file = file
        self.fd = fd
        self.head: tuple[int, ...] = st[:7]
        self.mtime_ns = st.st_mtime_ns
        self.checked_at = _monotonic()
        self.hops = _hops(file)
        # Set by the watcher once its watch covers every hop's folder: no check on a hit.
        self.watched = False
        # Watched hits are counted here (an integer add), read by the metrics as a source.
        self.hits = 0
        self.command = ""
        self.raw_path: object = None  # the PATH value (object) of its key

    def close(self) -> None:
        """Dropped (invalidated, changed on disk, resolver closed): a lookup that still
        holds this entry must not serve it from its no-check fast path any more."""
        self.watched = False
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _unchanged(entry: _Entry, now: float) -> bool:
    """Whether the entry's descriptor and path still show the file recorded at detection."""
    try:
        st = _fstat(entry.fd)
    except OSError:
        return False
    return st[:7] == entry.head and st.st_mtime_ns == entry.mtime_ns and _same_file(entry, now)


def _same_file(entry: _Entry, now: float) -> bool:
    """Whether the path still names the inode the descriptor holds (the once-a-second check)."""
    st = _stat_or_none(entry.file)
    if st is None or st[:7] != entry.head or st.st_mtime_ns != entry.mtime_ns:
        return False
    entry.checked_at = now
    return True


class CLIResolver:
    """Resolves CLI commands to executable files, with a cache that checks itself on use.

    Thread-safe: hits take no lock; misses are detected under one lock, so
    concurrent first calls for the same key detect once.
    """

    def __init__(self, metrics: Metrics, *, watch: bool = False) -> None:
        self._metrics = metrics
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], object]] = []
        self._watch_wanted = watch
        self._watch: _BinaryWatch | None = None
        self._retired_hits: dict[str, int] = {}
        metrics.add_counter_source(self._hit_counts)
        self._stopped_watch: _BinaryWatch | None = None
        # A resolver dropped without close() still releases its descriptors when collected.
        weakref.finalize(self, _close_entries, self._entries)

    def _hit_counts(self) -> dict[tuple[str, str], int]:
        """Watched hits per command (``cli_path_hit``), for the metrics."""
        counts = dict(self._retired_hits)
        for entry in list(self._entries.values()):
            counts[entry.command] = counts.get(entry.command, 0) + entry.hits
        return {("cli_path_hit", command): n for command, n in counts.items() if n}

    def entry(self, command: str, path: str | None, search_paths: tuple[str, ...]) -> Any:
        """The cached entry for this lookup under the current PATH (None if not cached):
        what :class:`CliLookup` keeps for its no-call fast path."""
        return self._entries.get((command, path, search_paths, _ENV_DATA.get(_PATH_KEY)))

    def on_change(self, listener: Callable[[str], object]) -> None:
        """Call ``listener(file)`` whenever a cached file is dropped because it changed on
        disk or was invalidated (from whatever thread noticed)."""
        self._listeners.append(listener)

    @property
    def watching(self) -> bool:
        """Whether a watcher covers the cached files (hits then make no system call)."""
        return self._watch is not None and self._watch.listening

    def resolve(
        self,
        command: str,
        *,
        path: str | None,
        search_paths: tuple[str, ...],
        install_hint: str,
        provider: str = "",
        shared: CacheRegion | None = None,
    ) -> Path:
        """Return the executable file that runs ``command``.

        Order: the explicit ``path`` (no fallback when it is set), then ``PATH``
        as :func:`shutil.which` reads it, then ``search_paths`` with ``~``
        expanded. Directories, non-regular and non-executable files are skipped.
        ``shared`` is a second-level cache region consulted (and filled) only
        when the in-process cache misses; see the module docstring.

        Returns:
            An absolute path to an executable regular file.

        Raises:
            CLINotFoundError: nothing usable was found; ``searched`` lists every
                place looked, in order, with the reason a candidate there was
                skipped, and the message ends with ``install_hint``.
        """
        try:
            raw_path = os.environ._data.get(_PATH_KEY)  # type: ignore[attr-defined]
        except AttributeError:  # an os.environ replaced by a plain mapping
            raw_path = os.environ.get("PATH")
        key: _Key = (command, path, search_paths, raw_path)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.watched:
                entry.hits += 1
                return entry.result
            st: os.stat_result | None
            try:
                st = _fstat(entry.fd)
            except OSError:  # no descriptor (could not open the file) or closed meanwhile
                st = _stat_or_none(entry.file)
            if st is not None and st[:7] == entry.head and st.st_mtime_ns == entry.mtime_ns:
                now = _monotonic()
                if now - entry.checked_at < _PATH_RECHECK_SECONDS or _same_file(entry, now):
                    self._metrics.incr("cli_path_hit", command)
                    return entry.result
            self._drop(key, entry)
        return self._detect(key, install_hint, provider, shared)

    def invalidate(self, path_or_none: str | os.PathLike[str] | None = None) -> int:
        """Forget cached resolutions.

        ``None`` forgets all of them; a file forgets the entries that resolved to
        it; a folder forgets the entries whose file lives directly in it (what
        the watcher sees change). Returns how many entries were dropped.
        """
        with self._lock:
            if path_or_none is None:
                doomed = list(self._entries)
            else:
                target = os.path.abspath(os.fspath(path_or_none))
                doomed = [
                    key
                    for key, entry in self._entries.items()
                    if target in (entry.file, os.path.dirname(entry.file))
                ]
            files = []
            for key in doomed:
                entry = self._entries.pop(key)
                self._retire(entry)
                files.append(entry.file)
        if doomed:
            _log.debug("cli_path_invalidated", target=str(path_or_none), entries=len(doomed))
            self._changed_files(files)
        return len(doomed)

    def _changed_files(self, files: list[str]) -> None:
        for file in dict.fromkeys(files):
            for listener in list(self._listeners):
                try:
                    listener(file)
                except Exception as exc:  # one listener must not break resolving
                    _log.warning("cli_path_listener_failed", error=repr(exc))

    def changed(self, paths: list[str]) -> int:
        """The watcher saw ``paths`` change: drop the entries one of whose hops they name."""
        touched = set(paths)
        with self._lock:
            doomed = [k for k, e in self._entries.items() if e.hops & touched]
            files = []
            for key in doomed:
                entry = self._entries.pop(key)
                self._retire(entry)
                files.append(entry.file)
        if files:
            _log.debug("cli_path_changed", files=files)
            self._changed_files(files)
        return len(files)

    def watch_folders(self) -> frozenset[str]:
        """The folders holding a hop of some cached file (what the watcher watches)."""
        with self._lock:
            return frozenset(os.path.dirname(h) for e in self._entries.values() for h in e.hops)

    def mark_watched(self, folders: frozenset[str]) -> None:
        """The watch over ``folders`` is listening: entries it fully covers skip the check.

        Each is checked once more first (a change may have slipped in while the watch
        restarted); one that changed is dropped instead.
        """
        now = _monotonic()
        with self._lock:
            stale = []
            for key, entry in self._entries.items():
                covered = bool(folders) and all(os.path.dirname(h) in folders for h in entry.hops)
                if covered and not _unchanged(entry, now):
                    stale.append(key)
                    covered = False
                entry.watched = covered
            files = []
            for key in stale:
                entry = self._entries.pop(key)
                self._retire(entry)
                files.append(entry.file)
        if files:
            self._changed_files(files)

    def watched_dirs(self) -> set[Path]:
        """The folders holding the currently cached executables (for the hot-reload watcher)."""
        with self._lock:
            return {entry.result.parent for entry in self._entries.values()}

    def close(self) -> None:
        """Release every cached descriptor and stop the watcher; the resolver stays usable
        (re-detects, and checks each hit with fstat)."""
        self._watch_wanted = False
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
            self._stopped_watch = watch
        self.invalidate(None)

    def join_watcher(self, timeout: float = 2.0) -> None:
        """Wait for a watcher stopped by :meth:`close` to end (it releases its inotify fd)."""
        watch = self._stopped_watch
        if watch is not None:
            watch.join(timeout)

    def _retire(self, entry: _Entry) -> None:
        """Close a dropped entry, keeping its hit count (lock held)."""
        if entry.hits:
            self._retired_hits[entry.command] = (
                self._retired_hits.get(entry.command, 0) + entry.hits
            )
            entry.hits = 0
        entry.close()

    def _drop(self, key: _Key, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is not entry:
                return
            del self._entries[key]
            self._retire(entry)
        self._changed_files([entry.file])

    def _detect(
        self, key: _Key, install_hint: str, provider: str, shared: CacheRegion | None
    ) -> Path:
        command, path, search_paths, raw_path = key
        path_value = _decode_path(raw_path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:  # another thread detected it while we waited
                self._metrics.incr("cli_path_hit", command)
                return entry.result
            self._metrics.incr("cli_path_miss", command)
            shared_key = None
            if shared is not None:
                from provcfg._cache._keys import fields_key

                shared_key = fields_key("cli_path", command, path, search_paths, path_value)
                entry = self._from_shared(shared, shared_key, key, path_value)
            if entry is None:
                entry = self._scan(
                    key,
                    path_value=path_value,
                    install_hint=install_hint,
                    provider=provider,
                    shared=shared,
                    shared_key=shared_key,
                )
            if len(self._entries) >= _MAX_ENTRIES:
                oldest = next(iter(self._entries))
                self._retire(self._entries.pop(oldest))
            entry.command = command
            entry.raw_path = raw_path
            self._entries[key] = entry
            if self._watch_wanted and self._watch is None:
                self._watch = _BinaryWatch(self)
        if self._watch is not None:
            self._watch.refresh()
        return entry.result

    def _from_shared(
        self, shared: CacheRegion, shared_key: str, key: _Key, path_value: str | None
    ) -> _Entry | None:
        """The second-level entry, if it is plausible and still an executable file."""
        from dogpile.cache.api import NO_VALUE

        command, path, search_paths, _ = key
        file = shared.get(shared_key)
        if file is NO_VALUE:
            return None
        if (
            isinstance(file, str)
            and _plausible(file, command, path, search_paths, path_value)
            and _unusable(file) is None
        ):
            try:
                entry = _open_entry(file)
            except OSError:  # removed between the check and the open
                pass
            else:
                self._metrics.incr("cli_path_shared_hit", command)
                return entry
        self._metrics.incr("cli_path_shared_stale", command)
        _log.info("cli_path_shared_stale", command=command, file=str(file)[:300])
        return None

    def _scan(
        self,
        key: _Key,
        *,
        path_value: str | None,
        install_hint: str,
        provider: str,
        shared: CacheRegion | None,
        shared_key: str | None,
    ) -> _Entry:
        command, path, search_paths, _ = key
        start = time.perf_counter()
        try:
            file = _search(command, path, search_paths, path_value)
            entry = None if file is None else _open_entry(file)
        finally:
            self._metrics.observe("cli_detect_seconds", time.perf_counter() - start, command)
        if shared is not None and shared_key is not None:
            # A stale entry must not make every process verify (and reject) it again.
            if file is None:
                shared.delete(shared_key)
            else:
                shared.set(shared_key, file)
        if file is None or entry is None:
            raise _not_found(
                command,
                path=path,
                search_paths=search_paths,
                path_value=path_value,
                install_hint=install_hint,
                provider=provider,
            )
        _log.debug("cli_path_detected", command=command, provider=provider, file=file)
        return entry


def _hops(file: str) -> frozenset[str]:
    """``file`` and every symlink hop after it, as absolute paths (at most 40 hops)."""
    hops = [file]
    current = file
    for _ in range(40):
        try:
            target = os.readlink(current)
        except OSError:
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        hops.append(current)
    return frozenset(hops)


class _BinaryWatch:
    """The resolver's watcher thread: watchfiles over the cached files' folders.

    Restarts when the wanted folders change (a new CLI resolved); after each start,
    once watchfiles polls its stop signal (its watches exist by then), it marks the
    entries it covers as watched. It holds the resolver weakly and ends with it.
    """

    def __init__(self, resolver: CLIResolver) -> None:
        self._resolver = weakref.ref(resolver)
        self._stopped = False
        self._restart = False
        self.listening = False
        self._folders: frozenset[str] = frozenset()
        self._thread = threading.Thread(target=self._run, name="provcfg-cli-watch", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Restart the watch if the wanted folders changed."""
        resolver = self._resolver()
        if resolver is not None and resolver.watch_folders() != self._folders:
            self._restart = True

    def stop(self) -> None:
        """Stop watching (returns at once; the thread ends within one step)."""
        self._stopped = True
        self.listening = False

    def join(self, timeout: float) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _done(self) -> bool:
        return self._stopped or self._resolver() is None

    def _run(self) -> None:
        try:
            from watchfiles import watch
        except ImportError:  # pragma: no cover - a dependency; fstat checks stay
            return
        while not self._done():
            resolver = self._resolver()
            folders = resolver.watch_folders() if resolver is not None else frozenset()
            folders = frozenset(f for f in folders if os.path.isdir(f))
            self._folders = folders
            self._restart = False
            if resolver is not None:
                resolver.mark_watched(frozenset())  # fstat checks until the new watch listens
            del resolver
            if not folders:
                time.sleep(0.2)
                continue
            try:
                self._watch_once(watch, folders)
            except Exception as exc:  # a folder vanished: drop everything, try again
                self.listening = False
                _log.warning("cli_watch_failed", error=f"{type(exc).__name__}: {exc}")
                resolver = self._resolver()
                if resolver is not None:
                    resolver.invalidate(None)
                time.sleep(0.5)

    def _watch_once(self, watch: Any, folders: frozenset[str]) -> None:
        stop = _ThreadStop(self, folders)
        for batch in watch(
            *sorted(folders),
            stop_event=stop,
            debounce=200,
            step=50,
            rust_timeout=500,
            yield_on_timeout=True,
            recursive=False,
            raise_interrupt=False,
        ):
            resolver = self._resolver()
            if resolver is None:
                return
            if batch:
                resolver.changed([os.path.abspath(p) for _, p in batch])
                self._restart = self._restart or resolver.watch_folders() != folders
            if self._restart:
                return
        self.listening = False


class _ThreadStop:
    """watchfiles' ``stop_event``: its first poll means the watch is listening."""

    def __init__(self, watch: _BinaryWatch, folders: frozenset[str]) -> None:
        self._watch = watch
        self._folders = folders
        self._polled = False

    def is_set(self) -> bool:
        if not self._polled:
            self._polled = True
            resolver = self._watch._resolver()
            if resolver is not None:
                resolver.mark_watched(self._folders)
                self._watch.listening = True
        return self._watch._done() or self._watch._restart


def _plausible(
    file: str,
    command: str,
    path: str | None,
    search_paths: tuple[str, ...],
    path_value: str | None,
) -> bool:
    """Whether ``file`` is a place :func:`_search` could have returned for this key."""
    if path is not None:
        return file == os.path.abspath(os.path.expanduser(path))
    if os.path.dirname(command):
        return file == os.path.abspath(command)
    if os.path.basename(file) != command:
        return False
    folder = os.path.dirname(file)
    folders = [os.path.abspath(d) for d in _path_dirs(path_value)]
    folders.extend(os.path.abspath(os.path.expanduser(s)) for s in search_paths)
    return folder in folders


def _close_entries(entries: dict[_Key, _Entry]) -> None:
    for entry in list(entries.values()):
        entry.close()
    entries.clear()


def _open_entry(file: str) -> _Entry:
    try:
        fd = os.open(file, _OPEN_FLAGS)
    except OSError:  # e.g. mode 0711 on a system without O_PATH: fall back to path stats
        fd = -1
    try:
        st = os.fstat(fd) if fd >= 0 else os.stat(file)
    except OSError:
        if fd >= 0:
            os.close(fd)
        raise
    return _Entry(Path(file), file, fd, st)


def _path_dirs(path_value: str | None) -> list[str]:
    """PATH as :func:`shutil.which` reads it: unset means the system default, empty means none."""
    if path_value is None:
        try:
            path_value = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            path_value = os.defpath
    if not path_value:
        return []
    return [d for d in path_value.split(os.pathsep) if d]


def _search(
    command: str, path: str | None, search_paths: tuple[str, ...], path_value: str | None
) -> str | None:
    if path is not None:
        candidate = os.path.abspath(os.path.expanduser(path))
        return candidate if _unusable(candidate) is None else None
    if os.path.dirname(command):  # like shutil.which: a command with a folder is checked as is
        candidate = os.path.abspath(command)
        return candidate if _unusable(candidate) is None else None
    dirs = _path_dirs(path_value)
    found = shutil.which(command, path=os.pathsep.join(dirs)) if dirs else None
    if found is not None and _unusable(found) is None:
        return os.path.abspath(found)
    if found is not None:
        # which() accepted something that is not a regular file (a device, a FIFO): keep
        # looking, folder by folder, past it.
        dirs = (
            dirs[dirs.index(os.path.dirname(found)) + 1 :] if os.path.dirname(found) in dirs else []
        )
        for folder in dirs:
            found = shutil.which(command, path=folder)
            if found is not None and _unusable(found) is None:
                return os.path.abspath(found)
    for raw in search_paths:
        found = shutil.which(command, path=os.path.expanduser(raw))
        if found is not None and _unusable(found) is None:
            return os.path.abspath(found)
    return None


def _not_found(
    command: str,
    *,
    path: str | None,
    search_paths: tuple[str, ...],
    path_value: str | None,
    install_hint: str,
    provider: str,
) -> CLINotFoundError:
    where = f"providers.{provider}" if provider else "the provider"
    if path is not None:
        candidate = os.path.abspath(os.path.expanduser(path))
        reason = _unusable(candidate) or "unusable"
        hint = (
            f"Fix {where}.path to name an executable file, or remove it to search PATH "
            f"and search_paths. {install_hint}"
        )
        explicit = [f"{candidate} (explicit path: {reason})"]
        return CLINotFoundError(command, explicit, hint.strip(), provider)
    if os.path.dirname(command):
        candidate = os.path.abspath(command)
        direct = [f"{candidate} ({_unusable(candidate) or 'unusable'})"]
        return CLINotFoundError(command, direct, install_hint, provider)
    searched: list[str] = []
    seen: set[str] = set()
    places = [(d, f"PATH {d}") for d in _path_dirs(path_value)]
    for raw in search_paths:
        expanded = os.path.expanduser(raw)
        label = expanded if expanded == raw else f"{expanded} (from {raw})"
        places.append((expanded, f"search_paths {label}"))
    for folder, label in places:
        norm = os.path.normcase(os.path.abspath(folder))
        if norm in seen:
            continue
        seen.add(norm)
        candidate = os.path.join(folder, command)
        if os.path.lexists(candidate):
            searched.append(f"{label} ({command} there is {_unusable(candidate) or 'unusable'})")
        else:
            searched.append(label)
    hint = install_hint or f"Install {command!r} or set {where}.path to its executable."
    return CLINotFoundError(command, searched, hint, provider)


@dataclass(frozen=True, slots=True)
class CliLookup:
    """Where one provider's CLI is to be found, bound to the lineage's resolver.

    What a CLI provider's context holds (``ctx.cli``): data, plus the resolver that
    caches the answer. :meth:`resolve` is ``rt.cli_path(provider)``.
    """

    resolver: CLIResolver
    command: str
    path: str | None
    search_paths: tuple[str, ...]
    install_hint: str
    provider: str
    shared: CacheRegion | None = None
    # The entry of the last resolve, for the no-call fast path (mutable on purpose).
    _hot: list[Any] = field(default_factory=lambda: [None], compare=False, repr=False)

    def resolve(self) -> Path:
        """The executable (cached; with a watcher no system call, else one ``fstat``).

        Raises:
            CLINotFoundError: the CLI is not installed where the spec says to look.
        """
        entry = self._hot[0]
        # Watched, and PATH is the very value its key was made with: nothing can differ.
        if entry is not None and entry.watched and _ENV_DATA.get(_PATH_KEY) is entry.raw_path:
            entry.hits += 1
            return entry.result  # type: ignore[no-any-return]
        result = self.resolver.resolve(
            self.command,
            path=self.path,
            search_paths=self.search_paths,
            install_hint=self.install_hint,
            provider=self.provider,
            shared=self.shared,
        )
        self._hot[0] = self.resolver.entry(self.command, self.path, self.search_paths)
        return result
