"""Loading run configurations: defaults ← preset or YAML file ← ``--method`` ← ``--set``.

YAML is read strictly: a duplicate key, a non-mapping document or a syntax error is a
:class:`ConfigError` naming the file (and line), never "last one wins". A config file may start
from a preset or from another file with ``base: <preset name or path>`` (a relative path is
relative to the file that names it).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
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


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML strictly (duplicate keys refused); errors name ``where`` and the problem on one line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML: {problem}{at}") from None


def _read_mapping(text: str, where: str) -> dict[str, Any]:
    tree = load_yaml(text, where)
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys at the top level, got {type(tree).__name__}")
    return tree


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config; a top-level ``base:`` names a preset or another config file to start from."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ConfigError(f"--config: {str(path)!r} is a directory; expected a YAML config file")
        raise ConfigError(f"--config: no such file {str(path)!r}; expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config: cannot read {str(path)!r}: {exc}") from None
    tree = _read_mapping(text, str(path))
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: invalid value {base!r}; expected a preset name or a config file path")
    if base in preset_names():
        merged = read_preset(base)
    elif base.endswith((".yaml", ".yml")) or "/" in base:
        base_path = (path.parent / base).resolve()
        if base_path in _chain or base_path == path.resolve():
            raise ConfigError(f"{path}: base: {base!r} includes itself")
        merged = read_config_file(base_path, (*_chain, path.resolve()))
    else:
        raise ConfigError(f"{path}: base: unknown preset {base!r}; expected one of {', '.join(preset_names())} "
                          "or a path to a .yaml file")
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
    key = key.strip()
    if not key or any(not part or not part.replace("_", "").replace("-", "").isalnum() for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: {key!r} is not a dotted config key; expected e.g. train.lr=1e-3")
    if not raw.strip():
        raise ConfigError(f"--set {text!r}: no value after '='; write null for none, e.g. {key}=null")
    try:
        value = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        if raw.lstrip().startswith(("[", "{")):
            raise ConfigError(f"--set {text!r}: value {raw!r} is not valid YAML; expected e.g. [a, b]") from None
        value = raw
    # YAML reads '1e-3' as a string; accept scientific notation as a float.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


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
        tree["method"] = _replace_method(tree.get("method"), method)
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    return build_dataclass(RunConfig, tree)


def _replace_method(section: Any, method: str) -> dict[str, Any]:
    """``--method NAME``: the method section becomes ``{name: NAME}``. Options the config file set for
    another method are not carried over (they belong to that method); a note on stderr lists them so
    nothing is dropped silently. ``--set method.<key>=...`` then sets the new method's options."""
    if not isinstance(section, dict):
        return {"name": method}
    old = section.get("name")
    if isinstance(old, str) and old.lower() == method.lower():
        return {**section, "name": method}
    dropped = sorted(k for k in section if k != "name")
    if dropped:
        print(f"lhl: note: --method {method} replaces method {old!r} of the config; its options "
              f"{', '.join(dropped)} are not used (set {method}'s with --set method.<key>=...)", file=sys.stderr)
    return {"name": method}


def resolve_method(config: RunConfig):
    """Return ``(method class, validated options)`` for ``config.method`` (``config`` is not
    modified; :func:`lhl.engine.build.build_run` records every option's value in the resolved
    config it returns)."""
    from lhl.registry import METHODS

    name = config.method["name"]
    cls = METHODS.get(name)
    values = {k: v for k, v in config.method.items() if k != "name"}
    allowed = [f.name for f in dataclasses.fields(cls.Options)]
    for key in values:
        if key not in allowed:
            what = f"has the options {', '.join(allowed)}" if allowed else "takes no options"
            raise ConfigError(f"unknown config key 'method.{key}': method {name!r} {what}")
    return cls, build_dataclass(cls.Options, values, "method")


# Keys that may differ between a run and its resumption without changing its results.
RESUME_TOLERATED = ("device", "data.num_workers", "train.keep_checkpoints", "data.root", "logging",
                    "train.teacher_cache_storage")


#: Keys added after runs were recorded: a saved configuration without one had this value.
ADDED_KEYS = {"data.val_size": 0, "train.channels_last": False, "train.compile": False,
              "train.sync_batchnorm": False, "train.teacher_cache": "auto", "train.teacher_cache_precision": "fp32",
              "train.teacher_cache_storage": "memory", "train.eval_normal_median": "exact",
              "train.encoder_lr_scale": 1.0}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ (ignoring :data:`RESUME_TOLERATED`; a key of
    :data:`ADDED_KEYS` missing from ``saved`` but present in ``current`` counts as its default)."""
    a, b = flatten(saved), flatten(current)
    for key, default in ADDED_KEYS.items():
        if key not in a and key in b:
            a[key] = default
    keys = sorted(set(a) | set(b))
    return [f"{k}: run has {a.get(k)!r}, now {b.get(k)!r}" for k in keys
            if a.get(k) != b.get(k) and not k.startswith(RESUME_TOLERATED)]
