"""Experiment files: a base configuration, the methods and named variants to run on it, the seeds
and the task orders — the grid one comparison of the paper (or of docs/results-synthetic.md) needs.

    # experiments/had-ablations.yaml
    base: synthetic-nyu-demo          # a preset name or a config file (relative to this file)
    set: {train.epochs: 3}            # optional: config overrides applied to every run
    methods: [vanilla, dis, had]      # runs labelled by the method's name
    variants:                         # runs labelled by the variant's name
      had-eps1e-4: {method: had, set: {method.eps: 1.0e-4}}
    seeds: [0, 1]
    orders:                           # optional: default = the base configuration's task order
      - [segmentation, depth, normal]
      - [normal, depth, segmentation]
    baseline: vanilla                 # optional: the row Δ is measured against in the final table
    arms:                             # optional: run the whole grid once per arm (runs/<arm>/...)
      scratch: {}
      pretrained: {set: {model.weights: synthetic-pretrained}}

An arm's ``set`` is applied after the experiment's ``set`` and before a variant's; the report
(``lhl report``) and ``lhl compare`` keep arms apart (Δ of a row against the baseline of its own
arm; ``lhl bench`` records each run's arm in its ``bench-status.json``).

Reading is strict, like configuration files: an unknown key, a value of the wrong type, a
duplicate method, variant, seed or order (or a key written twice in one mapping) is a
:class:`~lhl.errors.ConfigError` naming the file and the key. Whether each run's configuration
is valid is checked separately, for every run, by :func:`lhl.experiments.plan.plan_runs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lhl.config import load_yaml, parse_override, preset_names
from lhl.errors import ConfigError

__all__ = ["Experiment", "Entry", "load_experiment", "experiment_from_options", "experiment_from_mapping",
           "EXPERIMENT_KEYS"]

EXPERIMENT_KEYS = ("base", "set", "methods", "variants", "seeds", "orders", "baseline", "arms")
VARIANT_KEYS = ("method", "set")
ARM_KEYS = ("set",)
#: Config keys an experiment's ``set`` may not hold: the grid sets them itself.
GRID_KEYS = {"seed": "seeds", "tasks": "orders", "method.name": "methods or a variant's method"}

# Labels, arm and task names become directory names (runs/[<arm>/]<order-id>/<label>-s<seed>).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_NAME_RULE = "letters, digits and . _ + - (not starting with a punctuation mark)"

#: How the command-line form names each experiment key in its messages.
CLI_KEYS = {"base": "--preset/--config", "set": "--set", "methods": "--methods", "seeds": "--seeds",
            "orders": "--orders", "baseline": "--baseline", "variants": "variants", "arms": "arms"}


@dataclass(frozen=True)
class Entry:
    """One row of the comparison: a method (label = its name) or a named variant of one."""

    label: str
    method: str
    overrides: dict[str, Any]  # dotted config key -> value, applied after the experiment's ``set``
    key: str  # where it is written, for messages: "methods" or "variants.<name>"


@dataclass
class Experiment:
    """A validated experiment file (or its command-line form)."""

    source: str  # the file ("" for the command-line form, whose messages name the option)
    base: str  # a preset name or an absolute config-file path
    base_is_file: bool
    overrides: dict[str, Any] = field(default_factory=dict)  # the experiment's ``set``, dotted keys
    methods: list[str] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"method", "set"}
    seeds: list[int] = field(default_factory=lambda: [0])
    orders: list[list[str]] | None = None  # None: the base configuration's order
    baseline: str | None = None
    keys: dict[str, str] = field(default_factory=lambda: {k: k for k in CLI_KEYS})
    #: arm name -> its ``set`` (dotted keys); None: no arms (the grid runs once, runs/<order-id>/...).
    arms: dict[str, dict[str, Any]] | None = None

    def entries(self) -> list[Entry]:
        """Methods first (as listed), then variants (as written)."""
        out = [Entry(m, m, {}, self.keys["methods"]) for m in self.methods]
        for name, variant in self.variants.items():
            out.append(Entry(name, variant["method"], dict(variant.get("set", {})), f"variants.{name}"))
        return out

    def where(self, key: str) -> str:
        """``"<file>: <key>"``, the prefix of a message about ``key``."""
        return f"{self.source}: {self.keys.get(key, key)}" if self.source else self.keys.get(key, key)

    def default_baseline(self) -> str:
        labels = [e.label for e in self.entries()]
        if self.baseline is not None:
            return self.baseline
        if "vanilla" in labels or "vanilla" in [e.method for e in self.entries()]:
            return "vanilla"
        return labels[0]

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a file would write it (``lhl bench`` stores it, resolved, in DIR/experiment.yaml)."""
        tree: dict[str, Any] = {"base": self.base}
        if self.overrides:
            tree["set"] = dict(self.overrides)
        if self.methods:
            tree["methods"] = list(self.methods)
        if self.variants:
            tree["variants"] = {name: {"method": v["method"], **({"set": dict(v["set"])} if v.get("set") else {})}
                                for name, v in self.variants.items()}
        tree["seeds"] = list(self.seeds)
        if self.orders is not None:
            tree["orders"] = [list(o) for o in self.orders]
        if self.baseline is not None:
            tree["baseline"] = self.baseline
        if self.arms is not None:
            tree["arms"] = {name: ({"set": dict(sets)} if sets else {}) for name, sets in self.arms.items()}
        return tree

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)


# ----------------------------------------------------------------------------- reading
def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (structure only; see :func:`lhl.experiments.plan.plan_runs`)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"experiment file {str(path)!r} {what}; expected a YAML experiment file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"experiment file {str(path)!r} cannot be read: {exc}") from None
    tree = load_yaml(text, str(path))
    return experiment_from_mapping(tree, str(path), path.parent)


def experiment_from_mapping(tree: Any, source: str, folder: Path, keys: dict[str, str] | None = None) -> Experiment:
    """Validate a parsed experiment mapping; ``folder`` resolves a relative ``base`` path."""
    keys = keys or {k: k for k in CLI_KEYS}

    at = f"{source}: " if source else ""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{at}{keys.get(key, key)}: {problem}")

    if not isinstance(tree, dict):
        got = "an empty file" if tree is None else type(tree).__name__
        raise ConfigError(f"{at}expected a mapping with the keys {', '.join(EXPERIMENT_KEYS)}, got {got}")
    for key in tree:
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(f"{at}unknown key {key!r}; allowed keys: {', '.join(EXPERIMENT_KEYS)}")
    if "base" not in tree:
        raise ConfigError(f"{at}base: missing; expected a preset name ({', '.join(preset_names())}) "
                          "or a config file path")
    base, base_is_file = _base(tree["base"], folder, fail)
    overrides = _overrides(tree.get("set"), "set", fail)
    methods = _names(tree.get("methods"), "methods", "a method name", fail)
    variants = _variants(tree.get("variants"), fail)
    if not methods and not variants:
        raise fail("methods", "no run: give at least one method (methods: [...]) or variant (variants: {...})")
    clash = [name for name in variants if name in methods]
    if clash:
        raise fail(f"variants.{clash[0]}", f"the name {clash[0]!r} is also listed under methods; every run "
                   "label must be unique")
    if "seeds" not in tree:
        raise fail("seeds", "missing; expected a list of seeds, e.g. [0, 1]")
    seeds = _seeds(tree["seeds"], fail)
    orders = _orders(tree.get("orders"), fail) if tree.get("orders", None) is not None else None
    baseline = tree.get("baseline")
    if baseline is not None:
        labels = methods + list(variants) + [v["method"] for v in variants.values()]
        if not isinstance(baseline, str) or baseline not in labels:
            raise fail("baseline", f"invalid value {baseline!r}; expected one of the experiment's labels or "
                       f"methods: {', '.join(dict.fromkeys(labels))}")
    arms = _arms(tree["arms"], fail) if tree.get("arms", None) is not None else None
    return Experiment(source=source, base=base, base_is_file=base_is_file, overrides=overrides, methods=methods,
                      variants=variants, seeds=seeds, orders=orders, baseline=baseline, keys=keys, arms=arms)


def experiment_from_options(preset: str | None = None, config: str | None = None, methods: str | None = None,
                            seeds: str | None = None, orders: str | None = None, sets: list[str] | None = None,
                            baseline: str | None = None) -> Experiment:
    """The command-line form: ``--preset NAME --methods a,b --seeds 0,1 --orders "a,b,c;c,b,a" --set k=v``."""
    source = ""  # messages name the option, e.g. "--seeds: ..."

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{key}: {problem}")

    if preset is not None and config is not None:
        raise ConfigError("use either --preset or --config, not both")
    if not methods:
        raise fail("--methods", "missing; expected a comma-separated list of methods, e.g. --methods vanilla,had")
    tree: dict[str, Any] = {
        "base": preset if preset is not None else (str(Path(config).resolve()) if config else "synthetic-nyu-demo"),
        "methods": _split(methods, ",", "--methods", fail),
        "seeds": [_int(s, "--seeds", fail) for s in _split(seeds or "0", ",", "--seeds", fail)],
    }
    if config is not None and not Path(config).is_file():
        raise fail("--config", f"no such file {config!r}; expected a YAML config file")
    if preset is not None and preset not in preset_names():
        raise fail("--preset", f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
    if orders:
        tree["orders"] = [_split(o, ",", "--orders", fail) for o in _split(orders, ";", "--orders", fail)]
    if sets:
        tree["set"] = dict(parse_override(text) for text in sets)
    if baseline is not None:
        tree["baseline"] = baseline
    return experiment_from_mapping(tree, source, Path.cwd(), keys=dict(CLI_KEYS))


def _split(text: str, sep: str, key: str, fail) -> list[str]:
    parts = [p.strip() for p in text.split(sep)]
    if not all(parts):
        raise fail(key, f"invalid value {text!r}: an empty item between {sep!r} separators")
    return parts


def _int(text: str, key: str, fail) -> int:
    try:
        return int(text)
    except ValueError:
        raise fail(key, f"invalid value {text!r}; expected integers, e.g. 0,1") from None


def _base(value: Any, folder: Path, fail) -> tuple[str, bool]:
    presets = preset_names()
    if not isinstance(value, str) or not value:
        raise fail("base", f"invalid value {value!r}; expected a preset name ({', '.join(presets)}) or a config "
                   "file path")
    if value in presets:
        return value, False
    if value.endswith((".yaml", ".yml")) or "/" in value:
        path = (folder / value).resolve()
        if not path.is_file():
            raise fail("base", f"no such config file {str(path)!r}")
        return str(path), True
    raise fail("base", f"unknown preset {value!r}; expected one of {', '.join(presets)} or a path to a .yaml file")


def _overrides(value: Any, key: str, fail) -> dict[str, Any]:
    """``set``: a mapping of dotted config keys (nested mappings are flattened) to values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, f"invalid value {value!r}; expected a mapping of config keys to values, "
                   "e.g. {train.epochs: 2, method.alpha: 3}")
    flat: dict[str, Any] = {}

    def walk(node: dict[Any, Any], prefix: str) -> None:
        for name, item in node.items():
            if not isinstance(name, str) or not name:
                raise fail(key, f"invalid config key {name!r}; expected a dotted name such as train.epochs")
            dotted = f"{prefix}.{name}" if prefix else name
            if isinstance(item, dict):
                if not item:
                    raise fail(f"{key}.{dotted}", "an empty mapping; expected a value")
                walk(item, dotted)
                continue
            if dotted in flat:
                raise fail(f"{key}.{dotted}", "given twice (once dotted, once nested)")
            flat[dotted] = item

    walk(value, "")
    for dotted in flat:
        if dotted in GRID_KEYS or dotted == "method":
            raise fail(f"{key}.{dotted}", f"set by the experiment's grid; use {GRID_KEYS.get(dotted, 'methods')}")
        if any(not part or not part.replace("_", "").replace("-", "").isalnum() for part in dotted.split(".")):
            raise fail(f"{key}.{dotted}", "not a dotted config key; expected e.g. train.epochs")
    return flat


def _names(value: Any, key: str, what: str, fail) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(key, f"invalid value {value!r}; expected a list of names, e.g. [vanilla, had]")
    seen: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _NAME.match(item):
            raise fail(key, f"invalid value {item!r}; expected {what} ({_NAME_RULE})")
        if item in seen:
            raise fail(key, f"{item!r} is listed twice")
        seen.append(item)
    return seen


def _variants(value: Any, fail) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("variants", f"invalid value {value!r}; expected a mapping name -> {{method: NAME, set: {{...}}}}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail("variants", f"invalid variant name {name!r}; expected {_NAME_RULE}")
        key = f"variants.{name}"
        if not isinstance(spec, dict):
            raise fail(key, f"invalid value {spec!r}; expected {{method: NAME, set: {{key: value}}}}")
        unknown = [k for k in spec if k not in VARIANT_KEYS]
        if unknown:
            raise fail(key, f"unknown key {unknown[0]!r}; allowed keys: {', '.join(VARIANT_KEYS)}")
        method = spec.get("method")
        if not isinstance(method, str) or not _NAME.match(method):
            raise fail(f"{key}.method", "missing or invalid; a variant names its method, e.g. method: had"
                       if method is None else f"invalid value {method!r}; expected a method name")
        out[name] = {"method": method, "set": _overrides(spec.get("set"), f"{key}.set", fail)}
    return out


def _arms(value: Any, fail) -> dict[str, dict[str, Any]]:
    """``arms``: a non-empty mapping name -> ``{set: {...}}`` (``{}`` or nothing: the experiment as is)."""
    if not isinstance(value, dict) or not value:
        raise fail("arms", f"invalid value {value!r}; expected a mapping name -> {{set: {{key: value}}}}, e.g. "
                   "{scratch: {}, pretrained: {set: {model.weights: FILE}}}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail("arms", f"invalid arm name {name!r}; expected {_NAME_RULE}")
        key = f"arms.{name}"
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise fail(key, f"invalid value {spec!r}; expected {{}} or {{set: {{key: value}}}}")
        unknown = [k for k in spec if k not in ARM_KEYS]
        if unknown:
            raise fail(key, f"unknown key {unknown[0]!r}; allowed keys: {', '.join(ARM_KEYS)}")
        out[name] = _overrides(spec.get("set"), f"{key}.set", fail)
    return out


def _seeds(value: Any, fail) -> list[int]:
    if not isinstance(value, list) or not value:
        raise fail("seeds", f"invalid value {value!r}; expected a non-empty list of seeds, e.g. [0, 1]")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise fail("seeds", f"invalid value {seed!r}; expected integers >= 0")
    if len(set(value)) < len(value):
        raise fail("seeds", f"a seed is listed twice in {value}")
    return list(value)


def _orders(value: Any, fail) -> list[list[str]]:
    if not isinstance(value, list) or not value:
        raise fail("orders", f"invalid value {value!r}; expected a list of task sequences, e.g. "
                   "[[segmentation, depth, normal], [normal, depth, segmentation]]")
    orders: list[list[str]] = []
    for i, order in enumerate(value):
        key = f"orders[{i}]"
        if not isinstance(order, list) or not order:
            raise fail(key, f"invalid value {order!r}; expected a non-empty list of task names")
        for task in order:
            if not isinstance(task, str) or not _NAME.match(task):
                raise fail(key, f"invalid task name {task!r}; expected {_NAME_RULE}")
        if len(set(order)) < len(order):
            raise fail(key, f"a task is listed twice in {order}")
        if order in orders:
            raise fail(key, f"the order {order} is listed twice")
        orders.append(list(order))
    return orders
