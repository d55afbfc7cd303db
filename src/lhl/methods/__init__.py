"""Continual-learning methods, registered by name in :data:`lhl.registry.METHODS`."""

from lhl.methods import dis, had, joint, vanilla  # noqa: F401  (registration)
from lhl.methods.base import Method

__all__ = ["Method"]
