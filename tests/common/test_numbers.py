"""The one number formatter: each option against hand-written expectations."""

from __future__ import annotations

import math

import numpy as np

from interplab.common.numbers import format_number


def test_defaults_significant_digits_and_placeholders() -> None:
    assert format_number(3.14159265) == "3.142"
    assert format_number(3.14159265, 2) == "3.1"
    assert format_number(-0.0) == "0"
    assert format_number(None) == "–"
    assert format_number(math.nan) == "–"
    assert format_number(math.inf) == "∞"
    assert format_number(-math.inf) == "−∞"
    assert format_number(True) == "True"
    assert format_number("abc") == "abc"
    assert format_number(np.int64(12345)) == "12345"
    assert format_number(np.float32(0.5)) == "0.5"


def test_options() -> None:
    assert format_number(None, missing="—") == "—"
    assert format_number(math.inf, infinity=False) == "–"
    assert format_number(1234567, thousands=True) == "1,234,567"
    assert format_number(0.000123456, scientific=True) == "1.235e-04"
    assert format_number(2_500_000.0, scientific=True) == "2.500e+06"
    assert format_number(0.0, scientific=True) == "0"
    assert format_number(0.5, scientific=True) == "0.5"
