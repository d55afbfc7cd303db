"""Name → object registries for methods, tasks, benchmarks, encoders, feature adapters and presets.

Entries can come from outside the package: a user module calls e.g.
``METHODS.register("mine")(MyMethod)`` at import, and the config lists that module under
``plugins`` so the CLI imports it (with :func:`importlib.import_module`, never ``eval``)
before names are resolved.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from lhl.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A case-insensitive mapping from lower-case names to registered objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (lower-cased)."""
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._entries and not overwrite and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name.lower()]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)


METHODS: Registry = Registry("method")
TASKS: Registry = Registry("task")
BENCHMARKS: Registry = Registry("benchmark")
ENCODERS: Registry = Registry("encoder")
#: per-task feature adapters of :class:`lhl.models.MultiTaskNet` (``MultiTaskNet.add_adapter``)
ADAPTERS: Registry = Registry("adapter")


def load_plugins(modules: list[str]) -> None:
    """Import user modules that register their own entries."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"plugins: cannot import module {module!r}: {exc}") from exc
        except Exception as exc:  # the user's module failed while importing
            raise ConfigError(f"plugins: importing module {module!r} failed: {type(exc).__name__}: {exc}") from exc


def load_builtins() -> None:
    """Import the package modules that register the built-in entries (idempotent)."""
    for module in ("lhl.tasks", "lhl.models", "lhl.methods", "lhl.data"):
        importlib.import_module(module)
