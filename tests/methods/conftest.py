"""Fixtures of the method tests: a hand-built phase context, a stub teacher, a fixed step."""

from __future__ import annotations

import pytest
import torch

from lhl.config import resolve_method
from lhl.engine.context import RunContext, StepOutput
from lhl.models import MultiTaskNet
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins


def phase_context(config, phase: int):
    """(ctx, method) at the start of ``phase`` of ``config``'s task order, on a tiny model."""
    load_builtins()
    method_cls, options = resolve_method(config)
    benchmark = BENCHMARKS.get(config.benchmark)(config.data, config.seed)
    order = list(config.tasks or benchmark.default_tasks)
    tasks = {name: benchmark.make_task(name) for name in order}
    torch.manual_seed(0)
    model = MultiTaskNet(ENCODERS.get("tiny")(), config.model.head_rates, config.model.head_channels)
    for name in order[:phase]:
        model.add_task(name, tasks[name].out_channels)
    ctx = RunContext(config, model, tasks, order, torch.device("cpu"), lambda *a, **k: None,
                     phase=phase, phase_tasks=[order[phase - 1]])
    method = method_cls(options)
    method.before_phase(ctx)
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


@pytest.fixture(autouse=True, scope="module")
def one_intra_op_thread():
    """One torch thread in these tests: on 2 shared CPU cores, intra-op threads oversubscribe and make
    the tiny encoder's convolutions ~15x slower (measured: 18 ms vs 1.3 ms per conv)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(name="phase_context")
def phase_context_fixture():
    return phase_context


@pytest.fixture(name="stub_teacher")
def stub_teacher_fixture():
    return StubTeacher


@pytest.fixture(name="fixed_step")
def fixed_step_fixture():
    return fixed_step
