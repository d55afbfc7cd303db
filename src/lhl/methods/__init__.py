"""Continual-learning methods, registered by name in :data:`lhl.registry.METHODS`."""

from lhl.methods import (der, dis, ewc, frozen, had, icarl, joint, lwf, pod, sgp, side_tuning, spg,  # noqa: F401
                         vanilla)  # (registration)
from lhl.engine.hooks import Method

__all__ = ["Method"]
