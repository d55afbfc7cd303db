"""SGP (HAD paper App. C.3): streamed Gram matrices, rank, importance and basis extension by hand,
the projection of gradients and of Adam's update, and an end-to-end run (the fully protected run is
in test_gradient_space.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lhl.config import ConfigError, resolve_method
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.sgp import SGP, encoder_grams
from lhl.methods.sgp_math import conv_input_gram, energy_rank, project_out, scaled_importance, update_bases


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_streamed_gram_equals_materialised_unfold(chunk):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=3, dilation=2, bias=False)
    x = torch.randn(5, 4, 13, 10)
    patches = F.unfold(x.double(), 3, dilation=2, padding=3, stride=2)  # [5, 36, L], every patch at once
    expected = torch.einsum("bdl,bel->de", patches, patches)
    gram = conv_input_gram(x, conv.kernel_size, conv.stride, conv.padding, conv.dilation, chunk=chunk)
    assert gram.dtype == torch.float64 and gram.shape == (36, 36)
    # float32 products: each entry is a float32 sum of n = chunk·L terms (L = 48 patches per image), in a
    # BLAS-dependent order, so |error| ≤ n·eps·Σ|p_i q_i| ≤ n·eps·max|K| (eps = 1.2e-7, Cauchy-Schwarz)
    n = chunk * patches.shape[-1]
    assert torch.allclose(gram, expected, rtol=0, atol=n * 1.2e-7 * float(expected.abs().max()))
    # the patch ordering matches weight.view(C_out, d): the conv output is weight·patch; float32 sums of
    # d = 36 products: |error| ≤ d·eps·Σ_k |w_k||x_k|
    out = conv(x).flatten(2)
    scale = float(torch.einsum("od,bdl->bol", conv.weight.detach().view(6, -1).double().abs(), patches.abs()).max())
    assert torch.allclose(out, torch.einsum("od,bdl->bol", conv.weight.view(6, -1).double(), patches).float(),
                          atol=36 * 1.2e-7 * scale)


def test_encoder_grams_use_each_convs_own_geometry_and_the_sample_size():
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2, bias=False), nn.ReLU(),
                                  nn.Conv2d(4, 5, 1, stride=2, bias=False))
    images = torch.rand(7, 3, 12, 12)
    loader = [{"image": images[:4]}, {"image": images[4:]}]
    grams = encoder_grams(model, loader, torch.device("cpu"), samples=5)  # 4 + the first of batch 2
    x = images[:5]
    first = F.unfold(x.double(), 3, dilation=2, padding=2, stride=2)
    with torch.no_grad():
        hidden = torch.relu(model.encoder[0](x)).double()
    second = F.unfold(hidden, 1, stride=2)
    for name, patches in (("0", first), ("2", second)):
        expected = torch.einsum("bdl,bel->de", patches, patches)
        assert torch.allclose(grams[name], expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_energy_threshold_rank_by_hand():
    sigma_sq = torch.tensor([6.0, 3.0, 1.0], dtype=torch.float64)  # cumulative energy 0.6, 0.9, 1.0
    assert [energy_rank(sigma_sq, eps) for eps in (0.5, 0.6, 0.9, 0.91, 0.97, 1.0)] == [1, 1, 2, 3, 3, 3]
    assert energy_rank(torch.zeros(3), 0.97) == 0


def test_importance_formula_by_hand():
    sigma = torch.tensor([4.0, 2.0, 1.0])
    # α = 1: 2σ/(σ + 4)
    assert torch.allclose(scaled_importance(sigma, 1.0), torch.tensor([1.0, 4 / 6, 2 / 5]))
    assert torch.allclose(scaled_importance(sigma, 0.0), torch.tensor([1.0, 0.5, 0.25]))
    # α = 0.1: 1.1σ/(0.1σ + 4)
    assert torch.allclose(scaled_importance(sigma, 0.1), torch.tensor([1.0, 2.2 / 4.2, 1.1 / 4.1]))
    assert torch.allclose(scaled_importance(sigma, 1e9), torch.ones(3), atol=1e-6)


def _same_columns(a, b):
    return torch.allclose(a.abs(), b.abs(), atol=1e-10)  # eigenvectors up to sign


def test_first_task_bases_from_eigenvalues_by_hand():
    gram = torch.diag(torch.tensor([4.0, 16.0, 0.0], dtype=torch.float64))  # σ² = 16, 4, 0: energy 0.8, 1.0
    bases, lam, info = update_bases(gram, threshold=0.97, alpha=1.0)
    assert _same_columns(bases, torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(lam, torch.tensor([1.0, 2 * 2 / (2 + 4)], dtype=torch.float64))  # σ = 4, 2
    assert info == {"rank": 2, "added": 2, "captured": 1.0}
    bases, lam, info = update_bases(gram, threshold=0.8, alpha=1.0)
    assert info["rank"] == 1 and info["captured"] == pytest.approx(0.8)


def test_later_task_extends_bases_and_updates_importance_by_hand():
    old = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)  # e1, importance 0.5
    gram = torch.diag(torch.tensor([9.0, 0.0, 16.0], dtype=torch.float64))
    # total 25; on e1: sqrt(9) = 3 (captured 9/25 = 0.36 < 0.97); residual energy 16 along e3 → add e3
    # λ = 2·[3, 4] / ([3, 4] + 4) = [6/7, 1]; old: min(6/7 + 0.5, 1) = 1
    bases, lam, info = update_bases(gram, 0.97, 1.0, old, torch.tensor([0.5], dtype=torch.float64))
    assert _same_columns(bases, torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(lam, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert info == {"rank": 2, "added": 1, "captured": 1.0}
    # α = 0: λ = [3, 4]/4 = [0.75, 1]; old: min(0.75 + 0.1, 1) = 0.85
    bases, lam, _ = update_bases(gram, 0.97, 0.0, old, torch.tensor([0.1], dtype=torch.float64))
    assert torch.allclose(lam, torch.tensor([0.85, 1.0], dtype=torch.float64))
    # the old bases already hold the energy: nothing added, importance still updated
    inside = torch.diag(torch.tensor([4.0, 0.0, 0.0], dtype=torch.float64))
    bases, lam, info = update_bases(inside, 0.97, 0.0, old, torch.tensor([0.1], dtype=torch.float64))
    assert bases.shape == (3, 1) and info["added"] == 0
    assert torch.allclose(lam, torch.tensor([1.0], dtype=torch.float64))


@pytest.mark.parametrize("threshold, data_rank", [(0.999, 6), (1.0, 2)])
def test_bases_stay_orthonormal_and_never_exceed_d(threshold, data_rank):
    torch.manual_seed(0)
    bases, lam = None, None
    for task in range(4):
        a = torch.randn(6, data_rank, dtype=torch.float64) @ torch.randn(data_rank, 40, dtype=torch.float64)
        bases, lam, info = update_bases(a @ a.T, threshold, 0.1, bases, lam)
        assert bases.shape[1] <= min(6, data_rank * (task + 1)) and lam.shape == (bases.shape[1],)
        assert (lam <= 1).all() and (lam >= 0).all()
        assert torch.allclose(bases.T @ bases, torch.eye(bases.shape[1], dtype=torch.float64), atol=1e-10)


def _orthonormal(d, r, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, r, generator=g))[0]


def test_projection_is_orthogonal_to_importance_one_bases_and_scales_the_rest():
    torch.manual_seed(0)
    update = torch.randn(5, 3, 3, 3)
    bases = _orthonormal(27, 10)
    projected = project_out(update, bases, torch.ones(10))
    assert projected.shape == update.shape
    assert (projected.view(5, 27) @ bases).abs().max() < 1e-5 * update.abs().max()
    half = project_out(update, bases, torch.full((10,), 0.5))
    assert torch.allclose(half.view(5, 27) @ bases, 0.5 * update.view(5, 27) @ bases, atol=1e-5)
    assert torch.equal(project_out(update, bases[:, :0], torch.ones(0)), update)


def _step_context(apply_to: str):
    """A phase-2 context on a one-conv encoder (+ BN) and one old head, with SGP bases set by hand."""
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    model.heads = nn.ModuleDict({"old": nn.Conv2d(4, 1, 1), "new": nn.Conv2d(4, 1, 1)})
    ctx = SimpleNamespace(model=model, phase=2, old_tasks=["old"], log=lambda *a, **k: None)
    method = SGP(SGP.Options(apply_to=apply_to))
    method.setup(ctx)
    method.bases = {"0": _orthonormal(27, 12)}
    method.importance = {"0": torch.ones(12)}
    method.before_phase(ctx, None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=0.1, weight_decay=1e-2)
    return ctx, method, optimizer


def _train_steps(ctx, method, optimizer, steps=3):
    conv = ctx.model.encoder[0]
    start = conv.weight.detach().clone()
    for _ in range(steps):
        x = torch.randn(2, 3, 6, 6)
        loss = ctx.model.heads["new"](ctx.model.encoder(x)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        method.after_backward(ctx)
        method.before_step(ctx)
        optimizer.step()
        method.after_step(ctx)
    return (conv.weight.detach() - start).view(4, 27)


def test_adam_update_is_projected_weight_decay_included():
    ctx, method, optimizer = _step_context("update")
    bn, old = ctx.model.encoder[1], ctx.model.heads["old"]
    assert not bn.weight.requires_grad and not old.weight.requires_grad  # not in the optimiser: no decay drift
    assert all(p is not bn.weight for group in optimizer.param_groups for p in group["params"])
    moved = _train_steps(ctx, method, optimizer)
    bases = method.bases["0"]
    assert moved.abs().max() > 1e-3  # the conv still learns, in the orthogonal complement
    assert (moved @ bases).abs().max() < 1e-5 * moved.abs().max()


def test_gradient_projection_is_orthogonal_but_adam_breaks_it():
    ctx, method, optimizer = _step_context("gradient")
    conv = ctx.model.encoder[0]
    x = torch.randn(2, 3, 6, 6)
    ctx.model.heads["new"](ctx.model.encoder(x)).pow(2).mean().backward()
    method.after_backward(ctx)
    grad = conv.weight.grad.view(4, 27)
    assert (grad @ method.bases["0"]).abs().max() < 1e-5 * grad.abs().max()
    optimizer.zero_grad()
    moved = _train_steps(ctx, method, optimizer)
    # Adam's per-element normalisation (and the weight decay) puts the step back into the bases' span
    assert (moved @ method.bases["0"]).abs().max() > 0.1 * moved.abs().max()


def test_fully_protected_layer_does_not_move_at_all():
    ctx, method, optimizer = _step_context("update")
    method.bases = {"0": _orthonormal(27, 27)}
    method.importance = {"0": torch.ones(27)}
    assert torch.equal(_train_steps(ctx, method, optimizer), torch.zeros(4, 27))


def test_options_are_validated(smoke_config):
    for bad in ("method.scale=-1", "method.threshold_base=1.5", "method.samples=0", "method.apply_to=weights"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
            resolve_method(smoke_config(bad, method="sgp"))


def test_end_to_end_state_is_checkpointed_and_logged(smoke_config, tmp_path, record_phase_2):
    config = smoke_config("tasks=[segmentation,depth]", "method.samples=6", method="sgp")
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    states = record_phase_2(trainer)
    trainer.run()
    # the encoder still learns in phase 2 (ε = 0.97 leaves a complement), BN statistics do not change
    start, end = states["start"]["encoder"], states["end"]["encoder"]
    assert any(not torch.equal(v, end[k]) for k, v in start.items() if k.endswith("conv1.weight"))
    assert all(torch.equal(v, end[k]) for k, v in start.items() if "running" in k or "bn" in k)
    events = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["event"] == "sgp_bases"]
    assert [e["phase"] for e in events] == [1]  # no update after the last phase
    assert events[0]["memory_bytes"] > 0 and events[0]["layers"]["stem.0"]["dim"] == 3 * 7 * 7
    saved = torch.load(tmp_path / "run" / "checkpoints" / "phase-1.pt", weights_only=True)["method"]
    assert set(saved) == {"bases", "importance", "energy"} and "layer1.0.conv1" in saved["bases"]
    other = SGP(SGP.Options())
    other.setup(None)
    other.load_state_dict(saved, SimpleNamespace(device=torch.device("cpu")))
    assert other.memory_bytes() == events[0]["memory_bytes"]
