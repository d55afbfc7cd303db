"""The method interface lives in the engine (:mod:`lhl.engine.hooks`); this name is kept so that
``from lhl.methods.base import Method`` in existing user code keeps working."""

from lhl.engine.hooks import Method

__all__ = ["Method"]
