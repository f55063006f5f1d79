"""Checks of plain argument values shared by every layer (ops, models, trainers, the command
line): each returns the value or raises ValueError naming the argument, what it expected and
what it was given."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_int(
    name: str, value: object, minimum: int | None = None, maximum: int | None = None
) -> int:
    """`value` (an int or numpy integer, not a bool) as an int in [minimum, maximum] (bounds
    optional); ValueError naming `name` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        bounds = _bounds_text(minimum, maximum)
        raise ValueError(f"{name} must be an int{bounds}, got {value!r}")
    return int(value)


def check_float(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """`value` as a finite float in [minimum, maximum] ((minimum, maximum] with
    `exclusive_minimum`); ValueError naming `name`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if exclusive_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = (
            ""
            if minimum is None
            else (f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}")
        )
        high = "" if maximum is None else f"<= {maximum:g}"
        bounds = " and ".join(b for b in (low, high) if b)
        raise ValueError(
            f"{name} must be a finite number{' ' + bounds if bounds else ''}, got {value!r}"
        )
    return float(value)


def check_choice(name: str, value: object, choices: tuple) -> Any:
    """`value` if it is one of `choices`; ValueError naming `name` otherwise."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _bounds_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""
