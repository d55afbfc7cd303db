"""Fixtures of the method tests: a hand-built phase context, a stub teacher, a fixed step."""

from __future__ import annotations

import pytest
import torch

from lhl.engine.build import build_run
from lhl.engine.hooks import RunContext, StepOutput


def phase_context(config, phase: int):
    """(ctx, method) at the start of ``phase`` of ``config``'s task order (assembled by
    :func:`lhl.engine.build.build_run`, as a run is), with heads for the first ``phase`` tasks."""
    run = build_run(config)
    model, _ = run.build_model(run.order[:phase])
    ctx = RunContext(run.config, model, run.tasks, run.order, run.device, lambda *a, **k: None,
                     phase=phase, phase_tasks=[run.order[phase - 1]])
    method = run.make_method()
    method.before_phase(ctx, None)
    return ctx, method


class StubTeacher:
    """Returns fixed raw outputs and counts its calls (one call = one teacher encoder pass)."""

    def __init__(self, outputs: dict[str, torch.Tensor]) -> None:
        self.fixed, self.calls = outputs, 0

    def outputs(self, images, tasks=None, return_features=False):
        self.calls += 1
        return {t: self.fixed[t] for t in tasks}


def fixed_step(ctx, size: int = 16, batch: int = 2, seed: int = 1):
    """A fixed batch, fixed student outputs (with gradient) and fixed teacher outputs."""
    g = torch.Generator().manual_seed(seed)

    def maps():
        return {n: torch.randn(batch, ctx.tasks[n].out_channels, size, size, generator=g) * 2
                for n in ctx.seen_tasks}

    student = {n: v.requires_grad_() for n, v in maps().items()}
    images = {"image": torch.rand(batch, 3, size, size, generator=g)}
    return images, StepOutput(student, []), maps()


def record_phase_2(trainer):
    """Encoder state (parameters and buffers) and heads at the start and end of phase 2's training."""
    states, before, after = {}, trainer.method.before_phase, trainer.method.after_phase

    def copy(ctx):
        return {"encoder": {k: v.clone() for k, v in ctx.model.encoder.state_dict().items()},
                "heads": {k: v.clone() for k, v in ctx.model.heads.state_dict().items()}}

    def before_phase(ctx, loader):
        before(ctx, loader)
        if ctx.phase == 2:
            states["start"] = copy(ctx)

    def after_phase(ctx, loader):
        if ctx.phase == 2:
            states["end"] = copy(ctx)
        after(ctx, loader)

    trainer.method.before_phase, trainer.method.after_phase = before_phase, after_phase
    return states


def assert_frozen_encoder(states):
    """Phase 2 of a segmentation → depth run left the encoder (parameters and buffers) and the old
    head bit-exact, while the new head learnt."""
    start, end = states["start"], states["end"]
    changed = [k for k in start["encoder"] if not torch.equal(start["encoder"][k], end["encoder"][k])]
    assert changed == []  # parameters, BN running statistics and num_batches_tracked: bit-exact
    old = [k for k in start["heads"] if k.startswith("segmentation.")]
    assert all(torch.equal(start["heads"][k], end["heads"][k]) for k in old)  # old head: no loss, no decay
    new = [k for k in start["heads"] if k.startswith("depth.") and k.endswith("weight")]
    assert any(not torch.equal(start["heads"][k], end["heads"][k]) for k in new)


record_phase_2.assert_frozen_encoder = assert_frozen_encoder


@pytest.fixture(name="phase_context")
def phase_context_fixture():
    return phase_context


@pytest.fixture(name="stub_teacher")
def stub_teacher_fixture():
    return StubTeacher


@pytest.fixture(name="fixed_step")
def fixed_step_fixture():
    return fixed_step


@pytest.fixture(name="record_phase_2")
def record_phase_2_fixture():
    """``record_phase_2(trainer)`` → states filled during the run; ``.assert_frozen_encoder(states)``."""
    return record_phase_2
