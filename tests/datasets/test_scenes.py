import numpy as np
import pytest

from keras_objectness.datasets.silhouette_scenes import scenes
from keras_objectness.datasets.silhouette_scenes import sources


@pytest.fixture(scope="module")
def composed():
    """300 scenes of 1-6 real silhouettes on real background crops."""
    silhouettes = sources.load_silhouettes()
    photos = sources.load_backgrounds("train", 160)
    rng = np.random.default_rng(123)
    made = []
    for _ in range(300):
        size = int(rng.choice([40, 64, 80]))
        photo = photos[int(rng.integers(len(photos)))][1]
        background = scenes.crop_background(photo, size, rng)
        ids = rng.integers(0, len(silhouettes.images), rng.integers(1, 7))
        scene = scenes.compose_scene(
            background, [silhouettes.images[i] for i in ids], rng
        )
        made.append((background, scene, len(ids)))
    return made


def test_most_scenes_keep_their_objects(composed):
    kept = sum(len(scene.indices) for _, scene, _ in composed)
    requested = sum(count for _, _, count in composed)
    empty = sum(len(scene.indices) == 0 for _, scene, _ in composed)
    assert kept > 0.7 * requested
    assert empty < 0.05 * len(composed)


def test_boxes_are_tight_around_visible_pixels(composed):
    checked = 0
    for _, scene, _ in composed:
        height, width = scene.image.shape[:2]
        assert scene.boxes.dtype == np.float32
        for box, mask in zip(scene.boxes, scene.masks):
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            top, left = round(box[0] * height), round(box[1] * width)
            bottom, right = round(box[2] * height), round(box[3] * width)
            # Every visible pixel is inside the box ...
            outside = mask.copy()
            outside[top:bottom, left:right] = False
            assert not outside.any()
            # ... and each of the four edges touches a visible pixel.
            assert (top, bottom - 1) == (rows[0], rows[-1])
            assert (left, right - 1) == (cols[0], cols[-1])
            assert mask[top].any() and mask[bottom - 1].any()
            assert mask[:, left].any() and mask[:, right - 1].any()
            checked += 1
    assert checked > 500


def test_masks_are_the_visible_part_of_each_alpha(composed):
    for _, scene, requested in composed:
        count = len(scene.indices)
        assert count <= requested
        assert np.all(np.diff(scene.indices) > 0)
        assert scene.masks.shape == (count,) + scene.image.shape[:2]
        painted = scene.alphas > 0
        hiding = scene.alphas >= scenes.OCCLUSION_THRESHOLD
        for i in range(count):
            later = hiding[i + 1 :].any(axis=0)
            np.testing.assert_array_equal(scene.masks[i], painted[i] & ~later)
            # Kept objects stay visible enough.
            visible = scene.masks[i].sum()
            assert visible >= 8
            assert visible >= 0.3 * painted[i].sum()
        # Two visible masks share a pixel only where the later object is
        # faint there.
        for i in range(count):
            for j in range(i + 1, count):
                shared = scene.masks[i] & scene.masks[j]
                assert np.all(scene.alphas[j][shared] < 0.5)


def test_nothing_visible_is_painted_outside_its_box(composed):
    """Any pixel an object paints lies in its box unless a later object
    hides it, so no unlabelled ink shows."""
    for _, scene, _ in composed:
        height, width = scene.image.shape[:2]
        hiding = scene.alphas >= scenes.OCCLUSION_THRESHOLD
        for i, box in enumerate(scene.boxes):
            top, left = round(box[0] * height), round(box[1] * width)
            bottom, right = round(box[2] * height), round(box[3] * width)
            outside = scene.alphas[i] > 0
            outside[top:bottom, left:right] = False
            assert np.all(hiding[i + 1 :].any(axis=0)[outside])


def test_image_shows_exactly_the_kept_objects(composed):
    """Re-painting the kept objects onto the background gives the image."""
    for background, scene, _ in composed:
        canvas = background.astype(np.float32)
        for alpha, color in zip(scene.alphas, scene.colors):
            canvas = canvas * (1 - alpha[..., None]) + color * alpha[..., None]
        expected = np.clip(np.rint(canvas), 0, 255)
        difference = np.abs(expected - scene.image.astype(np.float32))
        assert difference.max() <= 1
        if len(scene.indices) == 0:
            np.testing.assert_array_equal(scene.image, background)
        # Pixels no object touches are the background, untouched.
        untouched = ~(scene.alphas > 0).any(axis=0)
        np.testing.assert_array_equal(
            scene.image[untouched], background[untouched]
        )


def test_objects_contrast_with_their_background(composed):
    distances = []
    for background, scene, _ in composed:
        for mask, color in zip(scene.masks, scene.colors):
            local = background[mask].astype(np.float32).mean(axis=0)
            distances.append(np.linalg.norm(color - local))
    # The colour is chosen against the mean under the whole box, so a few
    # may fall short under the mask itself; most must not.
    assert np.median(distances) > 0.45 * 255
    assert np.mean(np.asarray(distances) > 0.2 * 255) > 0.9


def test_scales_span_the_requested_range(composed):
    sides = []
    for _, scene, _ in composed:
        boxes = scene.boxes
        sides.extend(
            np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        )
    sides = np.asarray(sides)
    assert sides.min() < 0.2
    assert sides.max() > 0.6
    assert sides.max() <= 0.7 + 0.05


def test_a_hidden_object_is_dropped_and_not_painted():
    background = np.zeros((32, 32, 3), np.uint8)
    full = np.full((28, 28), 255, np.uint8)
    # Two full squares covering the whole image: the first is hidden.
    scene = scenes.compose_scene(
        background,
        [full, full],
        np.random.default_rng(0),
        scale_range=(1.0, 1.0),
        stretch_range=(1.0, 1.0),
        max_iou=1.0,
    )
    np.testing.assert_array_equal(scene.indices, [1])
    np.testing.assert_allclose(scene.boxes, [[0, 0, 1, 1]])
    assert np.all(scene.image == np.rint(scene.colors[0]).astype(np.uint8))


def test_overlap_is_limited():
    background = np.zeros((32, 32, 3), np.uint8)
    full = np.full((28, 28), 255, np.uint8)
    scene = scenes.compose_scene(
        background,
        [full, full],
        np.random.default_rng(0),
        scale_range=(1.0, 1.0),
        stretch_range=(1.0, 1.0),
        max_iou=0.3,
    )
    # The second full-image square cannot be placed at IoU <= 0.3.
    np.testing.assert_array_equal(scene.indices, [0])


def test_mask_to_box():
    mask = np.zeros((4, 8), bool)
    mask[1:3, 2] = True
    mask[2, 5] = True
    np.testing.assert_allclose(
        scenes.mask_to_box(mask), [0.25, 0.25, 0.75, 0.75]
    )
    with pytest.raises(ValueError, match="mask"):
        scenes.mask_to_box(np.zeros((3, 3), bool))


def test_resize_bilinear():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(scenes.resize_bilinear(image, 4, 4), image)
    half = scenes.resize_bilinear(image, 2, 2)
    expected = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(half, expected)
    rgb = np.full((5, 7, 3), 9, np.uint8)
    np.testing.assert_allclose(scenes.resize_bilinear(rgb, 11, 3), 9.0)


def test_crop_background_is_a_flipped_or_plain_crop():
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3))
    photo = photo.astype(np.uint8)
    crop = scenes.crop_background(
        photo, 20, np.random.default_rng(1), crop_fraction=(1.0, 1.0)
    )
    assert crop.shape == (20, 20, 3) and crop.dtype == np.uint8
    windows = [photo[:, x : x + 20] for x in range(11)]
    windows += [w[:, ::-1] for w in windows]
    assert any(np.array_equal(crop, w) for w in windows)


@pytest.mark.parametrize(
    "argument, value",
    [
        ("scale_range", (0.5, 0.2)),
        ("scale_range", (0.0, 0.5)),
        ("scale_range", (0.5, 1.5)),
        ("scale_range", "ab"),
        ("stretch_range", (2.0, 1.0)),
        ("max_iou", 1.5),
        ("min_visible_fraction", -0.1),
        ("min_visible_pixels", 0),
        ("min_contrast", "high"),
    ],
)
def test_bad_compositor_arguments(argument, value):
    background = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=f"Received: {argument}="):
        scenes.compose_scene(
            background, [], np.random.default_rng(0), **{argument: value}
        )


def test_bad_background_and_silhouettes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="background"):
        scenes.compose_scene(np.zeros((32, 32), np.uint8), [], rng)
    with pytest.raises(ValueError, match="background"):
        scenes.compose_scene(np.zeros((4, 32, 3), np.uint8), [], rng)
    with pytest.raises(ValueError, match="silhouettes"):
        scenes.compose_scene(
            np.zeros((32, 32, 3), np.uint8), [np.zeros(5)], rng
        )
    with pytest.raises(ValueError, match="image_size"):
        scenes.crop_background(np.zeros((32, 32, 3), np.uint8), 4, rng)
