"""Shared fixtures: a fast smoke configuration and a runner."""

from __future__ import annotations

import os

import pytest
import torch

from lhl.config import load_config
from lhl.engine.trainer import Trainer


# The suite's models are tiny: one thread avoids oversubscribing 2-core CI machines (torch's
# default of one thread per core makes tiny convolutions many times slower under load).
# LHL_TEST_THREADS=2 reruns tests with two threads (`make test` does so for the numerical tests,
# so that no tolerance depends on the thread count).
torch.set_num_threads(int(os.environ.get("LHL_TEST_THREADS", "1")))


def smoke_config(*overrides: str, method: str | None = None):
    return load_config(preset="smoke", method=method, overrides=list(overrides))


@pytest.fixture(name="smoke_config")
def smoke_config_fixture():
    """The smoke configuration builder: ``smoke_config("train.epochs=2", method="joint")``."""
    return smoke_config


@pytest.fixture
def run_smoke(tmp_path):
    """Run the smoke preset with overrides into a fresh directory; returns (performance, run_dir)."""

    def run(*overrides: str, method: str | None = None, name: str = "run"):
        out = tmp_path / name
        performance = Trainer(smoke_config(*overrides, method=method), out, quiet=True).run()
        return performance, out

    return run


def _load_distributed_util():
    """tests/distributed_util.py by path (pytest's importlib mode puts no test folder on sys.path)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("lhl_tests_distributed_util",
                                                  Path(__file__).with_name("distributed_util.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def run_distributed():
    """``run_distributed(fn, *args, world=2, init_group=True, timeout=120.0, env=None)`` → the return
    values of ``fn(*args)`` in ``world`` CPU processes of one gloo group, in rank order
    (tests/distributed_util.py)."""
    return _load_distributed_util().run_distributed
