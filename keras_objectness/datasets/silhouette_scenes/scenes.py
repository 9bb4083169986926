"""A pure-numpy compositor of silhouettes onto background crops.

`compose_scene` pastes silhouettes (bright-on-black, used as alpha masks)
onto a background in a random colour that contrasts with the background
under the object, at random scales, stretches and positions with limited
overlap. It returns the image together with each kept object's alpha map,
its *visible* mask and the tight box of that mask, so that every box can be
checked against pixels.

An object's pixels are all the pixels it paints (alpha > 0): the scaled
silhouette's intensity is mapped to alpha by a ramp from 0 at half
brightness to 1 at three quarters, so the shape keeps smooth edges but
paints nothing outside its half-brightness outline. A pixel stays visible
unless a later object paints it with alpha >= 0.5 (`OCCLUSION_THRESHOLD`).
So every painted pixel that is not mostly covered lies in its object's box.
"""

import collections
import functools
import math

import numpy as np

# A later object at least this opaque hides the pixels under it.
OCCLUSION_THRESHOLD = 0.5
# Silhouette intensity (as a fraction of 255) mapped to alpha 0 and 1.
_EDGE_RAMP = (0.5, 0.75)
# Silhouettes are cropped to the pixels at least this bright (of 255)
# before scaling, so that the scale refers to the painted shape.
_INK_THRESHOLD = 128
_MAX_PLACEMENT_ATTEMPTS = 20
_NUM_COLOR_CANDIDATES = 16

Scene = collections.namedtuple(
    "Scene", ["image", "boxes", "masks", "alphas", "colors", "indices"]
)
Scene.__doc__ = """One composed image and its objects, in paint order.

Fields:
    image: uint8 `(height, width, 3)`.
    boxes: float32 `(n, 4)` relative `yxyx` boxes (TFDS convention): the
        tight box of each visible mask, `(top / height, left / width,
        (bottom + 1) / height, (right + 1) / width)` in pixel rows/columns.
    masks: bool `(n, height, width)`, the visible pixels of each object.
    alphas: float32 `(n, height, width)` in `[0, 1]`, each object's alpha.
    colors: float32 `(n, 3)`, each object's tint in `[0, 255]`.
    indices: int64 `(n,)`, the index of each kept object in the
        `silhouettes` argument.
"""


def resize_bilinear(image, height, width):
    """Resizes an image with bilinear interpolation (half-pixel centres).

    Args:
        image: array `(in_height, in_width)` or `(in_height, in_width, c)`.
        height: int. Output height, at least 1.
        width: int. Output width, at least 1.

    Returns:
        A float32 array `(height, width)` or `(height, width, c)`.

    Example:

    ```python
    resize_bilinear(np.eye(4), 8, 8).shape  # (8, 8)
    ```
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        # uint8 rows are gathered first and promoted exactly by the
        # products below; other dtypes are converted up front.
        image = image.astype(np.float32, copy=False)
    in_height, in_width = image.shape[:2]
    y0, y1, wy, wy_low = _interpolation_grid(in_height, height)
    x0, x1, wx, wx_low = _interpolation_grid(in_width, width)
    extra = (None,) * (image.ndim - 2)
    wy_low = wy_low[(slice(None), None) + extra]
    wy = wy[(slice(None), None) + extra]
    wx_low = wx_low[(None, slice(None)) + extra]
    wx = wx[(None, slice(None)) + extra]
    rows = image[y0] * wy_low + image[y1] * wy
    return rows[:, x0] * wx_low + rows[:, x1] * wx


@functools.lru_cache(maxsize=1024)
def _interpolation_grid(size_in, size_out):
    """Source rows (or columns) and float32 weights, cached read-only."""
    centres = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    centres = np.clip(centres, 0.0, size_in - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    weight = (centres - low).astype(np.float32)
    grid = (low, high, weight, 1.0 - weight)
    for array in grid:
        array.setflags(write=False)
    return grid


def crop_background(photo, image_size, rng, crop_fraction=(0.5, 1.0)):
    """Takes a random square crop of a photo, resized to `image_size`.

    Args:
        photo: uint8 array `(height, width, 3)`.
        image_size: int. Side of the square output, at least 8.
        rng: `numpy.random.Generator`.
        crop_fraction: tuple of two floats in `(0, 1]`. Range of the crop
            side as a fraction of the photo's shorter side. Defaults to
            `(0.5, 1.0)`.

    Returns:
        A uint8 array `(image_size, image_size, 3)`, flipped left-right
        with probability one half.

    Example:

    ```python
    rng = np.random.default_rng(0)
    crop = crop_background(np.zeros((100, 150, 3), np.uint8), 64, rng)
    ```
    """
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise ValueError(
            "`photo` must have shape (height, width, 3). "
            f"Received: photo.shape={photo.shape}"
        )
    image_size = _validate_int(image_size, "image_size", minimum=8)
    low, high = _validate_range(crop_fraction, "crop_fraction", upper=1.0)
    height, width = photo.shape[:2]
    short = min(height, width)
    side = int(round(rng.uniform(low, high) * short))
    side = min(max(side, 1), short)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    resized = resize_bilinear(crop, image_size, image_size)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def compose_scene(
    background,
    silhouettes,
    rng,
    scale_range=(0.12, 0.7),
    stretch_range=(2.0 / 3.0, 1.5),
    max_iou=0.3,
    min_visible_fraction=0.3,
    min_visible_pixels=8,
    min_contrast=0.45,
):
    """Pastes silhouettes onto a background and returns exact boxes.

    Objects are painted in the given order (later ones on top). Each is
    cropped to its drawn pixels, given a random size (the longer side of its
    box is `scale * min(height, width)`, `scale` uniform in `scale_range`)
    and a random stretch of its aspect ratio (log-uniform in
    `stretch_range`), and placed at a random position where its box has
    IoU at most `max_iou` with every earlier box (up to 20 tries; an object
    that does not fit is skipped). Its tint is the first of 16 random
    colours whose RGB distance to the mean background under the box is at
    least `min_contrast * 255` (or the farthest one).

    An object's pixels are those it paints (alpha > 0, see the module
    docstring); its visible mask drops those that a later object paints
    with alpha >= 0.5. An object is dropped (and not painted) when fewer
    than
    `min_visible_fraction` of its pixels or fewer than `min_visible_pixels`
    pixels stay visible; drops repeat until every kept object passes, so
    the image shows exactly the returned objects.

    Args:
        background: uint8 array `(height, width, 3)`, both sides >= 8.
        silhouettes: sequence of 2-D uint8 arrays (bright object on black).
        rng: `numpy.random.Generator`. The only source of randomness.
        scale_range: tuple of two floats in `(0, 1]`. Defaults to
            `(0.12, 0.7)`.
        stretch_range: tuple of two positive floats, a factor on the
            natural width / height ratio. Defaults to `(2/3, 1.5)`.
        max_iou: float in `[0, 1]`. Defaults to `0.3`.
        min_visible_fraction: float in `[0, 1]`. Defaults to `0.3`.
        min_visible_pixels: int >= 1. Defaults to `8`.
        min_contrast: float in `[0, 1]`. Defaults to `0.45`.

    Returns:
        A `Scene` namedtuple (see its fields). It may hold fewer objects
        than `silhouettes`, even none (when every object is skipped or too
        small to keep `min_visible_pixels`); callers that need objects
        draw again.

    Example:

    ```python
    rng = np.random.default_rng(0)
    background = np.full((64, 64, 3), 128, np.uint8)
    blob = np.zeros((28, 28), np.uint8)
    blob[6:22, 10:18] = 255
    scene = compose_scene(background, [blob, blob], rng)
    scene.boxes  # relative yxyx, tight around scene.masks
    ```
    """
    background = np.asarray(background)
    if (
        background.ndim != 3
        or background.shape[-1] != 3
        or min(background.shape[:2]) < 8
    ):
        raise ValueError(
            "`background` must have shape (height, width, 3) with both "
            f"sides >= 8. Received: background.shape={background.shape}"
        )
    scale_range = _validate_range(scale_range, "scale_range", upper=1.0)
    stretch_range = _validate_range(stretch_range, "stretch_range")
    max_iou = _validate_fraction(max_iou, "max_iou")
    min_visible_fraction = _validate_fraction(
        min_visible_fraction, "min_visible_fraction"
    )
    min_visible_pixels = _validate_int(
        min_visible_pixels, "min_visible_pixels", minimum=1
    )
    min_contrast = _validate_fraction(min_contrast, "min_contrast")
    silhouettes = [np.asarray(s) for s in silhouettes]
    for i, silhouette in enumerate(silhouettes):
        if silhouette.ndim != 2 or min(silhouette.shape) < 1:
            raise ValueError(
                "`silhouettes` must hold 2-D arrays. Received: "
                f"silhouettes[{i}].shape={silhouette.shape}"
            )

    height, width = background.shape[:2]
    canvas = background.astype(np.float32)
    placed = []  # (index, box in pixels (top, left, bottom, right), alpha)
    for index, silhouette in enumerate(silhouettes):
        item = _place(
            silhouette,
            (height, width),
            [p[1] for p in placed],
            rng,
            scale_range,
            stretch_range,
            max_iou,
        )
        if item is not None:
            placed.append((index,) + item)

    alphas = np.zeros((len(placed), height, width), np.float32)
    for k, (_, (top, left, bottom, right), alpha) in enumerate(placed):
        alphas[k, top:bottom, left:right] = alpha
    support = alphas > 0
    hiding = alphas >= OCCLUSION_THRESHOLD
    keep = _visible_objects(
        support, hiding, min_visible_fraction, min_visible_pixels
    )
    placed = [placed[k] for k in keep]
    alphas = alphas[keep]
    masks = _visible_masks(support[keep], hiding[keep])

    colors = np.zeros((len(placed), 3), np.float32)
    for k, (_, (top, left, bottom, right), alpha) in enumerate(placed):
        region = canvas[top:bottom, left:right]
        colors[k] = _contrasting_color(
            background[top:bottom, left:right], rng, min_contrast
        )
        weight = alpha[..., None]
        region[...] = region * (1.0 - weight) + colors[k] * weight
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    boxes = (
        np.stack([mask_to_box(mask) for mask in masks])
        if len(masks)
        else np.zeros((0, 4), np.float32)
    )
    indices = np.asarray([p[0] for p in placed], dtype=np.int64)
    return Scene(
        image, boxes.astype(np.float32), masks, alphas, colors, indices
    )


def mask_to_box(mask):
    """The tight relative `yxyx` box of the `True` pixels of a 2-D mask.

    Args:
        mask: bool array `(height, width)` with at least one `True` pixel.

    Returns:
        A float32 array `(4,)`: `(top / height, left / width, (bottom + 1)
        / height, (right + 1) / width)`.

    Example:

    ```python
    mask = np.zeros((4, 4), bool)
    mask[1:3, 2] = True
    mask_to_box(mask)  # [0.25, 0.5, 0.75, 0.75]
    ```
    """
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("`mask` must have at least one True pixel.")
    height, width = mask.shape
    return np.array(
        [
            rows[0] / height,
            cols[0] / width,
            (rows[-1] + 1) / height,
            (cols[-1] + 1) / width,
        ],
        dtype=np.float32,
    )


def _place(silhouette, shape, boxes, rng, scale_range, stretch_range, iou):
    height, width = shape
    ink = silhouette >= _INK_THRESHOLD
    if ink.any():
        rows = np.flatnonzero(ink.any(axis=1))
        cols = np.flatnonzero(ink.any(axis=0))
        silhouette = silhouette[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    natural = silhouette.shape[1] / silhouette.shape[0]
    scale = rng.uniform(*scale_range)
    stretch = math.exp(rng.uniform(*np.log(stretch_range)))
    aspect = natural * stretch
    longest = scale * min(height, width)
    if aspect >= 1.0:
        box_height, box_width = longest / aspect, longest
    else:
        box_height, box_width = longest, longest * aspect
    box_height = int(min(max(round(box_height), 2), height))
    box_width = int(min(max(round(box_width), 2), width))
    for _ in range(_MAX_PLACEMENT_ATTEMPTS):
        top = int(rng.integers(0, height - box_height + 1))
        left = int(rng.integers(0, width - box_width + 1))
        box = (top, left, top + box_height, left + box_width)
        if all(_iou(box, other) <= iou for other in boxes):
            alpha = resize_bilinear(silhouette, box_height, box_width)
            low, high = _EDGE_RAMP
            alpha = np.clip((alpha / 255.0 - low) / (high - low), 0.0, 1.0)
            return box, alpha
    return None


def _iou(a, b):
    inter_h = min(a[2], b[2]) - max(a[0], b[0])
    inter_w = min(a[3], b[3]) - max(a[1], b[1])
    if inter_h <= 0 or inter_w <= 0:
        return 0.0
    inter = inter_h * inter_w
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def _visible_masks(support, hiding):
    """Painted pixels not hidden by a later object.

    Args:
        support: bool `(n, height, width)`, the pixels each object paints
            (alpha > 0).
        hiding: bool `(n, height, width)`, the pixels each object hides
            (alpha >= `OCCLUSION_THRESHOLD`).

    Returns:
        bool `(n, height, width)`: `support[i]` minus the union of
        `hiding[j]` for `j > i`.
    """
    visible = support.copy()
    if len(support) < 2:
        return visible
    covered = hiding[-1].copy()
    for i in range(len(support) - 2, -1, -1):
        visible[i] &= ~covered
        if i:
            covered |= hiding[i]
    return visible


def _visible_objects(support, hiding, min_fraction, min_pixels):
    """Indices of the objects kept after repeatedly dropping hidden ones."""
    keep = list(range(len(support)))
    painted = support.reshape(len(support), -1).sum(1)
    while keep:
        visible = _visible_masks(support[keep], hiding[keep])
        counts = visible.reshape(len(keep), -1).sum(1)
        fractions = counts / np.maximum(painted[keep], 1)
        failing = (fractions < min_fraction) | (counts < min_pixels)
        if not failing.any():
            break
        worst = int(np.argmin(np.where(failing, fractions, np.inf)))
        del keep[worst]
    return keep


def _contrasting_color(region, rng, min_contrast):
    mean = region.reshape(-1, 3).astype(np.float32).mean(axis=0)
    candidates = rng.uniform(0.0, 255.0, size=(_NUM_COLOR_CANDIDATES, 3))
    distances = np.linalg.norm(candidates - mean, axis=1)
    good = np.flatnonzero(distances >= min_contrast * 255.0)
    choice = good[0] if good.size else int(np.argmax(distances))
    return candidates[choice].astype(np.float32)


def _validate_int(value, name, minimum):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _validate_fraction(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(
            f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def _validate_range(value, name, upper=None):
    bound = "" if upper is None else f" <= {upper}"
    message = (
        f"`{name}` must be a pair (low, high) with 0 < low <= high{bound}. "
        f"Received: {name}={value!r}"
    )
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not 0.0 < low <= high or (upper is not None and high > upper):
        raise ValueError(message)
    return low, high
