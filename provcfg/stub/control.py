"""The control routes under ``/_stub/``: queue faults, set the default fault, read records, reset.

They change what the stub does, so they answer loopback clients only: the server
binds loopback, and a request whose ``Host`` (a DNS-rebinding page) or ``Origin`` (a
web page posting cross-site) names anything but a loopback address is refused with
403. API routes carry no such check: they change nothing but their own reply.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from provcfg.stub.config import StubError
from provcfg.stub.faults import DefaultFault, FaultQueue
from provcfg.stub.records import Records
from provcfg.stub.wire import Reply, json_reply

__all__ = ["Control"]

_FAULTS_USAGE = (
    'POST /_stub/faults takes {"faults": ["429-retry-after-1", '
    '{"spec": "drop-3", "path": "/v1/messages", "times": 2}]}'
)
_DEFAULT_USAGE = (
    'POST /_stub/default-fault takes {"spec": "headers-delay-2", "rate": 1.0, '
    '"path": "/v1/messages"} (rate and path optional; spec null or "" clears)'
)


class Control:
    """Serves the ``/_stub/`` routes over a router's queue, default fault and records."""

    def __init__(self, faults: FaultQueue, default: DefaultFault, records: Records) -> None:
        """Control ``faults``, ``default`` and ``records`` (the router's own)."""
        self.faults = faults
        self.default = default
        self.records = records

    def reset(self) -> None:
        """Forget records, drop queued faults and clear the default fault."""
        self.faults.clear()
        self.default.set(None)
        self.records.clear()

    def handle(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], raw: bytes
    ) -> Reply:
        """Return the reply to one control request."""
        refusal = _foreign(headers)
        if refusal is not None:
            return _error(403, refusal)
        if path == "/_stub/requests" and method == "GET":
            return json_reply(200, {"requests": [r.to_json() for r in self.records.snapshot()]})
        if path == "/_stub/reset" and method == "POST":
            self.reset()
            return json_reply(200, {"ok": True})
        if path == "/_stub/faults" and method == "GET":
            return json_reply(200, {"pending": self.faults.pending()})
        if path == "/_stub/faults" and method == "POST":
            return self._enqueue(raw)
        if path == "/_stub/default-fault":
            return self._default(method, raw)
        return _error(404, f"{method} {path}: unknown control route; see docs/stub.md")

    def _enqueue(self, raw: bytes) -> Reply:
        body = _parse(raw)
        items = body.get("faults", [body]) if isinstance(body, dict) else body
        if not isinstance(items, list):
            items = [items]
        try:
            for item in items:
                if isinstance(item, str):
                    self.faults.put(item)
                elif isinstance(item, dict) and isinstance(item.get("spec"), str):
                    path = item.get("path")
                    if path is not None and not isinstance(path, str):
                        raise StubError("'path' must be a string")
                    self.faults.put(item["spec"], path=path, times=item.get("times", 1))
                else:
                    raise StubError(_FAULTS_USAGE)
        except StubError as exc:
            return _error(400, str(exc))
        return json_reply(200, {"pending": self.faults.pending()})

    def _default(self, method: str, raw: bytes) -> Reply:
        if method == "GET":
            return json_reply(200, {"default": self.default.describe()})
        if method == "DELETE":
            self.default.set(None)
            return json_reply(200, {"default": None})
        if method not in ("POST", "PUT"):
            return json_reply(
                405,
                {"error": {"message": f"{method} /_stub/default-fault: use GET, POST or DELETE"}},
                [("allow", "GET, POST, PUT, DELETE")],
            )
        body = _parse(raw)
        if isinstance(body, str | None):
            body = {"spec": body}
        if not isinstance(body, dict) or set(body) - {"spec", "rate", "path"}:
            return _error(400, _DEFAULT_USAGE)
        spec, rate, path = body.get("spec"), body.get("rate", 1.0), body.get("path")
        try:
            if spec is not None and not isinstance(spec, str):
                raise StubError(_DEFAULT_USAGE)
            if path is not None and not isinstance(path, str):
                raise StubError("'path' must be a string, like \"/v1/messages\"")
            self.default.set(spec, rate=rate, path=path)
        except StubError as exc:
            return _error(400, str(exc))
        return json_reply(200, {"default": self.default.describe()})


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": {"message": message}})


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _foreign(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """Return why a control request is refused (not from a loopback page), or ``None``."""
    for name, value in headers:
        if name == b"host":
            text = value.decode("latin-1")
            if text and not _is_loopback(_hostname(f"//{text}")):
                return f"control routes answer loopback hosts only, not Host: {text[:80]!r}"
        elif name == b"origin":
            text = value.decode("latin-1")
            if not _is_loopback(_hostname(text)):
                return f"control routes refuse web pages from other origins ({text[:80]!r})"
    return None


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # a malformed address ("[::1")
        return ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
