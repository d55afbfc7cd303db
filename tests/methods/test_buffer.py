"""The replay buffer (docs/deviations.md, "Replay buffer"): reservoir statistics, herding,
rebalancing, joint flips, state."""

from __future__ import annotations

import torch

from lhl.methods.buffer import ReplayBuffer, herding
from lhl.tasks import NormalTask


def ids(buffer):
    return [int(image.flatten()[0]) for image in buffer.images]


def test_reservoir_keeps_each_item_with_probability_m_over_n():
    n, m, trials = 200, 20, 500
    counts = torch.zeros(n)
    items = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)  # item i is the image of value i
    for trial in range(trials):
        buffer = ReplayBuffer(m, seed=trial)
        for start in range(0, n, 8):  # offered in batches, as the training loop does
            buffer.reservoir(items[start:start + 8], "t", items[start:start + 8])
        assert len(buffer) == m and buffer.seen == n
        counts[ids(buffer)] += 1
    frequency = counts / trials
    # each count ~ Binomial(500, 0.1): sd √(500·0.1·0.9)/500 = 0.0134 → 0.06 is ≈ 4.5 sd for every item;
    # the mean of 50 items has sd 0.0019 → early and late items both within 0.01 of M/N = 0.1
    assert (frequency - 0.1).abs().max() < 0.06
    assert abs(frequency[:50].mean() - 0.1) < 0.01 and abs(frequency[-50:].mean() - 0.1) < 0.01


def test_reservoir_fills_first_then_keeps_the_size():
    buffer = ReplayBuffer(3, seed=0)
    buffer.reservoir(torch.arange(2.0).view(2, 1, 1, 1), "a", torch.zeros(2, 1, 1, 1))
    assert ids(buffer) == [0, 1] and buffer.tasks == ["a", "a"]
    buffer.reservoir(torch.arange(2.0, 10).view(8, 1, 1, 1), "b", torch.zeros(8, 1, 1, 1))
    assert len(buffer) == 3 and buffer.seen == 10
    assert buffer.images[0].dtype == torch.float16 and buffer.images[0].device.type == "cpu"


def test_herding_picks_the_known_points():
    # points 0, 10, 4, 6, 5.5 with mean 5.1:
    # k=1: closest to 5.1 → 5.5 (index 4); k=2: (5.5 + x)/2 ≈ 5.1 → x ≈ 4.7 → 4 (index 2);
    # k=3: (9.5 + x)/3 ≈ 5.1 → x ≈ 5.8 → 6 (index 3);
    # k=4: (15.5 + x)/4 ≈ 5.1 → x ≈ 4.9 → 0 (index 0, as |4.9| < |5.1|)
    features = torch.tensor([[0.0], [10.0], [4.0], [6.0], [5.5]])
    assert herding(features, 4) == [4, 2, 3, 0]
    assert herding(features, 9) == [4, 2, 3, 0, 1]  # never more than N, no repeats


def test_select_rebalances_evenly_keeping_each_tasks_best():
    buffer = ReplayBuffer(5, seed=0)
    features = torch.tensor([[0.0], [10.0], [4.0], [6.0], [5.5], [1.0]])
    chosen = buffer.select(["a"], features)
    assert len(chosen) == 5
    buffer.add(torch.tensor(chosen, dtype=torch.float32).view(5, 1, 1, 1), "a", torch.zeros(5, 1, 1, 1))
    kept_a = ids(buffer)[:3]
    assert buffer.quotas(["a", "b"]) == {"a": 3, "b": 2} and buffer.quotas(["a", "b", "c"]) == {"a": 2, "b": 2, "c": 1}
    chosen_b = buffer.select(["a", "b"], features)
    assert ids(buffer) == kept_a and buffer.tasks == ["a"] * 3 and len(chosen_b) == 2
    random = ReplayBuffer(5, seed=0).select(["a"], features, "random")
    assert len(set(random)) == 5 and set(random) <= set(range(6))


def test_sample_flips_image_and_map_together_and_negates_normal_x():
    buffer = ReplayBuffer(4, seed=0, known_tasks={"normal": NormalTask("normal")})
    image = torch.tensor([[1.0, 2.0]]).expand(3, 1, 2)  # [3,1,2]: left 1, right 2
    target = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]], [[0.5, 0.25]]])  # [3,1,2]: x, y, z channels
    buffer.add(image[None], "normal", target[None])
    flipped = unflipped = 0
    for _ in range(40):
        replay = buffer.sample(8)
        positions, maps = replay.groups["normal"]
        assert positions.tolist() == [0] and replay.images.dtype == torch.float32
        if torch.equal(replay.images[0], image):
            unflipped += 1
            assert torch.equal(maps[0], target)
        else:
            flipped += 1
            assert torch.equal(replay.images[0], image.flip(-1))
            assert torch.equal(maps[0], torch.tensor([[[-3.0, -1.0]], [[7.0, 5.0]], [[0.25, 0.5]]]))
    assert flipped > 5 and unflipped > 5
    assert all(torch.equal(buffer.sample(1, augment=False).images[0], image) for _ in range(10))


def test_sample_groups_by_task_and_is_empty_safe():
    buffer = ReplayBuffer(10, seed=0)
    assert buffer.sample(4) is None
    buffer.add(torch.zeros(3, 3, 2, 2), "a", torch.zeros(3, 5, 2, 2))
    buffer.add(torch.ones(2, 3, 2, 2), "b", torch.ones(2, 1, 2, 2))
    replay = buffer.sample(4)
    assert replay.images.shape == (4, 3, 2, 2)
    assert sum(len(p) for p, _ in replay.groups.values()) == 4
    for task, (positions, maps) in replay.groups.items():
        assert maps.shape[1] == {"a": 5, "b": 1}[task]
        assert all(replay.images[p].mean().item() == {"a": 0.0, "b": 1.0}[task] for p in positions.tolist())


def test_state_dict_round_trip_continues_identically(tmp_path):
    buffer = ReplayBuffer(4, seed=3, known_tasks={"n": NormalTask("n")})
    buffer.reservoir(torch.rand(9, 3, 2, 2), "n", torch.rand(9, 3, 2, 2))
    path = tmp_path / "state.pt"
    torch.save(buffer.state_dict(), path)
    other = ReplayBuffer(4, seed=99, known_tasks={"n": NormalTask("n")})
    other.load_state_dict(torch.load(path, weights_only=True))
    a, b = buffer.sample(3), other.sample(3)
    assert torch.equal(a.images, b.images) and other.seen == 9 and other.tasks == buffer.tasks
    more = torch.rand(5, 3, 2, 2)
    buffer.reservoir(more, "m", more)
    other.reservoir(more, "m", more)
    assert all(torch.equal(x, y) for x, y in zip(buffer.images, other.images))
