"""The two-process gloo helper of the DDP tests (tests/distributed_util.py)."""

import pytest
import torch

from lhl.engine import distributed


def summed(n):
    x = torch.full((n,), float(distributed.rank() + 1))
    return {"rank": distributed.rank(), "world": distributed.world_size(), "x": distributed.all_reduce_sum(x)}


def fails_on_rank_1():
    if distributed.rank() == 1:
        raise ValueError("boom on rank 1")
    distributed.barrier()  # rank 0 waits for a peer that is gone: the helper must stop it


def test_returns_each_rank_result_in_rank_order(run_distributed):
    results = run_distributed(summed, 3)
    assert [(r["rank"], r["world"]) for r in results] == [(0, 2), (1, 2)]
    assert all(torch.equal(r["x"], torch.full((3,), 3.0)) for r in results)


def test_a_failing_rank_stops_all_and_reports_its_traceback(run_distributed):
    with pytest.raises(AssertionError, match="boom on rank 1"):
        run_distributed(fails_on_rank_1, timeout=30)
