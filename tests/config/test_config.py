import pytest

from lhl.config import ConfigError, config_differences, load_config, preset_names


def test_presets_exist():
    assert {"smoke", "synthetic-nyu-demo"} <= set(preset_names())


def test_default_is_demo_preset():
    config = load_config()
    assert config.benchmark == "synthetic-nyu" and config.model.encoder == "resnet18"
    assert config.data.resolution == [64, 64]


def test_overrides_are_typed():
    config = load_config(preset="smoke", overrides=["train.lr=1e-3", "data.resolution=[16, 24]", "train.epochs=2"])
    assert config.train.lr == 1e-3 and config.data.resolution == [16, 24] and config.train.epochs == 2


@pytest.mark.parametrize("override, message", [
    ("train.nope=1", r"unknown config key 'train.nope'; allowed keys: .*batch_size.*epochs"),
    ("nope=1", "unknown config key 'nope'"),
    ("train.epochs=two", r"train.epochs: invalid value 'two'; expected int"),
    ("data.chunking=random", r"data.chunking: invalid value 'random'; expected one of 'shuffle', 'contiguous'"),
    ("train.amp=fp8", r"train.amp: invalid value 'fp8'; expected one of 'off', 'bf16', 'fp16'"),
    ("train.epochs=0", r"train.epochs: invalid value 0"),
    ("train.log_grad_norms=3", r"train.log_grad_norms: invalid value 3; expected bool"),
    ("train", "expected key=value"),
])
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(preset="smoke", overrides=[override])


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid presets: .*smoke"):
        load_config(preset="nope")


def test_config_file_with_base(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: smoke\ntrain: {epochs: 3}\n")
    config = load_config(config_file=path)
    assert config.train.epochs == 3 and config.model.encoder == "tiny"
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_config(config_file=tmp_path / "bad.yaml")


def test_config_differences():
    a = {"seed": 0, "train": {"lr": 1.0, "keep_checkpoints": None}, "device": "cpu"}
    b = {"seed": 1, "train": {"lr": 1.0, "keep_checkpoints": 2}, "device": "cuda"}
    assert config_differences(a, b) == ["seed: run has 0, now 1"]


def test_method_flag_replaces_the_method_section_and_says_what_it_drops(tmp_path, capsys):
    path = tmp_path / "had.yaml"
    path.write_text("base: smoke\nmethod: {name: had, alpha: 5, group_threshold: 0.6}\n")
    config = load_config(config_file=path, method="dis", overrides=["method.alpha=2"])
    assert config.method == {"name": "dis", "alpha": 2}
    note = capsys.readouterr().err
    assert "lhl: note: --method dis replaces method 'had'" in note and "alpha, group_threshold" in note
    assert load_config(config_file=path, method="had").method == {"name": "had", "alpha": 5, "group_threshold": 0.6}


def test_base_may_name_a_file_relative_to_the_config(tmp_path):
    (tmp_path / "common.yaml").write_text("base: smoke\ntrain: {epochs: 4}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "run.yaml").write_text("base: ../common.yaml\nseed: 3\n")
    config = load_config(config_file=tmp_path / "sub" / "run.yaml")
    assert (config.train.epochs, config.seed, config.model.encoder) == (4, 3, "tiny")
