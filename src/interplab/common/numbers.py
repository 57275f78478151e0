"""One number formatter for reports, tables and pages: compact significant digits, a placeholder
for missing values, optional thousands separators and scientific notation for very small or
large magnitudes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_number(
    value: Any,
    digits: int = 4,
    *,
    missing: str = "–",
    infinity: bool = True,
    thousands: bool = False,
    scientific: bool = False,
) -> str:
    """``value`` as text with ``digits`` significant digits.

    ``None`` and NaN print as ``missing``; ±inf as ``∞`` / ``−∞`` (``infinity``) or ``missing``.
    Booleans and strings print as they are, integers exactly (with ``,`` separators when
    ``thousands``). With ``scientific``, non-zero magnitudes below 1e-3 or from 1e6 use
    ``digits - 1`` decimals of e-notation.
    """
    if value is None:
        return missing
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if thousands else str(int(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        if math.isnan(v) or not infinity:
            return missing
        return "∞" if v > 0 else "−∞"
    if scientific and v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    return f"{v + 0.0:.{digits}g}"
