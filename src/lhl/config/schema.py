"""Typed run configuration, validated from YAML and ``--set`` overrides.

Every section is a dataclass; loading checks each key against the fields, each value against
the field's type (and the allowed choices, where a field has them) and, in the section's
``__post_init__``, against its range; a bad key or value raises :class:`ConfigError` naming the
dotted key, the bad value and what is allowed. No value is ever replaced by a default: ``None``
is the only "use the default" value, and it is recorded as such. Method hyperparameters live
under ``method`` and are validated against the chosen method's own ``Options`` dataclass
(declared in the method's file), so no option rewrites another.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union


from lhl.config.checks import (check_fraction, check_nonnegative, check_nonnegative_int, check_positive,
                               check_positive_int)
from lhl.errors import ConfigError


@dataclass
class ModelConfig:
    encoder: str = "resnet18"
    weights: str | None = None  # ResNet weight file, "imagenet" or "synthetic-pretrained"; never downloaded
    head_rates: list[int] = field(default_factory=lambda: [12, 24, 36])
    head_channels: int = 256
    head_dropout: float = 0.5

    def __post_init__(self) -> None:
        if not self.encoder:
            raise ConfigError("model.encoder: invalid value ''; expected an encoder name (lhl list encoders)")
        for i, rate in enumerate(self.head_rates):
            check_positive_int(rate, f"model.head_rates[{i}]")
        check_positive_int(self.head_channels, "model.head_channels")
        check_fraction(self.head_dropout, "model.head_dropout", high_open=True)


@dataclass
class DataConfig:
    root: str | None = None  # dataset directory (real benchmarks)
    resolution: list[int] = field(default_factory=lambda: [64, 64])  # [H, W]
    train_size: int | None = None  # synthetic: images generated; real: cap (None = all)
    test_size: int | None = None
    # validation images, used only for selecting settings (lhl sweep) and evaluated once after the last
    # phase (performance.json "validation"); 0 = no validation split. Synthetic: a separately rendered
    # split; on disk: a seeded slice of the training images, excluded from the phase chunks
    val_size: int = 0
    chunking: Literal["shuffle", "contiguous"] = "shuffle"
    num_workers: int = 0
    augment: bool = False  # MTAN's RandomScaleCrop + flip on training images (lhl.data.transforms)
    normalize: Literal["none", "imagenet"] = "none"  # image mean/std; the reference pipelines use none
    # Taskonomy only (lhl.data.taskonomy): split rule, 16-bit depth scale, segmentation classes
    taskonomy_split: Literal["paper", "tiny"] = "paper"  # views 0-2 train / view 3 test, or tiny buildings
    taskonomy_depth: Literal["metres", "unit"] = "metres"  # raw/512 or raw/65535
    taskonomy_classes: Union[Literal["all", "grouped8"], list[int]] = "all"  # raw label 0..17 → class, -1 ignore

    def __post_init__(self) -> None:
        check_nonnegative_int(self.num_workers, "data.num_workers")
        check_nonnegative_int(self.val_size, "data.val_size")
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            raise ConfigError(f"data.resolution: invalid value {self.resolution!r}; expected [H, W]")

    def check_for_training(self) -> None:
        """What a training run needs beyond a well-formed section (the data layer's own tests build
        smaller sections directly; ``Benchmark.validate`` checks the sizes again)."""
        if min(self.resolution) < 8:
            raise ConfigError(f"data.resolution: invalid value {self.resolution!r}; expected [H, W], each an "
                              "integer >= 8 (the encoder's output stride)")
        for key in ("train_size", "test_size"):
            if getattr(self, key) is not None:
                check_positive_int(getattr(self, key), f"data.{key}")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 8
    eval_batch_size: int | None = None  # None: 2 × batch_size
    # normals' median: exact (every angle kept, gathered across processes) or from an all-reduced
    # 0.001° histogram in constant memory (for very large test sets)
    eval_normal_median: Literal["exact", "histogram"] = "exact"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup: float = 0.5  # fraction of a phase's steps spent warming up
    # the shared encoder's learning rate is train.lr × this (heads, adapters and method parameters keep
    # train.lr): the usual fine-tuning of a pretrained backbone; 1 = one learning rate, as the paper
    encoder_lr_scale: float = 1.0
    amp: Literal["off", "bf16", "fp16"] = "off"
    keep_checkpoints: int | None = None  # keep the newest N phase checkpoints (None = all)
    log_grad_norms: bool = True  # log each loss term's encoder gradient norm on one batch per epoch
    channels_last: bool = False  # NHWC memory format for the model and images (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the student model (where this torch/device supports it)
    sync_batchnorm: bool = False  # under DDP: BatchNorm statistics over the global batch (SyncBatchNorm)
    # frozen-teacher outputs computed once per phase and served by sample index (lhl.engine.teacher);
    # auto: on whenever nothing changes the phase's images between epochs (data.augment off)
    teacher_cache: Literal["auto", "off"] = "auto"
    teacher_cache_precision: Literal["fp16", "fp32"] = "fp32"  # storage of cached regression outputs / logits
    teacher_cache_storage: Literal["memory", "disk"] = "memory"  # disk: a memory-mapped file in the run directory

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "train.epochs")
        check_positive_int(self.batch_size, "train.batch_size")
        if self.eval_batch_size is not None:
            check_positive_int(self.eval_batch_size, "train.eval_batch_size")
        check_positive(self.lr, "train.lr")
        check_nonnegative(self.weight_decay, "train.weight_decay")
        check_fraction(self.warmup, "train.warmup")
        check_positive(self.encoder_lr_scale, "train.encoder_lr_scale")
        if self.keep_checkpoints is not None:
            check_positive_int(self.keep_checkpoints, "train.keep_checkpoints")


#: the message when ``logging.tensorboard`` is asked for without the package (also raised by
#: :mod:`lhl.engine.tensorboard_log` when the installed package cannot be imported)
TENSORBOARD_MISSING = ("logging.tensorboard: the tensorboard package is not installed; "
                       "pip install 'lhl[tensorboard]'")


@dataclass
class LoggingConfig:
    """Optional logs besides ``events.jsonl`` (which stays the record of a run)."""

    tensorboard: bool = False  # loss terms per step, metrics per phase → RUN/tensorboard/ (needs lhl[tensorboard])

    def __post_init__(self) -> None:
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError(TENSORBOARD_MISSING)


@dataclass
class RunConfig:
    benchmark: str = "synthetic-nyu"
    tasks: list[str] | None = None  # task order; None = the benchmark's default sequence
    seed: int = 0
    device: str = "cpu"
    plugins: list[str] = field(default_factory=list)  # modules that register user entries
    method: dict[str, Any] = field(default_factory=lambda: {"name": "vanilla"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        check_nonnegative_int(self.seed, "seed")
        if self.seed >= 2**32:
            raise ConfigError(f"seed: invalid value {self.seed!r}; expected an integer in [0, 2**32)")
        if self.tasks is not None:
            if not self.tasks:
                raise ConfigError("tasks: invalid value []; expected a non-empty list of task names, or null for "
                                  "the benchmark's order")
            repeated = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
            if repeated:
                raise ConfigError(f"tasks: {', '.join(repeated)} appears more than once in {self.tasks!r}; "
                                  "each task has one phase")
        self.data.check_for_training()
        name = self.method.get("name") if isinstance(self.method, dict) else None
        if not isinstance(name, str) or not name:
            raise ConfigError(f"method.name: missing or not a string in {self.method!r}; expected a method name "
                              "(lhl list methods)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
    if tp is Any:
        return value
    if origin is Literal:
        # YAML 1.1 reads a bare off/on (``train.teacher_cache=off``, ``amp: off``) as a boolean
        if isinstance(value, bool) and ("on" if value else "off") in typing.get_args(tp):
            return "on" if value else "off"
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise bad
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (inner,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key)
    raise bad


def build_dataclass(cls: type, values: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    where = prefix or "config"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: invalid value {values!r}; expected a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            allowed = f"allowed keys: {', '.join(sorted(fields))}" if fields else f"{where} takes no keys"
            raise ConfigError(f"unknown config key {dotted!r}; {allowed}")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted == 'a.b'``, creating mappings as needed."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` → ``{'a.b': 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def config_keys(cls: type = None, prefix: str = "") -> list[str]:
    """Every dotted config key of :class:`RunConfig` (for help texts), sections expanded."""
    cls = cls or RunConfig
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], f"{prefix}{f.name}.")
        elif f.name == "method":
            keys += ["method.name", "method.<option>"]
        else:
            keys.append(prefix + f.name)
    return keys
