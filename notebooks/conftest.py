"""The notebooks run in a Jupyter kernel, a separate process: make it import this
checkout's forensics (as the tests in tests/ do), whatever is installed in the venv, and
give each test process (each pytest-xdist worker) its own fresh working folder, so two
notebooks run at once never share a case file."""

import os
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
if not os.environ.get("FORENSICS_NOTEBOOK_WORK"):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["FORENSICS_NOTEBOOK_WORK"] = tempfile.mkdtemp(prefix=f"forensics-nb-{worker}-")
