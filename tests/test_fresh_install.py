"""A new user's first minutes: the built wheel, installed with no extras into a new venv,
runs init, validate, doctor and run --stub from an empty folder, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support_services import free_port
from tests.test_readme import fresh_copy

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)  # pip installs every dependency into the new venv: minutes when loaded
def test_wheel_in_a_new_venv_from_an_empty_folder(tmp_path: Path) -> None:
    """Build the wheel from the tracked files, pip install it (no extras) into a fresh venv,
    then in an empty folder: init, validate, doctor (exit 0: nothing fails on a fresh init),
    run --stub -p local, and schema --path names a file installed with the package."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROVCFG_", "VIRTUAL_ENV"))}
    source = fresh_copy(tmp_path / "source")
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
         cwd=source, env=base)  # fmt: skip
    (wheel,) = wheels.glob("provcfg-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, env=base)
    probe = "import importlib.util as u; print(u.find_spec('redis') is None)"
    assert _run([str(python), "-c", probe], cwd=tmp_path, env=base).strip() == "True"

    work = tmp_path / "empty"
    work.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",  # no agent CLI in these folders
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    provcfg = str(env_dir / "bin" / "provcfg")
    report = json.loads(_run([provcfg, "init", "--format", "json"], cwd=work, env=env))
    assert report["default_provider"] == "local" and report["providers"] == ["local"]
    assert sorted(p.name for p in work.iterdir()) == ["providers.yaml", "schemas"]
    assert _run([provcfg, "validate"], cwd=work, env=env).startswith("providers.yaml: ok")
    _run([provcfg, "doctor"], cwd=work, env=env)
    env["PROVCFG_PROVIDERS__LOCAL__BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    answer = _run([provcfg, "run", "--stub", "-p", "local", "Say hi"], cwd=work, env=env)
    assert answer == "Hello from the provcfg stub.\n"
    installed = Path(_run([provcfg, "schema", "--path"], cwd=work, env=env).strip())
    assert installed.is_relative_to(env_dir) and installed.is_file()
    assert installed.read_text() == (work / "schemas" / "providers.schema.json").read_text()
