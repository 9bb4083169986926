"""Generated images with one object each, for quick localisation checks."""

import numpy as np


def single_object_images(
    num_images,
    image_size=32,
    scale_range=(0.3, 0.6),
    aspect_ratio_range=(0.6, 1.6),
    seed=0,
):
    """Images with one filled rectangle or ellipse on a noisy background.

    Scales (`sqrt(width * height)` relative to the image) and aspect ratios
    (`width / height`) are drawn log-uniformly from the given ranges, so a
    `BoxSpace` covering the same ranges can represent every object.

    Args:
        num_images: int. Number of images.
        image_size: int. Side of the square images in pixels. Defaults to
            `32`.
        scale_range: `(low, high)` object scales. Defaults to `(0.3, 0.6)`.
        aspect_ratio_range: `(low, high)` aspect ratios. Defaults to
            `(0.6, 1.6)`.
        seed: int. The same seed gives the same images. Defaults to `0`.

    Returns:
        `(images, boxes)`: uint8 `(num_images, size, size, 3)` and float32
        `(num_images, 4)` tight relative yxyx boxes.

    Example:

    ```python
    images, boxes = single_object_images(100, image_size=32, seed=1)
    ```
    """
    if not isinstance(num_images, int) or num_images < 1:
        raise ValueError(
            "`num_images` must be a positive integer. "
            f"Received: num_images={num_images!r}"
        )
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(
            "`image_size` must be an integer >= 8. "
            f"Received: image_size={image_size!r}"
        )
    rng = np.random.default_rng(seed)
    size = image_size
    images = rng.integers(0, 120, size=(num_images, size, size, 3))
    images = images.astype("uint8")
    boxes = np.zeros((num_images, 4), "float32")
    grid = (np.arange(size) + 0.5) / size
    for i in range(num_images):
        scale = np.exp(rng.uniform(*np.log(scale_range)))
        aspect = np.exp(rng.uniform(*np.log(aspect_ratio_range)))
        height = min(scale / np.sqrt(aspect), 1.0)
        width = min(scale * np.sqrt(aspect), 1.0)
        top = rng.uniform(0, 1 - height)
        left = rng.uniform(0, 1 - width)
        inside_y = (grid >= top) & (grid <= top + height)
        inside_x = (grid >= left) & (grid <= left + width)
        mask = inside_y[:, None] & inside_x[None, :]
        cy, cx = top + height / 2, left + width / 2
        if rng.random() < 0.5:
            mask &= (
                ((grid[:, None] - cy) / (height / 2)) ** 2
                + ((grid[None, :] - cx) / (width / 2)) ** 2
            ) <= 1
        if not mask.any():
            # A tiny object between pixel centres: keep its central pixel.
            mask[
                min(int(cy * size), size - 1), min(int(cx * size), size - 1)
            ] = True
        images[i][mask] = rng.integers(140, 256, size=3)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[i] = (
            np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], "float32")
            / size
        )
    return images, boxes
