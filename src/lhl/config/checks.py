"""Range checks for configuration values: each raises :class:`~lhl.errors.ConfigError` naming
the dotted key, the bad value and what is allowed. Used by the config sections and by every
method's ``Options.__post_init__``."""

from __future__ import annotations

import math

from lhl.errors import ConfigError


def _fail(key: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{key}: invalid value {value!r}; expected {expected}")


def check_nonnegative(value: float, key: str) -> None:
    """``value`` is a finite number >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise _fail(key, value, "a finite number >= 0")


def check_positive(value: float, key: str) -> None:
    """``value`` is a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise _fail(key, value, "a finite number > 0")


def check_positive_int(value: int, key: str) -> None:
    """``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(key, value, "an integer >= 1")


def check_nonnegative_int(value: int, key: str) -> None:
    """``value`` is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(key, value, "an integer >= 0")


def check_fraction(value: float, key: str, *, low_open: bool = False, high_open: bool = False) -> None:
    """``value`` lies in [0, 1] (ends excluded where asked)."""
    ok = math.isfinite(value) and (0 < value if low_open else 0 <= value) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise _fail(key, value, f"a number in {interval}")
