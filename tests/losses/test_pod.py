"""POD (PLOP; HAD paper App. E): embeddings and distances against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from lhl.losses.pod import pod_distance, pod_embedding, pod_loss

# A hand-made 4×6 map (one image, one channel) and its square M = x²:
#   x = [[-1, 1,  2, 0, 0, 0],      M = [[1, 1, 4, 0, 0, 0],
#        [ 0, 0, -2, 0, 0, 0],           [0, 0, 4, 0, 0, 0],
#        [ 0, 0,  0, 2, 2, 2],           [0, 0, 0, 4, 4, 4],
#        [ 0, 0,  0, 2,-2, 2]]           [0, 0, 0, 4, 4, 4]]
X = torch.tensor([[-1.0, 1, 2, 0, 0, 0], [0, 0, -2, 0, 0, 0], [0, 0, 0, 2, 2, 2], [0, 0, 0, 2, -2, 2]]).view(1, 1, 4, 6)
# scale 1: width-pooled row means [6/6, 4/6, 12/6, 12/6]; height-pooled column means [1/4, 1/4, 8/4, 8/4, 8/4, 8/4]
SCALE_1 = [1, 2 / 3, 2, 2, 0.25, 0.25, 2, 2, 2, 2]
# scale 2: rows {0,1},{2,3} × columns {0-2},{3-5}, row-major; per region [row means, column means]
#   [[1,1,4],[0,0,4]] → [2, 4/3], [0.5, 0.5, 4]; two zero regions; the all-4 region → [4, 4], [4, 4, 4]
SCALE_2 = [2, 4 / 3, 0.5, 0.5, 4] + [0] * 10 + [4] * 5
# scale 4: 4 rows = 4 row regions; columns split at ⌊i·6/4⌋ = 0, 1, 3, 4, 6 → {0}, {1,2}, {3}, {4,5}
#   row 0 [1,1,4,0,0,0]: {0}: [1],[1]; {1,2}: [(1+4)/2],[1,4]; {3}: [0],[0]; {4,5}: [0],[0,0]
#   row 1 [0,0,4,0,0,0]: [0],[0]; [2],[0,4]; [0],[0]; [0],[0,0]
#   rows 2, 3 [0,0,0,4,4,4]: [0],[0]; [0],[0,0]; [4],[4]; [4],[4,4]
SCALE_4 = [1, 1, 2.5, 1, 4, 0, 0, 0, 0, 0] + [0, 0, 2, 0, 4, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 4, 4, 4, 4, 4] * 2


def test_local_pod_of_a_hand_made_map():
    assert torch.allclose(pod_embedding(X), torch.tensor([SCALE_1 + SCALE_2 + SCALE_4]))


def test_global_pod_is_scale_one():
    assert torch.allclose(pod_embedding(X, scales=(1,)), torch.tensor([SCALE_1]))


def test_local_pod_of_a_constant_map():
    # every pooled mean of a constant map is the constant squared (−3)² = 9; lengths on 4×6:
    # scale 1: 4 + 6 = 10; scale 2: 4 regions × (2 + 3) = 20; scale 4: Σ_rows Σ_cols (1 + w_c) = 4 · (4 + 6) = 40
    embedding = pod_embedding(torch.full((2, 3, 4, 6), -3.0))
    assert embedding.shape == (2, 3 * 70)
    assert torch.equal(embedding, torch.full((2, 210), 9.0))


def test_non_square_map_regions_are_per_axis():
    # 36×48 (a 288×384 image at stride 8): scale 1: 36 + 48 = 84; scale 2: 4 regions of 18×24 → 4·42 = 168;
    # scale 4: 16 regions of 9×12 → 16·21 = 336; total 588 values per channel, all 0.5² = 0.25
    embedding = pod_embedding(torch.full((1, 2, 36, 48), 0.5))
    assert embedding.shape == (1, 2 * 588) and torch.equal(embedding, torch.full((1, 1176), 0.25))


def test_maps_smaller_than_the_scale_use_single_rows():
    # 1×1 map: every scale has one region of one pixel → [x², x²] per scale, 6 values, no NaN
    assert torch.equal(pod_embedding(torch.full((1, 1, 1, 1), 2.0)), torch.full((1, 6), 4.0))


def test_distances_match_their_formulas():
    student, teacher = torch.tensor([[3.0, 4.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert torch.allclose(pod_distance(student, teacher, "frobenius"), torch.tensor([5.0, 1.0]))  # √(9+16), √1
    assert torch.allclose(pod_distance(student, teacher, "l1"), torch.tensor([3.5, 0.5]))  # (3+4)/2, 1/2
    assert torch.allclose(pod_distance(student, teacher, "l2"), torch.tensor([12.5, 0.5]))  # (9+16)/2, 1/2
    with pytest.raises(ValueError, match="distance"):
        pod_distance(student, teacher, "cosine")


@pytest.mark.parametrize("mode, distance, expected", [
    # student map ≡ 2, teacher ≡ 0 on 4×6 → every embedding difference is 4; local D = 70, global D = 10
    ("local", "frobenius", 4 * math.sqrt(70)), ("global", "frobenius", 4 * math.sqrt(10)),
    ("local", "l1", 4.0), ("global", "l1", 4.0), ("local", "l2", 16.0),
])
def test_loss_averages_over_batch_and_layers(mode, distance, expected):
    student = [torch.full((2, 1, 4, 6), 2.0), torch.zeros(2, 1, 4, 6)]  # layer 2: identical → distance 0
    teacher = [torch.zeros(2, 1, 4, 6), torch.zeros(2, 1, 4, 6)]
    assert pod_loss(student, teacher, mode, distance).item() == pytest.approx(expected / 2)


def test_loss_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="equally many"):
        pod_loss([torch.zeros(1, 1, 2, 2)], [])
