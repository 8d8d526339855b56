"""Numbers as a reader sees them: one rounding rule per kind of figure.

Counts are whole numbers (an estimate of a count is rounded, its interval beside it);
signed differences never read ``-0.00``; shares are percentages.

>>> signed(-0.0001), signed(1.149), whole(253.9), estimate(253.9, 201.2, 310.7)
('+0.00', '+1.15', '254', '254 (201 to 311)')
>>> percent(0.008), percent(3, 400)
('0.8%', '0.8%')
"""

from __future__ import annotations

import math
from typing import Any


def signed(value: float, digits: int = 2) -> str:
    """``value`` with its sign, rounded to ``digits``; a value that rounds to zero reads
    ``+0.00`` (never ``-0.00``)."""
    rounded = round(value, digits)
    if rounded == 0:
        rounded = 0.0
    return f"{rounded:+.{digits}f}"


def whole(value: Any) -> str:
    """A count: a whole number with thousands separators (``unknown`` for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return f"{round(value):,}"


def estimate(value: Any, low: Any, high: Any) -> str:
    """An estimated count with its interval, all whole numbers."""
    return f"{whole(value)} ({whole(low)} to {whole(high)})"


def percent(part: float, whole_: float | None = None, digits: int = 1) -> str:
    """A share as a percentage: ``percent(0.25)`` or ``percent(1, 4)``; a share below the
    last digit reads ``<0.1%`` rather than ``0.0%`` when the part is not zero."""
    share = part if whole_ is None else (part / whole_ if whole_ else math.nan)
    if math.isnan(share):
        return "n/a"
    text = f"{100 * share:.{digits}f}%"
    if share > 0 and float(text[:-1]) == 0:
        return f"<{10 ** -digits:.{digits}f}%"
    return text


__all__ = ["estimate", "percent", "signed", "whole"]
