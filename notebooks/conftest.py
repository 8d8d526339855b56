"""The notebooks run in a Jupyter kernel, a separate process: make it import this
checkout's forensics (as the tests in tests/ do), whatever is installed in the venv."""

import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
