import numpy as np
import pytest

from keras_objectness.box_space import _iou_yxyx
from keras_objectness.data import selective_search_proposals


def _scene():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, (2, 64, 80, 3)).astype("uint8")
    images[0, 10:40, 20:60] = (220, 30, 30)
    images[1, 30:60, 5:30] = (30, 200, 220)
    return images, np.array(
        [[10 / 64, 20 / 80, 40 / 64, 60 / 80], [30 / 64, 5 / 80, 1.0, 30 / 80]]
    )


def test_proposals_find_the_objects():
    images, objects = _scene()
    proposals = selective_search_proposals(images, max_proposals=50)
    assert proposals.shape == (2, 50, 4) and proposals.dtype == np.float32
    for boxes, target in zip(proposals, objects):
        valid = boxes[np.any(boxes != -1, axis=-1)]
        assert len(valid) > 1
        assert np.all((valid >= 0) & (valid <= 1))
        assert _iou_yxyx(valid, target[None]).max() >= 0.7


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"max_proposals": 0}, "max_proposals"),
        ({"mode": "slow"}, "mode"),
        ({"min_size": 1.0}, "min_size"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        selective_search_proposals(_scene()[0], **kwargs)


def test_images_of_wrong_shape():
    with pytest.raises(ValueError, match="`images`"):
        selective_search_proposals(np.zeros((64, 64, 3), "uint8"))
