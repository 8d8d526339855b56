"""The package ships what it needs: a wheel built from the checkout, installed in a clean
virtual environment outside the checkout, answers ``forensics query --list`` and runs a
saved query (the saved SQL travels inside the package, not beside the repository)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import forensics

from .conftest import REPO, event, write_jsonl

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """This process's environment without what would put the checkout on the path (the
    notebooks' conftest sets PYTHONPATH for their kernels)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "FORENSICS_QUERIES", "PIP_TARGET", "PYTHONHOME")}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or _clean_env(),
                         timeout=600)
    assert out.returncode == 0, (cmd, out.stdout[-2000:], out.stderr[-2000:])
    return out.stdout


def test_wheel_installed_elsewhere_has_its_saved_queries(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to take a clean copy of the checkout")
    # a clean copy: the tracked files only (in CI the checkout is a fresh clone anyway)
    src = tmp_path / "src"
    for rel in _run(["git", "ls-files", "-z"], REPO).split("\0"):
        if rel and (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
         tmp_path)
    (wheel,) = wheels.glob("forensics-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path)
    # the dependencies come from this environment, not from the checkout: a .pth file
    # appends this interpreter's site-packages after the new environment's own
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).strip())
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    where = _run([str(py), "-c", "import forensics; print(forensics.__file__)"], elsewhere, env)
    assert str(REPO) not in where and str(site) in where
    listed = json.loads(_run([str(env_dir / "bin" / "forensics"), "query", "--list", "--json"],
                             elsewhere, env))
    names = {q["name"] for q in listed["queries"]}
    assert {"evidence_inventory", "labels_by_day"} <= names
    dirs = _run([str(py), "-c", "from forensics.queries.runner import query_dirs; "
                 "print(*query_dirs())"], elsewhere, env)
    assert dirs.strip() == str(site / "forensics" / "queries")

    case = elsewhere / "c.duckdb"
    with forensics.open(case) as c:
        c.load(write_jsonl(elsewhere / "a.jsonl", [event(i) for i in range(3)]))
    ran = json.loads(_run([str(env_dir / "bin" / "forensics"), "query", str(case),
                           "evidence_inventory", "--json"], elsewhere, env))
    assert ran["ok"] and ran["rows"][0]["rows_loaded"] == 3
