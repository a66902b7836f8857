"""provcfg bench's JSON (every sample and the environment), history store and CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from provcfg.bench._history import append, read, series
from provcfg.bench._results import RunResult
from tests.support_bench import run_cli

_CASES = ["--case", "lookup.provider", "--case", "lookup.translate-model"]


def _bench(tmp_path: Path, *extra: str) -> int:
    return run_cli(["bench", "--smoke", *_CASES, *extra])


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder: the history's default place is relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_json_holds_every_sample_ratios_and_the_environment(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format json prints one object with env, ratios and, per contender, every sample."""
    assert _bench(in_tmp, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "provcfg-bench-run" and data["format"] == 1
    env = data["env"]
    for key in (
        "cpu_model",
        "cores",
        "python",
        "packages",
        "git_commit",
        "cli_versions",
        "load_before",
        "load_after",
    ):
        assert key in env
    assert env["packages"]["provcfg"]
    assert set(data["ratios"]) == {
        "lookup.provider/rt.provider",
        "lookup.translate-model/rt.translate_model",
    }
    for ratio in data["ratios"].values():
        assert ratio["low"] <= ratio["median"] <= ratio["high"] and ratio["role"] == "subject"
    case = data["cases"][0]
    assert case["reference"] == "dict"
    for contender in case["contenders"]:
        assert len(contender["samples"]) == case["rounds"] == 2
        assert all(s > 0 for s in contender["samples"])
        assert contender["loops"] >= 1
    assert RunResult.from_dict(data).ratio_entries().keys() == data["ratios"].keys()


def test_save_appends_to_the_history_and_history_prints_a_trend(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two --save runs make two lines in .provcfg/bench/history.jsonl; history shows both."""
    assert _bench(in_tmp, "--save") == 0
    assert _bench(in_tmp, "--save") == 0
    path = in_tmp / ".provcfg" / "bench" / "history.jsonl"
    assert len(path.read_text().splitlines()) == 2
    runs = read(path)
    assert len(runs) == 2
    trend = series(runs)
    assert len(trend["lookup.provider/rt.provider"]) == 2
    capsys.readouterr()
    assert run_cli(["bench", "history"]) == 0
    out = capsys.readouterr().out
    assert "lookup.provider/rt.provider" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")


def test_history_skips_a_torn_line_and_reads_an_absent_file_as_empty(tmp_path: Path) -> None:
    """A half-written line is skipped; the runs around it survive; no file means no runs."""
    run = RunResult(suite="quick", started="2026-01-01T00:00:00+00:00")
    path = tmp_path / "h.jsonl"
    append(run, path)
    with path.open("a") as handle:
        handle.write('{"suite": "quick", "cases": [\n')
    append(run, path)
    with capture_logs() as logs:
        assert len(read(path)) == 2
    assert [e["event"] for e in logs] == ["bench.history_line_skipped"]
    assert logs[0]["line"] == 2
    assert read(tmp_path / "missing.jsonl") == []


def test_baseline_out_then_compare_passes_the_gate_on_the_same_code(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A written baseline holds only ratios, and the gate against it reads and compares them."""
    assert _bench(in_tmp, "--baseline-out", "base.json") == 0
    base = json.loads((in_tmp / "base.json").read_text())
    assert base["kind"] == "provcfg-bench-baseline" and "cases" not in base
    assert set(base["ratios"]) == {
        "lookup.provider/rt.provider",
        "lookup.translate-model/rt.translate_model",
    }
    capsys.readouterr()
    code = _bench(in_tmp, "--compare", "base.json")
    assert code == 0
    assert "vs base.json" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gate", "10%"], "--gate needs --compare"),
        (["--compare", "missing.json"], "cannot read baseline missing.json"),
        (["--compare", "bad.json"], "not a JSON baseline"),
        (["--case", "no.such.case"], "matches no case"),
        (["--compare", "bad.json", "--gate", "ten"], "give a percentage"),
        (["--providers", "ghost", "-f", "p.yaml"], "no such provider"),
    ],
)
def test_bad_options_exit_2_with_a_message_naming_the_fix(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Bad option values are usage errors (exit 2) with one line, never a traceback."""
    (in_tmp / "bad.json").write_text("{not json")
    (in_tmp / "p.yaml").write_text(
        "version: 1\nproviders:\n  real: {kind: anthropic-api, api_key: k}\n"
    )
    assert run_cli(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_providers_benchmarks_a_user_provider_against_the_stub(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--providers NAME --stub measures the user's provider: a ratio to the ruler, chunks seen."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (in_tmp / "providers.yaml").write_text(
        "version: 1\nproviders:\n"
        f"  mine: {{kind: anthropic-api, base_url: 'http://127.0.0.1:{port}', api_key: k,"
        " transport: fast, model: stub-text, max_retries: 0}\n"
    )
    assert run_cli(["bench", "--smoke", "--providers", "mine", "--stub", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (case,) = data["cases"]
    assert case["name"] == "user.mine" and case["error"] is None
    assert case["reference"] == "ruler"
    mine = next(c for c in case["contenders"] if c["name"] == "mine")
    assert all(n > 0 for n in mine["extras"]["chunks"])
    assert all(t >= f for t, f in zip(mine["extras"]["total"], mine["samples"], strict=True))
    assert "user.mine/mine" in data["ratios"]


def test_markdown_writes_the_baseline_document_from_the_run(in_tmp: Path) -> None:
    """--markdown FILE writes the document: machine and versions, each case's table, budgets."""
    assert _bench(in_tmp, "--markdown", "docs/baseline.md") == 0
    text = (in_tmp / "docs" / "baseline.md").read_text()
    assert text.startswith("# Provider performance baseline")
    assert "| machine |" in text and "| packages |" in text and "provcfg 0.1.0" in text
    assert "## How to reproduce" in text
    assert "### `lookup.provider`: cached rt.provider(name) vs a dict lookup" in text
    assert "| rt.provider (subject) |" in text
    assert "rt.provider <= 2 us:" in text  # the budget's verdict, met or not


def test_report_markdown_renders_a_saved_run_and_needs_an_output(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """report --markdown --run FILE writes the document from that run; no output is exit 2."""
    assert _bench(in_tmp, "-o", "run.json") == 0
    assert run_cli(["bench", "report", "--markdown", "doc.md", "--run", "run.json"]) == 0
    assert "### `lookup.provider`" in (in_tmp / "doc.md").read_text()
    capsys.readouterr()
    assert run_cli(["bench", "report"]) == 2
    assert "give --html FILE, --markdown FILE or both" in capsys.readouterr().err
