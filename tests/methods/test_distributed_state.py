"""Method state under DDP (issue 14): two gloo processes, each with its share of every global batch
(ShardedSampler, batch B/2), end with the state one process computes with batch B — EWC's Fisher
and SGP's Grams within 1e-5 relative, SPG's importances, DER's reservoir (50 items in total) and
iCaRL's herding — and with the same state on both processes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lhl.config import load_config
from lhl.engine import distributed
from lhl.engine.build import build_run
from lhl.engine.distributed import ShardedSampler
from lhl.engine.hooks import RunContext, StepOutput
from lhl.methods.encoder_params import summed_gradients
from lhl.methods.sgp import encoder_grams

IMAGES, BATCH, SHUFFLE_SEED = 16, 4, 3  # the phase's images and the global batch


def phase(method: str, number: int, world: int, rank: int, *overrides: str):
    """(ctx, method, loader) of phase ``number`` of a smoke run, the loader this process's share."""
    run = build_run(load_config(preset="smoke", method=method, overrides=list(overrides)))
    model, _ = run.build_model(run.order[:number])
    task = run.order[number - 1]
    ctx = RunContext(run.config, model, run.tasks, run.order, run.device, lambda *a, **k: None,
                     phase=number, phase_tasks=[task])
    instance = run.make_method()
    instance.setup(ctx)
    generator = torch.Generator().manual_seed(SHUFFLE_SEED)
    loader = DataLoader(run.benchmark.dataset("train", list(range(IMAGES)), [task]), batch_size=BATCH // world,
                        sampler=ShardedSampler(IMAGES, generator, rank, world), generator=generator)
    instance.before_phase(ctx, loader)
    return ctx, instance, loader


def method_states(world: int, rank: int) -> dict:
    states = {}
    for fisher in ("minibatch", "per_sample"):
        ctx, ewc, loader = phase("ewc", 1, world, rank, f"method.fisher={fisher}")
        ewc.after_phase(ctx, loader)
        states[f"ewc_{fisher}"] = ewc.fishers[0]
    ctx, sgp, loader = phase("sgp", 1, world, rank)
    for samples in (7, 125):  # 7: the ranks take 4 and 3 images; 125: all 16
        states[f"gram_{samples}"] = encoder_grams(ctx.model, loader, ctx.device, samples)
    sgp.after_phase(ctx, loader)
    states["sgp"] = {"bases": sgp.bases, "importance": sgp.importance}
    ctx, spg, loader = phase("spg", 2, world, rank)  # the task loss and the old head's sum
    spg.after_phase(ctx, loader)
    states["spg"] = spg.importance
    ctx.model.eval()  # the summed gradients themselves (importances do not see their scale)
    sums = summed_gradients(ctx.model, spg._objectives(ctx, ctx.tasks[ctx.phase_tasks[0]], ctx.old_tasks, loader))
    states["spg_sums"] = {f"{key}/{name}": g for key, grads in sums.items() for name, g in grads.items()}
    ctx, der, loader = phase("der", 1, world, rank, "method.buffer_size=50")
    ctx.model.eval()  # BatchNorm statistics would differ between batches of 2 and 4
    terms = []
    for _ in range(4):  # 64 offers for 50 places
        for batch in loader:
            with torch.no_grad():
                outputs, features = ctx.model(batch["image"], ctx.phase_tasks, return_features=True)
                terms.append(float(der.loss_terms(ctx, batch, StepOutput(outputs, features)).get("der", 0.0)))
    states["der"], states["der_terms"] = der.buffer.state_dict(), torch.tensor(terms)
    ctx, icarl, loader = phase("icarl", 1, world, rank, "method.buffer_size=6")
    icarl.after_phase(ctx, loader)
    states["icarl"] = icarl.buffer.state_dict()
    return states


def worker() -> dict:
    return method_states(distributed.world_size(), distributed.rank())


@pytest.fixture(scope="module")
def states(run_distributed):
    """(one process with batch B, [rank 0, rank 1] with batch B/2 each)."""
    torch.manual_seed(0)
    return method_states(1, 0), run_distributed(worker, world=2)


def relative(a: dict, b: dict) -> float:
    """max |a − b| / max |b| over all tensors of two ``{name: tensor}``."""
    assert a.keys() == b.keys()
    a, b = (torch.cat([t.double().flatten() for t in d.values()]) for d in (a, b))
    return float((a - b).abs().max() / b.abs().max())


def assert_identical(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("fisher", ["minibatch", "per_sample"])
def test_ewc_fisher_equals_the_single_process_one(states, fisher):
    single, ranks = states
    assert_identical(ranks[0][f"ewc_{fisher}"], ranks[1][f"ewc_{fisher}"])
    assert relative(ranks[0][f"ewc_{fisher}"], single[f"ewc_{fisher}"]) < 1e-5


@pytest.mark.parametrize("samples", [7, 125])
def test_sgp_grams_equal_the_single_process_ones(states, samples):
    single, ranks = states
    assert_identical(ranks[0][f"gram_{samples}"], ranks[1][f"gram_{samples}"])
    for name, gram in single[f"gram_{samples}"].items():
        assert ranks[0][f"gram_{samples}"][name].dtype == torch.float64
        assert relative({name: ranks[0][f"gram_{samples}"][name]}, {name: gram}) < 1e-5
    assert_identical(ranks[0]["sgp"], ranks[1]["sgp"])  # bases and λ: the same on every process
    assert {k: v.shape for k, v in ranks[0]["sgp"]["bases"].items()} == \
        {k: v.shape for k, v in single["sgp"]["bases"].items()}


def test_spg_importances_identical_on_every_rank_and_as_one_process(states):
    single, ranks = states
    assert_identical(ranks[0]["spg"], ranks[1]["spg"])
    assert_identical(ranks[0]["spg_sums"], ranks[1]["spg_sums"])
    for name, value in single["spg_sums"].items():  # each objective's summed gradient, per tensor
        assert relative({name: ranks[0]["spg_sums"][name]}, {name: value}) < 1e-5
    for name, value in single["spg"].items():
        torch.testing.assert_close(ranks[0]["spg"][name], value, rtol=0, atol=1e-4)


def test_der_buffer_holds_50_in_total_the_same_on_every_rank(states):
    single, ranks = states
    assert len(ranks[0]["der"]["images"]) == len(ranks[1]["der"]["images"]) == 50
    assert ranks[0]["der"]["seen"] == single["der"]["seen"] == 4 * IMAGES  # the global batch offered
    assert_identical(ranks[0]["der"], ranks[1]["der"])
    assert_identical(ranks[0]["der_terms"], ranks[1]["der_terms"])  # the same replay batch everywhere
    mine, one = ranks[0]["der"], single["der"]
    assert_identical(mine["images"], one["images"])  # the same items, in the same slots
    assert mine["tasks"] == one["tasks"] and torch.equal(mine["generator"], one["generator"])
    for stored, reference in zip(mine["targets"], one["targets"]):  # fp16 of outputs of batches of 2 / 4
        torch.testing.assert_close(stored.float(), reference.float(), rtol=0, atol=2e-3)
    torch.testing.assert_close(ranks[0]["der_terms"], single["der_terms"], rtol=1e-3, atol=1e-6)


def test_icarl_herding_is_global(states):
    single, ranks = states
    assert len(ranks[0]["icarl"]["images"]) == 6
    assert_identical(ranks[0]["icarl"], ranks[1]["icarl"])
    assert_identical(ranks[0]["icarl"]["images"], single["icarl"]["images"])  # the same images, in herding order
