"""The monitoring commands as a user runs them: alerts export, dashboard, watch --metrics-addr."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.support_manifest import clean_env, run_cli
from tests.support_monitoring import free_port, get_json, poll

MANIFEST = """\
version: 1
providers:
  api: {kind: anthropic-api, api_key: x, model: m-1}
monitoring:
  alerts:
    - {metric: total_seconds, provider: api, above: 30, window: 10m, for: 1m, severity: critical}
"""


def test_alerts_export_writes_a_rules_file(tmp_path: Path) -> None:
    """`provcfg alerts export FILE` writes one Prometheus rule per manifest rule."""
    (tmp_path / "providers.yaml").write_text(MANIFEST)
    done = run_cli("alerts", "export", "rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "rules.yml").read_text()
    assert "alert: total_seconds_api" in text and "for: 60s" in text
    assert "provcfg_request_duration_seconds_bucket" in text and "severity: critical" in text


def test_alerts_export_of_an_invalid_manifest_names_the_problem(tmp_path: Path) -> None:
    """An unknown metric in a rule makes export exit 1 with FILE:LINE:COL and a did-you-mean."""
    (tmp_path / "providers.yaml").write_text(MANIFEST.replace("total_seconds", "total_secs"))
    done = run_cli("alerts", "export", "rules.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "providers.yaml:6:" in done.stderr and "did you mean 'total_seconds'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "rules.yml").exists()


def test_dashboard_prints_a_grafana_model(tmp_path: Path) -> None:
    """`provcfg dashboard` prints a Grafana JSON model with a row per concern."""
    (tmp_path / "providers.yaml").write_text(MANIFEST)
    done = run_cli("dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == ["Latency", "Traffic", "Errors", "Pools", "Caches", "Reloads",
                    "CLI processes", "Alerts"]  # fmt: skip
    queries = [t["expr"] for p in model["panels"] for t in p.get("targets", [])]
    assert all("provcfg_" in q for q in queries)


def test_watch_metrics_addr_in_use_exits_2(tmp_path: Path) -> None:
    """--metrics-addr on a port another socket holds exits 2 with the address, no traceback."""
    (tmp_path / "providers.yaml").write_text(MANIFEST)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_cli("watch", "--metrics-addr", f"127.0.0.1:{port}", cwd=tmp_path)
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_watch_serves_metrics_of_the_watched_file(tmp_path: Path) -> None:
    """`provcfg watch --metrics-addr` serves /healthz for the watched file and stops on SIGTERM."""
    (tmp_path / "providers.yaml").write_text(MANIFEST)
    port = free_port()
    script = Path(sys.executable).with_name("provcfg")
    proc = subprocess.Popen(
        [str(script), "watch", "--metrics-addr", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = poll(
            lambda: get_json(f"http://127.0.0.1:{port}/healthz").get("generation") == 1,
            timeout=30,
        )
        assert health
        alerts = get_json(f"http://127.0.0.1:{port}/alerts")["alerts"]
        assert all(a["name"] == "total_seconds_api" and a["state"] == "inactive" for a in alerts)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"metrics on http://127.0.0.1:{port}/metrics" in out
