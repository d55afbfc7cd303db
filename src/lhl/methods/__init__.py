"""Continual-learning methods, registered by name in :data:`lhl.registry.METHODS`."""

from lhl.methods import der, dis, ewc, had, icarl, joint, lwf, pod, sgp, spg, vanilla  # noqa: F401  (registration)
from lhl.engine.hooks import Method

__all__ = ["Method"]
