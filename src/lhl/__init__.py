"""lhl: lifelong heterogeneous learning on dense prediction (HAD and its baselines)."""

__version__ = "0.1.0"
