"""Config value checks with one wording everywhere: the key, the bad value, what to use instead.

Hydra accepts any value for any existing key (`model.hidden_size=abc`), so every value a run
uses is checked here, before data is read, instead of failing deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from seqmodels.errors import ConfigError


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(name: str, value: Any, minimum: int = 1, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if not is_int(value) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name}={value!r} is impossible; it must be {wanted}" + (" or null" if allow_none else ""))


def require_number(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
    allow_none: bool = False,
) -> None:
    if allow_none and value is None:
        return
    ok = (
        is_number(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(
            f"{name}={value!r} is impossible; it must be a number in {interval}" + (" or null" if allow_none else "")
        )


def require_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be true or false")


def require_choice(name: str, value: Any, choices: Collection[Any], hint: str = "") -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}={value!r} is unknown; use one of {sorted(choices)}{hint}")
