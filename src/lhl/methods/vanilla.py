"""Vanilla: sequential fine-tuning, L = L_new (the paper's lower bound, SPEC §4)."""

from lhl.engine.hooks import Method
from lhl.registry import METHODS


@METHODS.register("vanilla")
class Vanilla(Method):
    """Each phase trains only the new task's loss; nothing protects old tasks."""

    name = "vanilla"
