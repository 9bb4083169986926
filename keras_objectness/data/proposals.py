"""Selective search proposals (the LSDA paper's region source), via OpenCV."""

import ctypes
import functools

import numpy as np

from keras_objectness import _checks


@functools.cache
def _c_rand_seeder():
    """libc's `srand`, or `None` where the C library cannot be loaded."""
    try:
        return ctypes.CDLL(None).srand
    except (OSError, AttributeError):
        return None


def selective_search_proposals(
    images, max_proposals=100, mode="fast", min_size=0.02, seed=0
):
    """Class-generic region proposals from OpenCV's selective search.

    Needs `opencv-contrib-python-headless` (a dependency of this package).
    Runs in numpy/OpenCV outside the graph (about 0.1 s per 128x128 image in
    `"fast"` mode on one core): compute proposals once, then feed them to
    `keras_objectness.models.region_detector(network, proposer=None)`.

    Args:
        images: uint8 array `(batch, height, width, 3)`, RGB.
        max_proposals: int. Proposals kept per image, in selective search's
            own order. Defaults to `100`.
        mode: `"fast"` or `"quality"`. Defaults to `"fast"`.
        min_size: float in `[0, 1)`. Proposals with `sqrt(width * height)`
            below this fraction of the image are dropped. Defaults to
            `0.02`.
        seed: int >= 0. OpenCV ranks the merged regions with C's `rand()`,
            so the order of the proposals (and therefore which
            `max_proposals` are kept) changes from call to call; the C
            generator is seeded with `seed` before each image, so an image
            gets the same proposals whatever batch it comes in. Not
            thread-safe: `rand()` has one state per process. Defaults
            to `0`.

    Returns:
        float32 `(batch, max_proposals, 4)` relative yxyx, padded with `-1`.

    Example:

    ```python
    proposals = selective_search_proposals(images, max_proposals=200)
    detections = detector.predict([images, proposals])
    ```
    """
    _checks.check_positive_int("max_proposals", max_proposals)
    if mode not in ("fast", "quality"):
        raise ValueError(
            f"`mode` must be 'fast' or 'quality'. Received: mode={mode!r}"
        )
    if not isinstance(min_size, (int, float)) or not 0 <= min_size < 1:
        raise ValueError(
            f"`min_size` must be in [0, 1). Received: min_size={min_size!r}"
        )
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "`images` must have shape `(batch, height, width, 3)`. "
            f"Received: images.shape={images.shape}"
        )
    if (
        isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or seed < 0
    ):
        raise ValueError(
            f"`seed` must be an integer >= 0. Received: seed={seed!r}"
        )
    import cv2

    seed_c_rand = _c_rand_seeder()

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    height, width = images.shape[1:3]
    proposals = np.full((len(images), max_proposals, 4), -1.0, "float32")
    for index, image in enumerate(images.astype("uint8")):
        # OpenCV works in BGR.
        search.setBaseImage(np.ascontiguousarray(image[..., ::-1]))
        if seed_c_rand is not None:
            # glibc treats srand(0) as srand(1): shift so seeds differ.
            seed_c_rand((int(seed) + 1) % 2**32)
        if mode == "fast":
            search.switchToSelectiveSearchFast()
        else:
            search.switchToSelectiveSearchQuality()
        rects = np.asarray(search.process(), "float32").reshape(-1, 4)
        x, y, w, h = rects.T
        keep = np.sqrt((w / width) * (h / height)) >= min_size
        boxes = np.stack(
            [y / height, x / width, (y + h) / height, (x + w) / width], -1
        )[keep][:max_proposals]
        proposals[index, : len(boxes)] = boxes
    return proposals
