import pytest

from lhl.cli import main


def test_list(capsys):
    assert main(["list", "methods"]) == 0
    assert {"vanilla", "joint"} <= set(capsys.readouterr().out.split())
    assert main(["list", "encoders"]) == 0
    assert {"resnet18", "resnet34", "resnet50", "tiny"} <= set(capsys.readouterr().out.split())
    assert main(["list", "benchmarks"]) == 0
    assert {"synthetic-nyu", "synthetic-city", "synthetic-taskonomy"} <= set(capsys.readouterr().out.split())
    assert main(["list", "presets"]) == 0
    assert {"smoke", "synthetic-nyu-demo"} <= set(capsys.readouterr().out.split())
    assert main(["list", "tasks"]) == 0
    assert {"segmentation", "depth", "normal", "regression"} <= set(capsys.readouterr().out.split())


def test_run_prints_matrix(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path / "r"), "--set", "data.train_size=12"]) == 0
    out = capsys.readouterr().out
    assert "after phase 1 (segmentation):" in out and "performance matrix" in out
    assert "3 (normal)" in out


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "smoke", "--method", "nope"], "unknown method 'nope'; valid methods:"),
    (["run", "--preset", "smoke", "--set", "train.bogus=1"], "unknown config key 'train.bogus'"),
    (["run", "--preset", "smoke", "--resume"], "--resume needs --out"),
    (["run", "--config", "/nonexistent.yaml"], "no such file '/nonexistent.yaml'"),
])
def test_errors_are_one_line(tmp_path, capsys, args, message):
    assert main(args + ["--out", str(tmp_path / "x")] if "--resume" not in args else args) == 2
    assert message in capsys.readouterr().err


def test_help_mentions_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for option in ("--config", "--preset", "--method", "--out", "--set", "--resume", "--quiet"):
        assert option in text


def test_data_preview(tmp_path):
    assert main(["data", "preview", "--out", str(tmp_path / "p.png"), "--count", "2", "--resolution", "32", "32"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0
