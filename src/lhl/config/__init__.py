"""Loading run configurations: defaults ← preset or YAML file ← ``--method`` ← ``--set``."""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lhl.config.schema import ConfigError, RunConfig, build_dataclass, flatten, set_dotted

__all__ = ["ConfigError", "RunConfig", "load_config", "preset_names", "read_preset", "resolve_method",
           "config_differences"]


def preset_names() -> list[str]:
    folder = resources.files("lhl.config") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_preset(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(names)}")
    text = (resources.files("lhl.config") / "presets" / f"{name}.yaml").read_text()
    return _read_mapping(text, f"preset {name}")


def _read_mapping(text: str, where: str) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(tree).__name__}")
    return tree


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config; a top-level ``base: <preset>`` starts from that preset."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: no such file {str(path)!r}")
    tree = _read_mapping(path.read_text(), str(path))
    base = tree.pop("base", None)
    if base is None:
        return tree
    merged = read_preset(str(base))
    _merge(merged, tree)
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=1e-3'`` → ``('train.lr', 0.001)``; values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.epochs=2")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    # YAML reads '1e-3' as a string; accept scientific notation as a float.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def load_config(config_file: str | Path | None = None, preset: str | None = None, method: str | None = None,
                overrides: list[str] | None = None) -> RunConfig:
    """Build a validated :class:`RunConfig`. Method hyperparameters are checked later by
    :func:`resolve_method` (the method's plugin module may not be imported yet)."""
    if config_file is not None and preset is not None:
        raise ConfigError("use either --config or --preset, not both")
    if config_file is not None:
        tree = read_config_file(config_file)
    else:
        tree = read_preset(preset or "synthetic-nyu-demo")
    if method is not None:
        tree["method"] = {"name": method} if tree.get("method", {}).get("name") != method else tree["method"]
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    config = build_dataclass(RunConfig, tree)
    if "name" not in config.method or not isinstance(config.method["name"], str):
        raise ConfigError(f"method.name: missing or not a string in {config.method!r}")
    if len(config.data.resolution) != 2 or min(config.data.resolution) < 8:
        raise ConfigError(f"data.resolution: invalid value {config.data.resolution!r}; expected [H, W], each >= 8")
    for key in ("train.epochs", "train.batch_size"):
        value = getattr(config.train, key.split(".")[1])
        if value < 1:
            raise ConfigError(f"{key}: invalid value {value!r}; expected an integer >= 1")
    if not 0.0 <= config.train.warmup <= 1.0:
        raise ConfigError(f"train.warmup: invalid value {config.train.warmup!r}; expected a fraction in [0, 1]")
    return config


def resolve_method(config: RunConfig):
    """Return ``(method class, validated options)`` and fill ``config.method`` with every
    hyperparameter's value (so the saved config shows them all)."""
    from lhl.registry import METHODS

    cls = METHODS.get(config.method["name"])
    values = {k: v for k, v in config.method.items() if k != "name"}
    options = build_dataclass(cls.Options, values, "method")
    config.method = {"name": config.method["name"].lower(), **dataclasses.asdict(options)}
    return cls, options


# Keys that may differ between a run and its resumption without changing its results.
RESUME_TOLERATED = ("device", "data.num_workers", "train.keep_checkpoints", "data.root")


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ (ignoring :data:`RESUME_TOLERATED`)."""
    a, b = flatten(saved), flatten(current)
    keys = sorted(set(a) | set(b))
    return [f"{k}: run has {a.get(k)!r}, now {b.get(k)!r}" for k in keys
            if a.get(k) != b.get(k) and not k.startswith(RESUME_TOLERATED)]
