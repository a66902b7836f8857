"""One reload attempt, off the event loop: read, hash, parse and validate, build.

:func:`read_and_build` runs in a worker thread and never raises, whatever fails (a
``MemoryError``, a bug in a plugin kind): it returns an :class:`Attempt` saying what
became of the file's current content: skipped (identical to content already live or
already rejected), a new Runtime built by reusing every unchanged part of the previous
one, or the error to report. The file is read like every manifest, by
:func:`~provcfg._loading.read_manifest_file`: at most the size cap, and never from a FIFO,
socket or device saved over it (those are refused without blocking). An empty or missing
file is a "not yet" (a save in progress, a delete before a re-create): it is reported
like any other failure and the last good runtime stays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from provcfg._errors import ManifestError, ProvcfgError, printable

if TYPE_CHECKING:
    from provcfg._kinds import KindRegistry
    from provcfg._runtime import Runtime

__all__ = ["MISSING", "Attempt", "read_and_build"]

MISSING: Final = "<missing>"
"""The digest recorded for a file that could not be read."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What became of the file's content: skipped, a built runtime, or an error."""

    digest: str
    skipped: bool = False
    runtime: Runtime | None = None
    error: ProvcfgError | None = None
    saved_at: float | None = None
    """The file's mtime (``time.time()`` scale): when it was saved."""


def read_and_build(
    file: str,
    previous: Runtime | None,
    *,
    skip: tuple[str | None, ...],
    environ: Mapping[str, str] | None,
    registry: KindRegistry | None,
) -> Attempt:
    """Read ``file``, and unless its sha256 is in ``skip``, validate and build it.

    ``previous`` is the live runtime whose unchanged parts the build reuses (None for
    the first load); it is never modified.

    Returns:
        The :class:`Attempt`; errors are returned in it, never raised.
    """
    try:
        return _read_and_build(file, previous, skip=skip, environ=environ, registry=registry)
    except BaseException as exc:  # a worker thread hands every failure back, whatever its type
        # MemoryError, RecursionError, a plugin's SystemExit: the watch goes on with the
        # last good runtime, and the failure is reported like any other.
        message = f"{printable(file)}: reloading failed: {type(exc).__name__}: {exc}"
        return Attempt(MISSING, error=ProvcfgError(" ".join(message.split())))


def _read_and_build(
    file: str,
    previous: Runtime | None,
    *,
    skip: tuple[str | None, ...],
    environ: Mapping[str, str] | None,
    registry: KindRegistry | None,
) -> Attempt:
    from provcfg._loading import parse_manifest_text, read_manifest_file
    from provcfg._runtime import Runtime

    try:
        read = read_manifest_file(file)
    except ManifestError as exc:  # missing, not a regular file, over the size cap
        return Attempt(MISSING, error=exc)
    data = read.data
    digest = hashlib.sha256(data).hexdigest()
    if digest in skip:
        return Attempt(digest, skipped=True)
    if not data:
        return _rejected(file, digest, "file is empty (a save in progress?)")
    try:
        manifest = parse_manifest_text(data, file=file, environ=environ, registry=registry)
        runtime = Runtime.build(manifest, previous, file=file, registry=registry)
    except ProvcfgError as exc:
        return Attempt(digest, error=exc)
    except Exception as exc:  # a bug in a provider kind must not stop the watch
        message = f"{printable(file)}: building the runtime failed: {type(exc).__name__}: {exc}"
        return Attempt(digest, error=ProvcfgError(" ".join(message.split())))
    return Attempt(digest, runtime=runtime, saved_at=read.mtime)


def _rejected(file: str, digest: str, message: str) -> Attempt:
    return Attempt(digest, error=ManifestError.single(file, message))
