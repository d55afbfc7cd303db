"""Every bad input ends in one clean line: non-zero exit, ``lhl: error: …`` naming the key or file,
no traceback, no new run directory, and an existing run directory byte-for-byte unchanged.

Each case is (id, command line, text the message must contain, how to prepare the files). A
command line may use ``{out}`` (a fresh path that must stay absent), ``{run}`` (a copy of a
finished smoke run that must stay unchanged), ``{had}`` (a finished HAD run) and ``{tmp}``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from lhl.cli import main
from lhl.data.testing import write_mtan

SMOKE = ["run", "--preset", "smoke", "--quiet", "--out", "{out}"]


def _set(*pairs: str, method: str | None = None) -> list[str]:
    argv = list(SMOKE) + (["--method", method] if method else [])
    for pair in pairs:
        argv += ["--set", pair]
    return argv


def _write(name: str, text: str):
    def prepare(tmp: Path) -> None:
        (tmp / name).write_text(text)
    return prepare


def _damage(name: str, how: str):
    """Damage file ``name`` inside the run copy ``{run}``."""
    def prepare(tmp: Path) -> None:
        path = tmp / "run" / name
        data = path.read_bytes()
        if how == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif how == "flip":
            middle = len(data) // 2
            path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
        elif how == "list":
            path.write_text("[1, 2]\n")
        elif how == "yaml":
            path.write_text("benchmark: [unclosed\n")
    return prepare


def _foreign_checkpoint(with_manifest: bool):
    def prepare(tmp: Path) -> None:
        shutil.copy(tmp / "had" / "checkpoints" / "phase-3.pt", tmp / "run" / "checkpoints" / "phase-3.pt")
        if with_manifest:
            shutil.copy(tmp / "had" / "checkpoints" / "manifest.json", tmp / "run" / "checkpoints" / "manifest.json")
    return prepare


RESUME = ["run", "--preset", "smoke", "--quiet", "--resume", "--out", "{run}"]

CASES = [
    # ---- train.*
    ("lr-negative", _set("train.lr=-0.1"), "train.lr", None),
    ("lr-nan", _set("train.lr=nan"), "train.lr", None),
    ("lr-inf", _set("train.lr=.inf"), "train.lr", None),
    ("lr-string", _set("train.lr=fast"), "train.lr", None),
    ("weight-decay-negative", _set("train.weight_decay=-1"), "train.weight_decay", None),
    ("epochs-zero", _set("train.epochs=0"), "train.epochs", None),
    ("epochs-float", _set("train.epochs=1.5"), "train.epochs", None),
    ("batch-zero", _set("train.batch_size=0"), "train.batch_size", None),
    ("eval-batch-zero", _set("train.eval_batch_size=0"), "train.eval_batch_size", None),
    ("warmup-above-one", _set("train.warmup=1.5"), "train.warmup", None),
    ("keep-zero", _set("train.keep_checkpoints=0"), "train.keep_checkpoints", None),
    ("keep-negative", _set("train.keep_checkpoints=-1"), "train.keep_checkpoints", None),
    ("amp-unknown", _set("train.amp=fp8"), "train.amp", None),
    ("amp-fp16-cpu", _set("train.amp=fp16"), "train.amp", None),
    ("grad-norms-int", _set("train.log_grad_norms=3"), "train.log_grad_norms", None),
    ("train-unknown-key", _set("train.bogus=1"), "train.bogus", None),
    ("train-not-mapping", _set("train=5"), "train", None),
    # ---- model.*
    ("dropout-above-one", _set("model.head_dropout=1.5"), "model.head_dropout", None),
    ("head-channels-zero", _set("model.head_channels=0"), "model.head_channels", None),
    ("head-rates-negative", _set("model.head_rates=[-1,2]"), "model.head_rates", None),
    ("head-rates-not-list", _set("model.head_rates=3"), "model.head_rates", None),
    ("encoder-unknown", _set("model.encoder=vgg"), "unknown encoder 'vgg'", None),
    ("weights-missing", _set("model.weights=/nonexistent/w.pth"), "model.weights", None),
    ("model-unknown-key", _set("model.depth=3"), "model.depth", None),
    # ---- data.*
    ("train-size-zero", _set("data.train_size=0"), "data.train_size", None),
    ("test-size-zero", _set("data.test_size=0"), "data.test_size", None),
    ("train-size-below-phases", _set("data.train_size=2"), "data.train_size", None),
    ("workers-negative", _set("data.num_workers=-1"), "data.num_workers", None),
    ("resolution-small", _set("data.resolution=[4,4]"), "data.resolution", None),
    ("resolution-one-value", _set("data.resolution=[32]"), "data.resolution", None),
    ("chunking-unknown", _set("data.chunking=random"), "data.chunking", None),
    ("normalize-unknown", _set("data.normalize=zscore"), "data.normalize", None),
    ("data-unknown-key", _set("data.bogus=1"), "data.bogus", None),
    ("nyuv2-no-root", _set("benchmark=nyuv2"), "data.root", None),
    ("nyuv2-root-missing", _set("benchmark=nyuv2", "data.root=/nonexistent/nyu"), "/nonexistent/nyu", None),
    ("nyuv2-root-file", _set("benchmark=nyuv2", "data.root={tmp}/file.txt"), "file.txt", _write("file.txt", "x")),
    ("nyuv2-root-empty", _set("benchmark=nyuv2", "data.root={tmp}/empty"), "empty",
     lambda tmp: (tmp / "empty").mkdir()),
    # ---- top level
    ("seed-negative", _set("seed=-1"), "seed", None),
    ("seed-float", _set("seed=1.5"), "seed", None),
    ("tasks-empty", _set("tasks=[]"), "tasks", None),
    ("tasks-duplicate", _set("tasks=[segmentation,segmentation]"), "tasks", None),
    ("tasks-unknown", _set("tasks=[segmentation,flow]"), "flow", None),
    ("tasks-not-list", _set("tasks=5"), "tasks", None),
    ("benchmark-unknown", _set("benchmark=imagenet"), "unknown benchmark 'imagenet'", None),
    ("device-unknown", _set("device=tpu"), "device", None),
    ("device-cuda-absent", _set("device=cuda:7"), "device", None),
    ("plugin-missing", _set("plugins=[no_such_module_xyz]"), "no_such_module_xyz", None),
    ("top-unknown-key", _set("optimizer=sgd"), "optimizer", None),
    # ---- method.*
    ("method-unknown", _set(method="nope"), "unknown method 'nope'", None),
    ("vanilla-option", _set("method.alpha=3"), "method.alpha", None),
    ("joint-option", _set("method.weight=1", method="joint"), "method.weight", None),
    ("had-group-threshold", _set("method.group_threshold=1.5", method="had"), "method.group_threshold", None),
    ("had-edge-threshold", _set("method.edge_threshold=2", method="had"), "method.edge_threshold", None),
    ("had-alpha-negative", _set("method.alpha=-1", method="had"), "method.alpha", None),
    ("had-groups-one", _set("method.regression_groups=1", method="had"), "method.regression_groups", None),
    ("had-variant", _set("method.variant=authors", method="had"), "method.variant", None),
    ("dis-alpha-nan", _set("method.alpha=nan", method="dis"), "method.alpha", None),
    ("ewc-lambda-negative", _set("method.lam=-1", method="ewc"), "method.lam", None),
    ("ewc-mode", _set("method.mode=sometimes", method="ewc"), "method.mode", None),
    ("lwf-temperature-zero", _set("method.temperature=0", method="lwf"), "method.temperature", None),
    ("icarl-buffer-zero", _set("method.buffer_size=0", method="icarl"), "method.buffer_size", None),
    ("der-replay-zero", _set("method.replay_batch=0", method="der"), "method.replay_batch", None),
    ("pod-distance", _set("method.distance=l3", method="pod"), "method.distance", None),
    ("sgp-threshold", _set("method.threshold_base=1.5", method="sgp"), "method.threshold_base", None),
    ("sgp-samples-zero", _set("method.samples=0", method="sgp"), "method.samples", None),
    ("spg-apply-to", _set("method.apply_to=weights", method="spg"), "method.apply_to", None),
    ("method-name-not-string", _set("method.name=3"), "method.name", None),
    # ---- --set syntax
    ("set-no-equals", _set("train"), "expected key=value", None),
    ("set-no-key", _set("=3"), "not a dotted config key", None),
    ("set-no-value", _set("train.epochs="), "no value", None),
    ("set-bad-list", _set("tasks=[a,b"), "tasks", None),
    ("set-empty-part", _set("train..lr=1"), "not a dotted config key", None),
    ("set-into-scalar", _set("seed.x=1"), "seed", None),
    # ---- config files
    ("yaml-malformed", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "c.yaml", _write("c.yaml", "train: [1,\n")),
    ("yaml-duplicate-key", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "duplicate key 'train'",
     _write("c.yaml", "base: smoke\ntrain: {epochs: 1}\ntrain: {epochs: 2}\n")),
    ("yaml-nested-duplicate", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "duplicate key 'lr'",
     _write("c.yaml", "base: smoke\ntrain:\n  lr: 0.1\n  lr: 0.2\n")),
    ("yaml-list", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "c.yaml", _write("c.yaml", "- a\n- b\n")),
    ("yaml-scalar", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "c.yaml", _write("c.yaml", "42\n")),
    ("yaml-bad-value", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "train.epochs",
     _write("c.yaml", "base: smoke\ntrain: {epochs: -3}\n")),
    ("base-unknown", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "base", _write("c.yaml", "base: nope\n")),
    ("base-missing-file", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "missing.yaml",
     _write("c.yaml", "base: ./missing.yaml\n")),
    ("base-self", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "includes itself",
     _write("c.yaml", "base: ./c.yaml\n")),
    ("config-missing", ["run", "--config", "{tmp}/none.yaml", "--out", "{out}"], "none.yaml", None),
    ("config-directory", ["run", "--config", "{tmp}", "--out", "{out}"], "is a directory", None),
    ("config-binary", ["run", "--config", "{tmp}/c.yaml", "--out", "{out}"], "c.yaml",
     lambda tmp: (tmp / "c.yaml").write_bytes(b"\xff\xfe\x00bad")),
    ("preset-unknown", ["run", "--preset", "nope", "--out", "{out}"], "unknown preset 'nope'", None),
    # ---- --out
    ("out-is-file", ["run", "--preset", "smoke", "--quiet", "--out", "{tmp}/file.txt"], "file.txt",
     _write("file.txt", "x")),
    ("out-under-file", ["run", "--preset", "smoke", "--quiet", "--out", "{tmp}/file.txt/run"], "file.txt",
     _write("file.txt", "x")),
    ("out-unwritable", ["run", "--preset", "smoke", "--quiet", "--out", "/proc/lhl-test-run"], "/proc", None),
    ("resume-without-out", ["run", "--preset", "smoke", "--resume"], "--resume needs --out", None),
    ("resume-nothing", ["run", "--preset", "smoke", "--quiet", "--resume", "--out", "{tmp}/nothing"], "holds no run",
     lambda tmp: (tmp / "nothing").mkdir()),
    # ---- existing run directories (must stay byte-for-byte unchanged)
    ("run-exists", ["run", "--preset", "smoke", "--quiet", "--out", "{run}"], "already holds a run", None),
    ("resume-other-config", RESUME + ["--set", "train.lr=0.5"], "train.lr", None),
    ("resume-other-method", RESUME + ["--method", "had"], "method.name", None),
    ("checkpoint-truncated", RESUME, "phase-3.pt", _damage("checkpoints/phase-3.pt", "truncate")),
    ("checkpoint-flipped", RESUME, "phase-3.pt", _damage("checkpoints/phase-3.pt", "flip")),
    ("checkpoint-foreign", RESUME, "phase-3.pt", _foreign_checkpoint(with_manifest=False)),
    ("checkpoint-foreign-manifest", RESUME, "'had'", _foreign_checkpoint(with_manifest=True)),
    ("manifest-truncated", RESUME, "manifest.json", _damage("checkpoints/manifest.json", "truncate")),
    ("performance-truncated", RESUME, "performance.json", _damage("performance.json", "truncate")),
    ("performance-not-object", RESUME, "performance.json", _damage("performance.json", "list")),
    ("config-yaml-malformed", RESUME, "config.yaml", _damage("config.yaml", "yaml")),
    ("config-yaml-not-mapping", RESUME, "config.yaml", _damage("config.yaml", "list")),
    ("provenance-truncated", RESUME, "provenance.json", _damage("provenance.json", "truncate")),
    # ---- compare
    ("compare-missing-dir", ["compare", "{tmp}/none"], "none", None),
    ("compare-not-a-run", ["compare", "{tmp}/empty"], "empty", lambda tmp: (tmp / "empty").mkdir()),
    ("compare-no-vanilla", ["compare", "{had}"], "vanilla", None),
    ("compare-truncated", ["compare", "{run}"], "performance.json", _damage("performance.json", "truncate")),
    ("compare-bad-config", ["compare", "{run}", "{had}"], "config.yaml", _damage("config.yaml", "yaml")),
    # ---- data commands
    ("check-missing-root", ["data", "check", "{tmp}/none", "--benchmark", "nyuv2"], "none", None),
    ("check-synthetic", ["data", "check", "{tmp}", "--benchmark", "synthetic-nyu"], "synthetic-nyu", None),
    ("check-bad-limit", ["data", "check", "{tmp}", "--benchmark", "nyuv2", "--limit", "0"], "--limit", None),
    ("check-bad-set", ["data", "check", "{tmp}", "--benchmark", "nyuv2", "--set", "train.lr=1"], "train.lr", None),
    ("preview-zero-count", ["data", "preview", "--out", "{tmp}/p.png", "--count", "0"], "--count", None),
    ("preview-bad-resolution", ["data", "preview", "--out", "{tmp}/p.png", "--resolution", "2", "2"],
     "--resolution", None),
    ("preview-unwritable", ["data", "preview", "--out", "/proc/lhl-preview.png", "--count", "1"], "/proc", None),
    ("render-out-holds-a-run", ["data", "render", "--benchmark", "synthetic-nyu", "--out", "{run}"],
     "already exists and is not empty", None),
    ("render-out-is-file", ["data", "render", "--benchmark", "synthetic-nyu", "--out", "{tmp}/file.txt"],
     "file.txt", _write("file.txt", "x")),
    ("render-unwritable", ["data", "render", "--benchmark", "synthetic-nyu", "--out", "/proc/lhl-render",
                           "--resolution", "8", "8", "--train-size", "1", "--test-size", "1"], "/proc", None),
    ("render-taskonomy", ["data", "render", "--benchmark", "synthetic-taskonomy", "--out", "{out}"],
     "synthetic-taskonomy", None),
    ("render-bad-set", ["data", "render", "--benchmark", "synthetic-nyu", "--out", "{out}", "--set",
                        "data.augment=true"], "data.augment", None),
    ("render-bad-batch", ["data", "render", "--benchmark", "synthetic-nyu", "--out", "{out}", "--batch", "0"],
     "--batch", None),
]


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished vanilla and a finished HAD smoke run, made once."""
    root = tmp_path_factory.mktemp("finished")
    for name, method in (("run", "vanilla"), ("had", "had")):
        assert main(["run", "--preset", "smoke", "--quiet", "--method", method, "--out", str(root / name)]) == 0
    return root


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_there_are_enough_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_line(case, tmp_path, finished_runs, capsys):
    name, argv, expected, prepare = case
    shutil.copytree(finished_runs / "run", tmp_path / "run")
    shutil.copytree(finished_runs / "had", tmp_path / "had")
    if prepare is not None:
        prepare(tmp_path)
    before = {"run": _snapshot(tmp_path / "run"), "had": _snapshot(tmp_path / "had")}
    fields = {"out": str(tmp_path / "out"), "run": str(tmp_path / "run"), "had": str(tmp_path / "had"),
              "tmp": str(tmp_path)}
    capsys.readouterr()
    code = main([arg.format(**fields) for arg in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("lhl: note:")]
    assert code != 0, f"{name}: exit 0, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("lhl: error: "), f"{name}: {err!r}"
    assert "Traceback" not in err
    assert expected in lines[0], f"{name}: {expected!r} not in {lines[0]!r}"
    assert not (tmp_path / "out").exists(), f"{name}: a run directory was created"
    assert {"run": _snapshot(tmp_path / "run"), "had": _snapshot(tmp_path / "had")} == before, \
        f"{name}: an existing run directory changed"


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "run", "--preset", "smoke", "--set", "train.lr=-1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("lhl: error: train.lr")


def test_usage_errors_exit_2_and_runtime_errors_exit_1(tmp_path, finished_runs, capsys):
    assert main(_set_fmt(tmp_path, "train.lr=-1")) == 2
    shutil.copytree(finished_runs / "run", tmp_path / "run")
    _damage("checkpoints/phase-3.pt", "flip")(tmp_path)
    assert main(["run", "--preset", "smoke", "--quiet", "--resume", "--out", str(tmp_path / "run")]) == 1


def _set_fmt(tmp_path: Path, *pairs: str) -> list[str]:
    return [a.format(out=str(tmp_path / "out")) for a in _set(*pairs)]


def test_valid_nyuv2_fixture_root_is_accepted(tmp_path, capsys):
    """The data-root cases above fail for the right reason: a valid root runs."""
    write_mtan(tmp_path / "nyu", "nyuv2", n_train=6, n_test=2, size=(16, 16))
    code = main(["run", "--preset", "smoke", "--quiet", "--out", str(tmp_path / "out"), "--set", "benchmark=nyuv2",
                 "--set", f"data.root={tmp_path / 'nyu'}", "--set", "data.resolution=[16,16]"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "performance.json").read_text())["benchmark"] == "nyuv2"
