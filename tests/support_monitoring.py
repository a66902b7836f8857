"""Real Prometheus and Alertmanager servers (Debian packages) for the monitoring tests.

Each is started on a free loopback port with its data in a temporary folder, waited
for through its readiness endpoint, and terminated (then killed) at teardown. Both
binaries come from scripts/system-deps.sh; a machine without them fails the test with
the install command rather than skipping it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["free_port", "get_json", "poll", "run_alertmanager", "run_prometheus", "write_manifest"]


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str:
    """The path of a system binary, or a test failure naming the install script."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run scripts/system-deps.sh (as root)")
    return path


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def poll(check: Callable[[], Any], *, timeout: float = 60.0, every: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout}s; last: {last!r}")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def _process(argv: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _ready(ready_url):
            if proc.poll() is not None:
                pytest.fail(f"{argv[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} not ready in 60s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def run_prometheus(tmp: Path, targets: list[str], rules: Path | None = None) -> Iterator[str]:
    """A Prometheus scraping ``targets`` (host:port) every second; yields its base URL."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "provcfg", "static_configs": [{"targets": targets}]}],
    }
    if rules is not None:
        config["rule_files"] = [str(rules)]
    path = tmp / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    argv = [
        binary("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url


@contextmanager
def run_alertmanager(tmp: Path) -> Iterator[str]:
    """An Alertmanager on loopback (clustering off); yields its base URL."""
    port = free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "none",
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "none"}],
            }
        )
    )
    argv = [
        binary("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/-/ready", tmp / "alertmanager.log"):
        yield url


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant PromQL query."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = get_json(url)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def write_manifest(path: Path, text: str) -> Path:
    """Write a manifest file and return its path."""
    path.write_text(text)
    return path
