"""HAD method (eqs. 4-10): loss composition, switches, options, teacher, end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lhl.config import ConfigError, resolve_method
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.losses.had import db_had_loss, group_masks, sg_had_loss
from lhl.losses.had_reference import reference_normal_terms, reference_regression_terms, reference_segmentation_terms
from lhl.methods.had import HAD
from lhl.registry import METHODS


# ---------------------------------------------------------------- independent per-pixel maps
def seg_map(s, t):
    return F.cross_entropy(s, t.argmax(1), reduction="none")


def depth_map(s, t):
    return (s - t).abs().mean(1)


def normal_map(s, t):
    return 1 - (F.normalize(s, dim=1) * F.normalize(t, dim=1)).sum(1)


def paper_pair(name, s, t, num_groups=2, mean="geometric"):
    if name == "segmentation":
        lmap, groups = seg_map(s, t), group_masks(t, "classification")
    elif name == "normal":
        lmap, groups = normal_map(s, t), group_masks(F.normalize(t, dim=1), "regression", 0.5, num_groups)
    else:
        lmap, groups = depth_map(s, t), group_masks(t, "regression", 0.5, num_groups)
    return db_had_loss(lmap, groups, mean=mean), sg_had_loss(lmap, 0.9)


def reference_pair(name, s, t):
    if name == "segmentation":
        return reference_segmentation_terms(F.log_softmax(s, 1), t.argmax(1), 0.9)
    if name == "normal":
        return reference_normal_terms(F.normalize(s, dim=1), F.normalize(t, dim=1), 0.5, 0.9)
    return reference_regression_terms(s, t, 0.5, 0.9)


@pytest.fixture
def had_step(smoke_config, phase_context, stub_teacher, fixed_step):
    """Phase 3 of a 3-task run (two old tasks), stub teacher, fixed student outputs."""

    def make(*overrides, phase=3):
        ctx, method = phase_context(smoke_config(*overrides, method="had"), phase)
        batch, out, teacher = fixed_step(ctx)
        method.teacher = stub_teacher(teacher)
        return ctx, method, method.loss_terms(ctx, batch, out), out.outputs, teacher

    return make


# ---------------------------------------------------------------- composition (eq. 4, item 1)
@pytest.mark.parametrize("order", ["[segmentation,depth,normal]", "[normal,depth,segmentation]"])
@pytest.mark.parametrize("alpha", [3.0, 20.0])
def test_paper_total_is_alpha_over_2_t_minus_1(had_step, order, alpha):
    ctx, method, terms, s, t = had_step(f"tasks={order}", f"method.alpha={alpha}")
    old = ctx.old_tasks
    assert len(old) == 2 and method.teacher.calls == 1  # one teacher pass for both old tasks
    assert set(terms) == {f"{k}/{n}" for n in old for k in ("db", "sg")}
    expected = 0.0
    for name in old:
        db, sg = paper_pair(name, s[name], t[name])
        assert torch.allclose(terms[f"db/{name}"], alpha / 4 * db)
        assert torch.allclose(terms[f"sg/{name}"], alpha / 4 * sg)
        expected = expected + db + sg
    assert torch.allclose(sum(terms.values()), alpha / (2 * (3 - 1)) * expected)
    sum(terms.values()).backward()  # differentiable in the student outputs
    assert all(s[n].grad is not None and s[n].grad.abs().sum() > 0 for n in old)


@pytest.mark.parametrize("order", ["[segmentation,depth,normal]", "[normal,depth,segmentation]"])
def test_reference_total_has_no_one_over_t_minus_1(had_step, order):
    ctx, method, terms, s, t = had_step(f"tasks={order}", "method.variant=reference")
    expected = sum(0.5 * (db + sg) for db, sg in (reference_pair(n, s[n], t[n]) for n in ctx.old_tasks))
    assert set(terms) == {f"{k}/{n}" for n in ctx.old_tasks for k in ("db", "sg")}
    assert torch.allclose(sum(terms.values()), 3.0 * expected)
    paper = had_step(f"tasks={order}")[2]
    assert not torch.allclose(sum(terms.values()), sum(paper.values()))


def test_phase_one_adds_nothing(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="had"), 1)
    assert method.teacher is None
    assert method.loss_terms(ctx, {"image": torch.rand(2, 3, 16, 16)}, StepOutput({}, [])) == {}
    assert method.state_dict() == {}


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_student_equal_to_teacher_on_normals_is_finite(smoke_config, phase_context, stub_teacher, variant):
    """Regression: where the student's normal equals the teacher's, 1 − cos rounds to about −1e-7
    (cos of two unit vectors can exceed 1 in float32), and log(ℓ + ε) of the geometric mean was NaN.
    NormalTask.distill_map now clamps ℓ at 0, as 1 − cos ≥ 0."""
    ctx, method = phase_context(smoke_config("tasks=[normal,depth]", f"method.variant={variant}", method="had"), 2)
    teacher = {"normal": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))}
    method.teacher = stub_teacher(teacher)
    student = {"normal": teacher["normal"].clone().requires_grad_(), "depth": torch.zeros(2, 1, 16, 16)}
    normal = ctx.tasks["normal"]
    assert (normal.distill_map(student["normal"], normal.pseudo_label(teacher["normal"])) >= 0).all()
    terms = method.loss_terms(ctx, {"image": torch.rand(2, 3, 16, 16)}, StepOutput(student, []))
    assert set(terms) == {"db/normal", "sg/normal"}
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert torch.isfinite(student["normal"].grad).all()


# ---------------------------------------------------------------- switches (Table 4)
def test_use_db_and_use_sg_switches(had_step):
    full = had_step()[2]
    for variant in ("paper", "reference"):
        no_db = had_step("method.use_db=false", f"method.variant={variant}")[2]
        no_sg = had_step("method.use_sg=false", f"method.variant={variant}")[2]
        assert set(no_db) == {"sg/segmentation", "sg/depth"}
        assert set(no_sg) == {"db/segmentation", "db/depth"}
    no_db, no_sg = had_step("method.use_db=false")[2], had_step("method.use_sg=false")[2]
    assert all(torch.equal(no_db[k], full[k]) for k in no_db)
    assert all(torch.equal(no_sg[k], full[k]) for k in no_sg)


def test_arithmetic_group_mean_changes_db_only(had_step):
    _, _, geo, s, t = had_step()
    arith = had_step("method.group_mean=arithmetic")[2]
    for name in ("segmentation", "depth"):
        assert not torch.allclose(arith[f"db/{name}"], geo[f"db/{name}"])
        assert torch.allclose(arith[f"db/{name}"], 3 / 4 * paper_pair(name, s[name], t[name], mean="arithmetic")[0])
        assert torch.equal(arith[f"sg/{name}"], geo[f"sg/{name}"])


@pytest.mark.parametrize("name", ["depth", "normal"])
def test_regression_groups_used_for_regression_tasks(had_step, name):
    order = "[segmentation,depth,normal]" if name == "depth" else "[normal,segmentation,depth]"
    _, _, two, s, t = had_step(f"tasks={order}")
    five = had_step(f"tasks={order}", "method.regression_groups=5")[2]
    assert torch.allclose(five[f"db/{name}"], 3 / 4 * paper_pair(name, s[name], t[name], num_groups=5)[0])
    assert not torch.allclose(five[f"db/{name}"], two[f"db/{name}"])
    assert torch.equal(five["db/segmentation"], two["db/segmentation"])  # classes, not bins


@pytest.mark.parametrize("overrides, key", [
    (["method.regression_groups=1"], "method.regression_groups"),
    (["method.regression_groups=2.5"], "method.regression_groups"),
    (["method.variant=authors"], "method.variant"),
    (["method.group_mean=median"], "method.group_mean"),
    (["method.sobel_padding=reflect"], "method.sobel_padding"),
    (["method.alpha=-1"], "method.alpha"),
    (["method.use_db=maybe"], "method.use_db"),
    (["method.edge_thresh=0.5"], "method.edge_thresh"),
    (["method.variant=reference", "method.group_mean=arithmetic"], "method.group_mean"),
])
def test_invalid_options_name_the_key(smoke_config, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(*overrides, method="had"))


def test_defaults_are_the_nyuv2_r18_paper_values():
    options = HAD.Options()
    assert (options.alpha, options.group_threshold, options.edge_threshold) == (3.0, 0.5, 0.9)
    assert options.variant == "paper" and options.sobel_padding == "replicate"


# ---------------------------------------------------------------- the real teacher
def test_teacher_is_frozen_copy_and_student_equal_teacher_gives_tiny_depth_terms(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="had"), 3)
    teacher = method.teacher.model
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), ctx.model.state_dict().values()))
    ctx.model.eval()
    images = torch.rand(2, 3, 32, 32)
    terms = method.loss_terms(ctx, {"image": images}, StepOutput(ctx.model(images, method.forward_tasks(ctx)), []))
    # ℓ_depth = 0 everywhere: DB = geometric mean exp(log ε) = ε per group, SG = 0 (constant map)
    assert terms["sg/depth"].item() == 0.0
    assert 0 < terms["db/depth"].item() <= 3 / 4 * 1.01e-8
    assert terms["db/segmentation"].item() > 0  # CE against the argmax is not zero


# ---------------------------------------------------------------- end to end
class ProbeHAD(HAD):
    """HAD that counts encoder passes per training step and watches the teacher in phase 3."""

    def before_phase(self, ctx, loader):
        super().before_phase(ctx, loader)
        if ctx.phase != 3:
            return
        self.counts, self.steps, self.changed = {"teacher": 0, "student": 0}, [], []
        self.start = {k: v.clone() for k, v in self.teacher.model.state_dict().items()}

        def hook(key):
            return lambda *args: self.counts.__setitem__(key, self.counts[key] + 1)

        self.handles = [self.teacher.model.encoder.register_forward_hook(hook("teacher")),
                        ctx.model.encoder.register_forward_hook(hook("student"))]

    def after_step(self, ctx):
        if ctx.phase == 3:
            self.steps.append(dict(self.counts))
            self.counts.update(teacher=0, student=0)
            now = self.teacher.model.state_dict()
            self.changed.append([k for k, v in self.start.items() if not torch.equal(v, now[k])])

    def after_phase(self, ctx, loader):
        if ctx.phase == 3:
            for handle in self.handles:
                handle.remove()
        super().after_phase(ctx, loader)


METHODS.register("had-probe", overwrite=True)(ProbeHAD)


@pytest.fixture(scope="module")
def vanilla_final(tmp_path_factory):
    from lhl.config import load_config

    out = tmp_path_factory.mktemp("vanilla") / "run"
    return Trainer(load_config(preset="smoke", method="vanilla"), out, quiet=True).run()["phases"][-1]["metrics"]


def check_logged_terms(run_dir):
    events = read_events(run_dir / "events.jsonl")
    expected = {1: {"new"}, 2: {"new", "db/segmentation", "sg/segmentation"},
                3: {"new", "db/segmentation", "sg/segmentation", "db/depth", "sg/depth"}}
    for event in events:
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == expected[event["phase"]]
            assert all(math.isfinite(v) for v in event["losses"].values())
        if event["event"] == "grad_norms":
            assert set(event["encoder"]) == expected[event["phase"]]
    assert {e["phase"] for e in events if e["event"] == "grad_norms"} == {1, 2, 3}


def test_end_to_end_paper_one_teacher_pass_per_step_frozen_teacher(smoke_config, tmp_path, vanilla_final):
    # teacher passes (the teacher cache would run the teacher once per phase, before the steps)
    trainer = Trainer(smoke_config("train.teacher_cache=off", method="had-probe"), tmp_path / "had", quiet=True)
    performance = trainer.run()
    probe = trainer.method
    assert len(probe.steps) == 2  # 8 images per phase, batch 4, 1 epoch
    assert probe.steps == [{"teacher": 1, "student": 1}] * len(probe.steps)
    assert probe.changed == [[]] * len(probe.steps)  # parameters and buffers never change
    phase2 = load_checkpoint(tmp_path / "had" / "checkpoints" / "phase-2.pt")["model"]
    assert all(torch.equal(probe.start[k], v) for k, v in phase2.items())  # = end of phase 2
    check_logged_terms(tmp_path / "had")
    assert performance["phases"][-1]["metrics"] != vanilla_final


def test_end_to_end_reference_variant(run_smoke, vanilla_final):
    performance, run_dir = run_smoke("method.variant=reference", method="had")
    check_logged_terms(run_dir)
    assert performance["phases"][-1]["metrics"] != vanilla_final
