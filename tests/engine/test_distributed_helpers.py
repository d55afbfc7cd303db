"""lhl.engine.distributed without a process group: the sampler's order and the identity helpers."""

import torch
from torch.utils.data import DataLoader

from lhl.engine.distributed import ShardedSampler, all_gather_interleaved, all_reduce_sum, shard_bounds, world_size


def test_one_process_draws_what_a_shuffling_loader_draws():
    data = list(range(37))
    plain = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    sharded = DataLoader(data, batch_size=4, sampler=ShardedSampler(37, generator, 0, 1), generator=generator)
    for _ in range(3):  # epochs: the generator advances identically
        assert [b.tolist() for b in plain] == [b.tolist() for b in sharded]


def test_processes_together_draw_the_global_batch():
    data = list(range(37))
    plain = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5))
    generators = [torch.Generator().manual_seed(5) for _ in range(2)]
    shards = [DataLoader(data, batch_size=2, sampler=ShardedSampler(37, g, r, 2), generator=g)
              for r, g in enumerate(generators)]
    for _ in range(2):
        one = [b.tolist() for b in plain]
        rank0, rank1 = ([b.tolist() for b in shard] for shard in shards)
        two = [[*a, *b] for a, b in zip(rank0, rank1)]
        assert len(two) == len(one) == 10
        assert [sorted(b) for b in one[:-1]] == [sorted(b) for b in two[:-1]]
        # interleaving rank 0's and rank 1's items gives one process's order
        interleaved = [[x for pair in zip(a, b) for x in pair] for a, b in zip(rank0, rank1)]
        assert one[:-1] == interleaved[:-1]
        assert set(one[-1]) <= set(two[-1])  # 37 is odd: the last step is padded with the head


def test_shard_bounds_cover_without_overlap():
    for count in (0, 1, 7, 200):
        for parts in (1, 2, 3, 5):
            bounds = [shard_bounds(count, parts, i) for i in range(parts)]
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_helpers_are_the_identity_without_a_group():
    x = torch.arange(6.0).view(3, 2)
    assert world_size() == 1
    assert torch.equal(all_reduce_sum(x.clone()), x) and torch.equal(all_gather_interleaved(x), x)
