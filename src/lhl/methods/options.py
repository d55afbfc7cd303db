"""Validation shared by the methods' ``Options`` dataclasses (called from ``__post_init__``).

A config's ``method.<key>`` values are type-checked by the config schema
(:func:`lhl.config.schema.build_dataclass`) before an ``Options`` is built, and each method's
``__post_init__`` checks the ranges with :mod:`lhl.config.checks`. :func:`check_choices` repeats
the schema's check of the ``Literal`` and ``bool`` fields so that an ``Options`` built directly
in Python (a script, a test) cannot hold a value the method would silently read as another one:
SPG and SGP, for instance, edit the update only when ``apply_to == "update"`` and the gradient
only when it is ``"gradient"``, so a typo would switch the protection off without a word.
Errors are :class:`~lhl.errors.ConfigError` in the config's format,
``method.<key>: invalid value <v>; expected <what>``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from lhl.errors import ConfigError


def check_choices(options: Any) -> None:
    """Every ``Literal`` field of the dataclass instance ``options`` holds one of its values and
    every ``bool`` field a bool."""
    hints = typing.get_type_hints(type(options))
    for field in dataclasses.fields(options):
        kind, value, key = hints.get(field.name), getattr(options, field.name), f"method.{field.name}"
        if typing.get_origin(kind) is Literal:
            allowed = typing.get_args(kind)
            if not any(type(value) is type(a) and value == a for a in allowed):
                raise ConfigError(f"{key}: invalid value {value!r}; expected one of "
                                  + ", ".join(repr(a) for a in allowed))
        elif kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{key}: invalid value {value!r}; expected true or false")


def check_int_at_least(value: int, key: str, low: int) -> None:
    """``value`` is an integer (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}: invalid value {value!r}; expected an integer >= {low}")
