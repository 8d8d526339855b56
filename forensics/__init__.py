"""forensics: investigate incidents in AI features from their audit logs and traces.

>>> import forensics
>>> case = forensics.open("incident.duckdb")           # a new case file
>>> case.load(SAMPLE / "events.jsonl.gz").rows()[0]["rows_loaded"]
24127
>>> case.close()
"""

from __future__ import annotations

__version__ = "0.1.0"

from forensics.case import Case, open
from forensics.core.errors import ForensicsError
from forensics.core.result import Result

__all__ = ["Case", "ForensicsError", "Result", "__version__", "open"]
