"""Every dataset item carries its position in the dataset as ``"index"``: what per-phase caches
(the frozen teacher's outputs) are keyed by."""

import pytest
import torch
from torch.utils.data import DataLoader

from lhl.config.schema import DataConfig
from lhl.registry import BENCHMARKS


@pytest.mark.parametrize("name", ["synthetic-nyu", "nyuv2", "taskonomy"])
def test_items_carry_their_position(name, request):
    root = None if name.startswith("synthetic") else str(request.getfixturevalue(f"{name}_root"))
    bench = BENCHMARKS.get(name)(DataConfig(root=root, resolution=[16, 16]), 0)
    task = bench.task_names()[0]
    dataset = bench.dataset("train", [3, 0, 2], [task])
    assert [int(dataset[i]["index"]) for i in range(3)] == [0, 1, 2]
    loader = DataLoader(dataset, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(1))
    seen = torch.cat([batch["index"] for batch in loader])
    assert seen.dtype == torch.int64 and sorted(seen.tolist()) == [0, 1, 2]
    for batch in DataLoader(dataset, batch_size=3):  # the index names the item: same image as dataset[i]
        for position, index in enumerate(batch["index"].tolist()):
            assert torch.equal(batch["image"][position], dataset[index]["image"])
