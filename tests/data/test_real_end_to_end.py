"""Two-phase tiny runs on each fixture dataset, through the real loaders and the trainer."""

import json

import pytest

KEY = {"segmentation": "miou", "depth": "abs_err", "normal": "mean"}


@pytest.mark.parametrize("name, tasks, extra", [
    ("nyuv2", "[segmentation,depth]", ["data.augment=true"]),
    ("nyuv2", "[normal,segmentation]", ["data.resolution=[8,12]"]),
    ("cityscapes", "[depth,segmentation]", ["data.augment=true"]),
    ("taskonomy", "[segmentation,principal_curvature]", ["data.resolution=[16,16]",
                                                          "data.taskonomy_classes=grouped8"]),
])
def test_two_phase_run(name, tasks, extra, request, run_smoke):
    root = request.getfixturevalue(f"{name}_root")
    performance, run_dir = run_smoke(f"benchmark={name}", f"data.root={root}", "data.resolution=[16,24]",
                                     f"tasks={tasks}", "data.train_size=null", "data.test_size=null", *extra)
    order = tasks.strip("[]").split(",")
    assert performance["benchmark"] == name and performance["tasks"] == order
    assert [sorted(p["metrics"]) for p in performance["phases"]] == [[order[0]], sorted(order)]
    final = performance["phases"][-1]["metrics"]
    for task in order:
        expected = "loss" if name == "taskonomy" else KEY[task]
        assert expected in final[task]
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["dataset_fingerprint"].startswith(f"{name} train=")
    assert str(root) not in provenance["dataset_fingerprint"]
