"""Stored values on their way out: whatever a row holds (written by an older version, or by
hand), what the API serves is valid JSON. A non-finite or non-numeric score is served as null,
"not measured", never as a number it is not, and never as a 500."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


def number(value: Any) -> float | None:
    """`value` as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) else None


def scores(value: Any) -> dict[str, float | None]:
    """A {name: score} map with every non-finite or non-numeric value served as null."""
    if not isinstance(value, dict):
        return {}
    return {str(name): number(item) for name, item in value.items()}


def reasons(value: Any) -> dict[str, str]:
    """The {scorer: reason} map of excluded scorers (anything else is dropped)."""
    if not isinstance(value, dict):
        return {}
    return {str(name): str(reason) for name, reason in value.items() if isinstance(reason, str)}


def json_value(value: Any) -> Any:
    """Free-form stored JSON (a round's challenge) with non-finite numbers served as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC timestamp as served: ISO 8601 with a `Z`."""
    return None if value is None else value.isoformat() + "Z"
