"""Manifest text -> a validated, frozen :class:`~provcfg._manifest.Manifest`.

The pipeline, each step reporting positioned problems rather than raising early:

1. read at most ``max_bytes`` (1 MiB by default) with :func:`read_manifest_file`, the one
   function through which every manifest file is read (``load``, ``watch``, the CLI): a
   FIFO, socket, device or folder is refused before a byte is read; then decode strict UTF-8;
2. screen characters YAML forbids and tabs used for indentation;
3. compose the YAML strictly (:mod:`provcfg._yaml`), keeping a loc -> line:column map;
4. substitute ``${VAR}`` / ``${VAR:-default}`` in string values (``$${`` is a literal ``${``);
5. apply ``PROVCFG_*`` environment overrides (pydantic-settings, ``__`` nesting, names
   matched to the file's keys ignoring case), environment over file;
6. validate against the manifest model of the kind registry (plugin kinds included);
7. check cross references (default provider, pools, model aliases, ...).

All problems of one run are raised together as :class:`~provcfg._errors.ManifestError`,
sorted by position (the first :data:`~provcfg._errors.PROBLEM_LIMIT`, the rest counted).
A problem caused by an environment override has line 0, column 0 and names the variable.
Line numbers count ``\r\n``, ``\r``, ``\n`` (and NEL, LS, PS) as one line break each, as
the YAML parser does. No message ever holds a secret's value.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from provcfg import _yaml
from provcfg._errors import ManifestError, ManifestReadError, Problem, ProvcfgError
from provcfg._manifest import SKIP_REFERENCE_CHECKS, Manifest, manifest_model, reference_problems
from provcfg._problems import ProblemMapper, dotted, first_problems
from provcfg._suggest import MAX_WORD, Suggester, quote

if TYPE_CHECKING:
    from provcfg._kinds import KindRegistry

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENV_PREFIX",
    "ManifestFile",
    "ManifestReadError",
    "load_manifest",
    "manifest_model_for",
    "parse_manifest_text",
    "read_manifest_file",
]

DEFAULT_MAX_BYTES = 1024 * 1024
ENV_PREFIX = "PROVCFG_"


def manifest_model_for(registry: KindRegistry | None = None) -> type[Manifest]:
    """The Manifest model accepting the registry's kinds (discovered when None).

    Raises:
        ProvcfgError: a plugin fails to load or its spec model has no ``kind`` literal.
    """
    if registry is None:
        from provcfg._entrypoints import provider_entry_points

        # No plugin installed (the common case): the built-in Manifest, without importing
        # the provider contract module and what it pulls in.
        if not provider_entry_points():
            return Manifest
        from provcfg._kinds import KindRegistry

        registry = KindRegistry.discover()
    try:
        return manifest_model(tuple((k.name, k.spec_model) for k in registry.kinds()))
    except TypeError as exc:
        raise ProvcfgError(str(exc)) from None


def load_manifest(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest:
    """Read, check and validate the manifest at ``path``.

    ``environ`` (default ``os.environ``) feeds both ``${VAR}`` substitution and the
    ``PROVCFG_`` overrides; ``registry`` (default: discovered) decides the provider kinds.

    Returns:
        The frozen Manifest.

    Raises:
        ManifestReadError: the file cannot be read (not found, a folder, no permission).
        ManifestError: every problem found, each with file, line, column, loc, message.
        ProvcfgError: a provider plugin is broken.
    """
    file = os.fspath(path)
    data = read_manifest_file(file, max_bytes=max_bytes).data
    return parse_manifest_text(
        data, file=file, environ=environ, registry=registry, max_bytes=max_bytes
    )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """A manifest file's bytes as read (at most the size cap) and its modification time."""

    data: bytes
    mtime: float


_NOT_REGULAR = "give the path of a regular file"
_KINDS = (
    (stat.S_ISDIR, "is a folder", "give the path of the manifest file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file", _NOT_REGULAR),
    (stat.S_ISSOCK, "is a socket, not a regular file", _NOT_REGULAR),
    (stat.S_ISCHR, "is a character device, not a regular file", _NOT_REGULAR),
    (stat.S_ISBLK, "is a block device, not a regular file", _NOT_REGULAR),
)
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def read_manifest_file(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ManifestFile:
    """Read a manifest file: a regular file of at most ``max_bytes`` bytes, or a clear error.

    The one way provcfg reads a manifest (``validate``, ``show``, ``run``, ``load()``,
    ``watch()`` reloads and the watch command's change detection). Anything but a regular
    file (a FIFO, a socket, a device such as ``/dev/zero`` reached through a symlink, a
    folder) is refused without reading: the path is checked with ``stat``, opened with
    ``O_NONBLOCK`` (opening a FIFO never waits for a writer) and checked again with
    ``fstat`` on the descriptor, so a file swapped in between is caught too. At most
    ``max_bytes + 1`` bytes are read, however large the file is or grows.

    Returns:
        The bytes and the file's mtime.

    Raises:
        ManifestReadError: missing, not a regular file, no permission, or unreadable.
        ManifestError: larger than ``max_bytes``.
    """
    file = os.fspath(path)
    try:
        _refuse_special(file, os.stat(file))
        fd = os.open(file, _OPEN_FLAGS)
    except OSError as exc:
        raise _read_error(file, exc) from None
    try:
        info = os.fstat(fd)
        _refuse_special(file, info)
        if info.st_size > max_bytes:
            raise _too_large(file, max_bytes)
        with open(fd, "rb", closefd=False) as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise _read_error(file, exc) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _too_large(file, max_bytes)
    return ManifestFile(data, info.st_mtime)


def _refuse_special(file: str, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    what, fix = next(
        ((what, fix) for test, what, fix in _KINDS if test(info.st_mode)),
        ("is not a regular file", _NOT_REGULAR),
    )
    if os.path.islink(file):
        what = f"is a symlink to {os.path.realpath(file)}, which {what}"
    raise ManifestReadError([Problem(file, 0, 0, "", f"{what}; {fix}")])


def _read_error(file: str, exc: OSError) -> ManifestReadError:
    if isinstance(exc, FileNotFoundError):
        message = "file not found; check the path"
    elif isinstance(exc, IsADirectoryError):
        message = "is a folder; give the path of the manifest file"
    elif isinstance(exc, PermissionError):
        message = "permission denied; make the file readable"
    elif exc.errno == errno.ENXIO:  # a socket (or a FIFO's absent peer): not a file
        message = f"is not a regular file (a socket or a device); {_NOT_REGULAR}"
    else:
        message = f"cannot read: {exc.strerror or type(exc).__name__}"
    return ManifestReadError([Problem(file, 0, 0, "", message)])


def _too_large(file: str, max_bytes: int) -> ManifestError:
    return ManifestError.single(
        file,
        f"the file is larger than the {max_bytes}-byte limit; "
        "a manifest this big is almost certainly not one",
    )


def parse_manifest_text(
    text: str | bytes,
    *,
    file: str,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest:
    """Validate manifest text already in memory (bytes are decoded as strict UTF-8).

    ``file`` is only used to name the place in problems. Safe to call from any thread.

    Returns:
        The frozen Manifest.

    Raises:
        ManifestError: every problem found, sorted by position.
        ProvcfgError: a provider plugin is broken.
    """
    model = manifest_model_for(registry)
    source = _decode(text, file, max_bytes)
    _screen(source, file)
    composed = _yaml.compose(source)
    kept, omitted = first_problems(composed.problems, key=lambda p: (p.line, p.column))
    problems = [Problem(file, p.line, p.column, dotted(p.loc), p.message) for p in kept]
    if composed.data is None:
        raise ManifestError(problems, omitted=omitted)
    env = os.environ if environ is None else environ
    data = composed.data
    suggester = Suggester()
    mapper = ProblemMapper(file, model, data, composed, suggester)
    _interpolate(data, (), composed, env, mapper)
    mapper.env_locs = _apply_overrides(data, model, env, mapper)
    manifest: Manifest | None = None
    try:
        manifest = model.model_validate(data, context={SKIP_REFERENCE_CHECKS: True})
    except ValidationError as exc:
        mapper.validation(exc)
    for loc, message, at_key in reference_problems(data, model.provider_kinds, suggester):
        mapper.add(loc, message, at_key=at_key)
    placed, more = mapper.problems()
    problems.extend(placed)
    if problems or manifest is None:
        raise ManifestError(mapper.scrub(problems), omitted=omitted + more)
    return manifest


# --------------------------------------------------------------------------- bytes -> text


def _decode(text: str | bytes, file: str, max_bytes: int) -> str:
    # A str is at least one byte per character: a huge one is refused without encoding it.
    too_large = len(text) > max_bytes or (
        isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > max_bytes
    )
    if too_large:
        raise _too_large(file, max_bytes)
    if isinstance(text, str):
        return text.removeprefix("\ufeff")
    try:
        return text.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        # Everything before the bad byte is valid UTF-8: count lines as YAML would.
        before = text[: exc.start].decode("utf-8").removeprefix("\ufeff")
        line, column = _Lines(before).position(len(before))
        raise ManifestError.single(
            file,
            f"byte 0x{text[exc.start]:02X} (offset {exc.start}) is not valid UTF-8; "
            "save the file as UTF-8",
            line=line,
            column=column,
        ) from None


# Characters YAML 1.2 forbids in a stream (C0 controls but tab/LF/CR, DEL, C1 but NEL,
# surrogates, U+FFFE/U+FFFF). Screening here gives a precise position and message.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
# Line breaks as libyaml counts them: CR LF, CR, LF, NEL, LINE and PARAGRAPH SEPARATOR.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_TAB_INDENT = re.compile("(?:^|(?<=[\r\n\x85\u2028\u2029]))[ ]*\t")


class _Lines:
    """1-based line and column of a character index, counting line breaks as YAML does."""

    def __init__(self, text: str) -> None:
        self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    def position(self, index: int) -> tuple[int, int]:
        row = bisect.bisect_right(self.starts, index) - 1
        return row + 1, index - self.starts[row] + 1


def _screen(text: str, file: str) -> None:
    problems = []
    omitted = 0
    lines: _Lines | None = None
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        lines = _Lines(text)
        line, column = lines.position(bad.start())
        problems.append(
            Problem(
                file,
                line,
                column,
                "",
                f"character U+{ord(bad.group()):04X} is not allowed in YAML; remove it",
            )
        )
    if "\t" in text:
        for match in _TAB_INDENT.finditer(text):
            if len(problems) >= _SCREEN_LIMIT:
                omitted += 1
                continue
            lines = lines or _Lines(text)
            line, column = lines.position(match.end() - 1)
            problems.append(
                Problem(file, line, column, "", "tab in indentation; YAML indents with spaces")
            )
    if problems:
        raise ManifestError(problems, omitted=omitted)


_SCREEN_LIMIT = 100  # == PROBLEM_LIMIT: the file's first problems are the ones shown


# --------------------------------------------------------------------------- ${VAR}

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_SECRET_NAME = re.compile(r"(?i)key|token|secret|pass|pwd|auth|credential|cookie|session|dsn")


def _interpolate(
    node: dict[str, Any] | list[Any],
    loc: tuple[str | int, ...],
    composed: _yaml.Composed,
    env: Mapping[str, str],
    mapper: ProblemMapper,
) -> None:
    """Substitute variables in every string value under ``node``, in place."""
    items: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, str):
            if "$" in value:
                node[key] = _substitute(value, (*loc, key), composed, env, mapper)
        elif isinstance(value, dict | list):
            _interpolate(value, (*loc, key), composed, env, mapper)


def _substitute(
    value: str,
    loc: tuple[str | int, ...],
    composed: _yaml.Composed,
    env: Mapping[str, str],
    mapper: ProblemMapper,
) -> Any:
    def replace(match: re.Match[str]) -> str:
        text = match.group()
        if text == "$${":
            return "${"
        body = match.group(1)
        parsed = _BODY.fullmatch(body) if body is not None else None
        if parsed is None:
            mapper.add(
                loc,
                "malformed variable reference; write ${NAME} or ${NAME:-default}, "
                "or $${ for a literal ${",
            )
            return ""
        name, default = parsed.group(1), parsed.group(2)
        shown = name if len(name) <= MAX_WORD else quote(name)
        if default is not None and "${" in default:
            mapper.add(loc, f"nested variables in the default of ${{{shown}}} are not supported")
            return ""
        found = env.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                mapper.add(
                    loc,
                    f"environment variable {shown} is not set; export it, "
                    f"or write ${{{shown}:-default}}",
                )
                return ""
            return default
        if _SECRET_NAME.search(name):
            mapper.secret(found)
        return found

    result = _REFERENCE.sub(replace, value)
    # A plain scalar such as `max_tokens: ${N:-4096}` reads like YAML written in place.
    return _yaml.resolve_plain(result) if loc in composed.plain_dollar else result


# --------------------------------------------------------------------------- PROVCFG_*


def _apply_overrides(
    data: dict[str, Any], model: type[Manifest], env: Mapping[str, str], mapper: ProblemMapper
) -> dict[tuple[str | int, ...], str]:
    """Merge ``PROVCFG_*`` overrides into ``data``; returns loc -> variable name."""
    variables = {k: v for k, v in env.items() if k[:8].upper() == ENV_PREFIX}
    if not variables:
        return {}
    from provcfg._envsource import read_overrides

    return read_overrides(data, model, variables, mapper)
