"""Same evidence, same answer: detect + cluster + report run three times in fresh
processes, with DuckDB and the numeric libraries on different thread counts, give the same
bytes in every file of the post-mortem (charts, drafts and eval pack included).

Each run works on a copy of one loaded case, so all share the case's pseudonymisation key
(a per-case secret, made once): pseudonyms are stable within a case by design."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import forensics
from forensics.core.redact import case_key

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "prompt_regression"

RUN = """
import sys
import forensics
path, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
with forensics.open(path) as case:
    case.con.execute(f"SET threads = {threads}")
    case.detect()
    case.cluster()
    case.postmortem(out)
"""


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_detect_cluster_report_same_bytes_across_processes_and_threads(tmp_path: Path) -> None:
    base = tmp_path / "base.duckdb"
    with forensics.open(base) as case:
        for name in ("events.jsonl.gz", "changes.jsonl", "feedback.jsonl.gz"):
            case.load(SAMPLE / name)
        case_key(case.con)
    runs = []
    for i, threads in enumerate((1, 2, 4)):
        copy = tmp_path / f"run{i}.duckdb"
        shutil.copy(base, copy)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "PYTHONHASHSEED": str(i)}
        out = tmp_path / f"pm{i}"
        runs.append((out, subprocess.Popen([sys.executable, "-c", RUN, str(copy), str(out),
                                            str(threads)], env=env, stderr=subprocess.PIPE,
                                           text=True)))
    digests = []
    for out, proc in runs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        digests.append(_digests(out))
    assert len(digests[0]) > 10 and "postmortem.html" in digests[0]
    for other in digests[1:]:
        differ = sorted(k for k in digests[0].keys() | other.keys()
                        if digests[0].get(k) != other.get(k))
        assert differ == [], differ
