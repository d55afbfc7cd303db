import pytest

from lhl.data.splits import phase_chunks


@pytest.mark.parametrize("mode", ["shuffle", "contiguous"])
def test_chunks_disjoint_equal(mode):
    chunks = phase_chunks(103, 3, seed=5, mode=mode)
    assert [len(c) for c in chunks] == [34, 34, 34]
    flat = [i for c in chunks for i in c]
    assert len(set(flat)) == len(flat) == 102
    assert all(0 <= i < 103 for i in flat)


def test_contiguous_and_seeded_shuffle():
    assert phase_chunks(6, 3, 0, "contiguous") == [[0, 1], [2, 3], [4, 5]]
    assert phase_chunks(60, 3, 1) == phase_chunks(60, 3, 1)
    assert phase_chunks(60, 3, 1) != phase_chunks(60, 3, 2)


def test_bad_mode_and_too_few_images():
    with pytest.raises(ValueError, match="chunking"):
        phase_chunks(6, 3, 0, "random")
    with pytest.raises(ValueError, match="2 training images"):
        phase_chunks(2, 3, 0)
