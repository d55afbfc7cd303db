"""Joint training: the multi-task upper bound (SPEC §1)."""

from lhl.engine.hooks import Method
from lhl.registry import METHODS


@METHODS.register("joint")
class Joint(Method):
    """All tasks trained at once on the whole training set with all labels, loss = sum of the
    task losses, for ``train.epochs`` epochs (as one phase), evaluated once."""

    name = "joint"
    joint = True
