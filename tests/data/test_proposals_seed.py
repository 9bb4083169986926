import numpy as np
import pytest

from keras_objectness.data import selective_search_proposals


def _scenes():
    rng = np.random.default_rng(0)
    scenes = (rng.random((4, 128, 128, 3)) * 255).astype("uint8")
    for index, scene in enumerate(scenes):
        top, left = 8 + 4 * index, 10 + 3 * index
        scene[top : top + 24, left : left + 20] = (200, 40 + 30 * index, 90)
        scene[40:60, 36:60] = (30, 180, 220)
    return scenes


def test_same_seed_gives_the_same_proposals_in_any_batch():
    scenes = _scenes()
    together = selective_search_proposals(scenes, 30, seed=5)
    again = selective_search_proposals(scenes, 30, seed=5)
    one_by_one = np.concatenate(
        [
            selective_search_proposals(scene[None], 30, seed=5)
            for scene in scenes
        ]
    )
    np.testing.assert_array_equal(together, again)
    np.testing.assert_array_equal(together, one_by_one)


def test_seed_changes_only_the_ranking():
    scenes = (np.random.default_rng(0).random((2, 128, 128, 3)) * 255).astype(
        "uint8"
    )
    # Without a cap every region is returned: the seed orders them only.
    first = selective_search_proposals(scenes, 2000, seed=0)
    second = selective_search_proposals(scenes, 2000, seed=1)
    for a, b in zip(first, second):
        assert {tuple(row) for row in a} == {tuple(row) for row in b}
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        selective_search_proposals(_scenes(), 10, seed=seed)
