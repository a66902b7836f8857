"""provcfg bench report: one offline HTML file, rendered in a real headless Chromium (Debian's).

The history comes from real (smoke-sized) runs: lookups and two concurrency cases, saved
twice. Chromium loads the file with every network feature off and a fresh profile;
the test reads the DOM after load (each plot records how many of its marks have a
drawn size), the console messages (the report writes none), and keeps a screenshot
in tests/artifacts/bench-report.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support_bench import run_cli

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: scripts/system-deps.sh installs Debian's package")
    return found


def _render(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``page``; return the DOM after load and the console lines Chromium logged."""
    done = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def test_the_console_check_sees_a_page_error(tmp_path: Path) -> None:
    """The harness itself: a page that logs an error and throws shows up in the console lines."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><script>console.error('boom'); undefinedCall();</script></body></html>"
    )
    _, console = _render(page, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console)
    assert any("undefinedCall" in line for line in console)


@pytest.mark.timeout(600)
def test_report_renders_every_plot_without_console_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History, distribution and scaling plots all draw marks in Chromium; nothing is logged."""
    monkeypatch.chdir(tmp_path)
    cases = [
        "--case",
        "lookup.provider",
        "--case",
        "concurrency.flat-1",
        "--case",
        "concurrency.flat-10",
    ]
    for _ in range(2):
        assert (
            run_cli(["bench", "--smoke", "--save", "--format", "json", "-o", "run.json", *cases])
            == 0
        )
    assert run_cli(["bench", "report", "--html", "report.html"]) == 0
    html = (tmp_path / "report.html").read_text()
    fetchable = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in fetchable and "https://" not in fetchable  # nothing to fetch
    dom, console = _render(tmp_path / "report.html", tmp_path / "profile", "--dump-dom")
    assert console == []
    plots = re.findall(r'<svg class="plot"[^>]*>', dom)
    # history: 3 cases; distributions: 3 cases; scaling: chunks/s and p99 (flat)
    assert len(plots) == 8, plots
    drawn = [int(m) for m in re.findall(r'data-drawn="(\d+)"', dom)]
    assert len(drawn) == len(plots)
    assert all(n > 0 for n in drawn), drawn
    assert 'data-plots="8"' in dom
    assert "previous saved run vs the latest" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "bench-report.png"
    shot.unlink(missing_ok=True)
    _render(
        tmp_path / "report.html",
        tmp_path / "profile2",
        f"--screenshot={shot}",
        "--window-size=1400,2600",
        "--hide-scrollbars",
    )
    assert shot.stat().st_size > 10_000


@pytest.mark.timeout(300)
def test_report_compares_two_run_files_and_refuses_an_empty_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare A B puts both runs in the table; no history and no files is a usage error."""
    monkeypatch.chdir(tmp_path)
    assert run_cli(["bench", "report", "--html", "r.html"]) == 2
    assert "no saved runs" in capsys.readouterr().err
    for name in ("a.json", "b.json"):
        assert run_cli(["bench", "--smoke", "--case", "lookup.provider", "-o", name]) == 0
    assert run_cli(["bench", "report", "--html", "r.html", "--compare", "a.json", "b.json"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "A (first --compare file) vs B (second)" in html
    assert "lookup.provider/rt.provider" in html
