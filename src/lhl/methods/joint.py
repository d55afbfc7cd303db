"""Joint training: the multi-task upper bound (HAD paper, Sec. 5.1; docs/deviations.md, "Joint
training")."""

from lhl.engine.hooks import Method
from lhl.registry import METHODS


@METHODS.register("joint")
class Joint(Method):
    """All tasks trained at once on the whole training set with all labels, loss = sum of the
    task losses, for ``train.epochs`` epochs (as one phase), evaluated once."""

    name = "joint"
    joint = True
