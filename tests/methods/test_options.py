"""Every method option is range-checked: invalid values (NaN included) raise ConfigError naming
``method.<key>``, through the config and when an ``Options`` is built directly; defaults validate.

The table below must list every numeric option of every built-in method (a test fails when a new
one is added without invalid values here), so a new option cannot skip its range check.
"""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from lhl.config import ConfigError, load_config, resolve_method
from lhl.registry import METHODS, load_builtins

load_builtins()
NAN, INF = float("nan"), float("inf")
BUILTIN = sorted(name for name in METHODS.names() if METHODS.get(name).__module__.startswith("lhl."))

REPLAY = {"weight": [-0.01, NAN, INF, -INF], "buffer_size": [0, -1], "replay_batch": [0, -3]}
# method → numeric option → invalid values
INVALID: dict[str, dict[str, list]] = {
    "vanilla": {},
    "joint": {},
    "dis": {"alpha": [-1, NAN, INF]},
    "had": {"alpha": [-1, NAN, INF], "group_threshold": [-0.1, 1.5, NAN, INF], "edge_threshold": [-0.5, 2, NAN],
            "eps": [0, -1e-8, NAN, INF], "regression_groups": [1, 0, -2]},
    "ewc": {"lam": [-1, NAN, INF], "gamma": [-0.1, 1.5, NAN]},
    "lwf": {"weight": [-5, NAN, INF], "temperature": [0, -2, NAN, INF]},
    "pod": {"weight": [-0.01, NAN, INF]},
    "der": REPLAY,
    "icarl": REPLAY,
    "sgp": {"scale": [-0.1, NAN, INF], "threshold_base": [0, -0.5, 1.01, NAN], "threshold_step": [-0.003, 1.5, NAN],
            "samples": [0, -125]},
    "spg": {},
    "frozen": {},
    "side-tuning": {"alpha": [0, 1, -0.5, 1.5, NAN, INF], "width": [0, -8]},  # a learnt α (default) in (0, 1)
}
# valid edge values (each a set of options for one method)
VALID = [
    ("had", {"group_threshold": 0.0}), ("had", {"group_threshold": 1.0}), ("had", {"edge_threshold": 0.0}),
    ("had", {"edge_threshold": 1.0}), ("had", {"alpha": 0.0}), ("had", {"eps": 1e-12}),
    ("had", {"normalize_sobel": False, "edge_threshold": 25.0}),  # the raw Sobel magnitude is not in [0, 1]
    ("had", {"regression_groups": 15}),
    ("ewc", {"gamma": 0.0}), ("ewc", {"gamma": 1.0, "mode": "online"}), ("ewc", {"lam": 1e10}),
    ("lwf", {"weight": 0.0, "temperature": 0.5}), ("pod", {"weight": 0.0}),
    ("der", {"weight": 0.0, "buffer_size": 1, "replay_batch": 1}), ("icarl", {"buffer_size": 1}),
    ("sgp", {"threshold_base": 1.0, "threshold_step": 0.0, "scale": 0.0, "samples": 1}),
    ("sgp", {"threshold_step": 1.0, "scale": 1000.0}),
    ("side-tuning", {"alpha": 0.0, "learn_alpha": False}), ("side-tuning", {"alpha": 1.0, "learn_alpha": False}),
    ("side-tuning", {"width": 1}),
]


def _options(method: str):
    return METHODS.get(method).Options


def _hints(method: str) -> dict[str, typing.Any]:
    return typing.get_type_hints(_options(method))


def _fields_of_type(method: str, kinds: tuple) -> list[str]:
    hints = _hints(method)
    return [f.name for f in dataclasses.fields(_options(method)) if hints[f.name] in kinds]


def _literal_fields(method: str) -> list[str]:
    hints = _hints(method)
    return [f.name for f in dataclasses.fields(_options(method)) if typing.get_origin(hints[f.name]) is typing.Literal]


def _message(key: str) -> str:
    return rf"^method\.{re.escape(key)}: invalid value .*; expected "


CASES = [(m, k, v) for m, options in INVALID.items() for k, values in options.items() for v in values]


def test_the_table_covers_every_numeric_option_of_every_builtin_method():
    assert sorted(INVALID) == BUILTIN
    for method in BUILTIN:
        assert sorted(INVALID[method]) == sorted(_fields_of_type(method, (int, float))), method


@pytest.mark.parametrize("method", BUILTIN)
def test_defaults_validate(method, smoke_config):
    defaults = _options(method)()
    cls, options = resolve_method(smoke_config(method=method))
    assert cls is METHODS.get(method) and options == defaults


@pytest.mark.parametrize("method, key, value", CASES, ids=[f"{m}-{k}-{v}" for m, k, v in CASES])
def test_invalid_value_names_the_key_through_the_config(method, key, value, smoke_config):
    with pytest.raises(ConfigError, match=_message(key)):
        resolve_method(smoke_config(f"method.{key}={value}", method=method))


@pytest.mark.parametrize("method, key, value", CASES, ids=[f"{m}-{k}-{v}" for m, k, v in CASES])
def test_invalid_value_names_the_key_when_built_directly(method, key, value):
    with pytest.raises(ConfigError, match=_message(key)):
        _options(method)(**{key: value})


@pytest.mark.parametrize("method", BUILTIN)
def test_nan_and_infinity_are_refused_wherever_a_number_is_expected(method):
    for key in _fields_of_type(method, (float,)):
        for value in (NAN, INF, -INF):
            with pytest.raises(ConfigError, match=_message(key)):
                _options(method)(**{key: value})
    for key in _fields_of_type(method, (int,)):  # an int option never takes a float, NaN least of all
        with pytest.raises(ConfigError, match=_message(key)):
            _options(method)(**{key: NAN})


@pytest.mark.parametrize("method", BUILTIN)
def test_choices_and_switches_are_checked_when_built_directly(method):
    """The schema checks them in a config; an Options built in Python must not hold, e.g., an
    ``apply_to`` the method would silently read as "no protection"."""
    for key in _literal_fields(method):
        with pytest.raises(ConfigError, match=_message(key)):
            _options(method)(**{key: "no-such-choice"})
    for key in _fields_of_type(method, (bool,)):
        with pytest.raises(ConfigError, match=_message(key)):
            _options(method)(**{key: "yes"})


@pytest.mark.parametrize("method, values", VALID, ids=[f"{m}-{v}" for m, v in VALID])
def test_edge_values_are_accepted(method, values, smoke_config):
    _options(method)(**values)
    resolve_method(smoke_config(*(f"method.{k}={str(v).lower()}" for k, v in values.items()), method=method))


def test_nan_from_the_command_line_is_a_float_nan(smoke_config):
    """``--set method.alpha=nan`` reaches the check as NaN (not as the string 'nan')."""
    with pytest.raises(ConfigError, match=r"^method\.alpha: invalid value nan; expected a finite number >= 0"):
        resolve_method(smoke_config("method.alpha=nan", method="had"))
