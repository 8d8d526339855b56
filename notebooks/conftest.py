"""The notebooks run in a Jupyter kernel, a separate process: make it import this
checkout's forensics (as the tests in tests/ do), whatever is installed in the venv, and
give each test process (each pytest-xdist worker) its own fresh working folder, so two
notebooks run at once never share a case file (``FORENSICS_NOTEBOOK_WORK_BASE`` says where
those folders go)."""

import os
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
# The folder is made per process: pytest-xdist's controller imports this file too, and
# its workers inherit its environment, so a folder made there would be shared by every
# worker (notebooks in two workers building one case at once).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
if os.environ.get("FORENSICS_NOTEBOOK_WORKER") != f"{_worker}:{os.getpid()}":
    base = os.environ.get("FORENSICS_NOTEBOOK_WORK_BASE") or None
    os.environ["FORENSICS_NOTEBOOK_WORK"] = tempfile.mkdtemp(prefix=f"forensics-nb-{_worker}-",
                                                             dir=base)
    os.environ["FORENSICS_NOTEBOOK_WORKER"] = f"{_worker}:{os.getpid()}"
