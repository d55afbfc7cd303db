"""Vanilla: sequential fine-tuning, L = L_new (the paper's lower bound, Sec. 5.1)."""

from lhl.engine.hooks import Method
from lhl.registry import METHODS


@METHODS.register("vanilla")
class Vanilla(Method):
    """Each phase trains only the new task's loss; nothing protects old tasks."""

    name = "vanilla"
