"""Kept for code that imported the run context from here: it lives in :mod:`lhl.engine.hooks`."""

from lhl.engine.hooks import Batch, RunContext, StepOutput

__all__ = ["Batch", "RunContext", "StepOutput"]
