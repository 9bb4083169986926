import keras
import numpy as np
import pytest

from keras_objectness.adaptation import find_background_head
from keras_objectness.callbacks import DetectorAdapter
from keras_objectness.layers import RegionCrops
from keras_objectness.models import detection_network
from keras_objectness.models import shared_feature_detector
from keras_objectness.workflows import finetuning
from keras_objectness.workflows import scoring

NUM_CLASSES = 4
DETECTION_CLASSES = (0, 1)


def _network(trunk, crop_size=8):
    keras.utils.set_random_seed(0)
    images = keras.Input((crop_size, crop_size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    for layer in trunk:
        x = layer(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    classifier = keras.Model(images, x)
    return detection_network(classifier, DETECTION_CLASSES)


def _pointwise():
    # Linear and pointwise: commutes with bilinear resampling (a ReLU here
    # would not: relu(interpolate(x)) != interpolate(relu(x))).
    return _network([keras.layers.Conv2D(4, 1)])


def _strided():
    # Valid convolution and pooling: crop cell k sits at pixel 1.5 + 2k.
    return _network(
        [
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
        ]
    )


def _per_crop_scores(network, images, regions, context_padding):
    crops = RegionCrops(8, context_padding)(images, regions)
    crops = np.asarray(crops).reshape((-1, 8, 8, 3))
    scores = scoring.region_scores_model(network).predict(crops, verbose=0)
    return scores.reshape(regions.shape[:2] + (-1,))


def _images(count=2, size=24):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size, 3)).astype("uint8")


def _random_regions(count=2, regions=5):
    rng = np.random.default_rng(1)
    start = rng.uniform(0.05, 0.45, (count, regions, 2))
    size = rng.uniform(0.2, 0.45, (count, regions, 1))
    return np.concatenate([start, start + size], -1).astype("float32")


def test_pointwise_trunk_equals_the_per_crop_path():
    # A linear 1x1 trunk commutes with resampling, so pooling its map with
    # one sample per bin is the per-crop computation (float error only).
    network = _pointwise()
    images, regions = _images(), _random_regions()
    model = shared_feature_detector(
        network, (24, 24, 3), 5, context_padding=0.1, sampling_ratio=1
    )
    shared = model.predict([images, regions], verbose=0)
    assert shared.shape == (2, 5, NUM_CLASSES)
    expected = _per_crop_scores(network, images, regions, 0.1)
    np.testing.assert_allclose(shared, expected, atol=1e-4, rtol=1e-4)


def test_strided_trunk_is_aligned_to_the_crop_cells():
    # A pixel-aligned 8x8 region: the crop is the image slice, and a valid
    # conv + pool sees the same pixels in the crop and in the image, so the
    # bins must land exactly on the image map's cells.
    network = _strided()
    images = _images()
    regions = np.array([[[4 / 24, 8 / 24, 12 / 24, 16 / 24]]] * 2, "float32")
    model = shared_feature_detector(
        network, (24, 24, 3), 1, context_padding=0.0, sampling_ratio=1
    )
    shared = model.predict([images, regions], verbose=0)
    expected = _per_crop_scores(network, images, regions, 0.0)
    np.testing.assert_allclose(shared, expected, atol=1e-4, rtol=1e-4)
    # A misaligned model (bins over the region, not over the cells) differs.
    assert np.abs(shared).max() > 1e-3


def test_shares_the_networks_weights_and_head():
    network = _strided()
    model = shared_feature_detector(network, (24, 24, 3), 3)
    ids = {id(w) for w in network.trainable_weights}
    assert {id(w) for w in model.trainable_weights} == ids
    assert find_background_head(model) is find_background_head(network)


def test_pyramid_picks_a_level_per_region():
    network = _strided()
    images, regions = _images(size=32), _random_regions()
    native = shared_feature_detector(network, (32, 32, 3), 5)
    pyramid = shared_feature_detector(
        network, (32, 32, 3), 5, image_scales=(0.5, 1.0)
    )
    a = native.predict([images, regions], verbose=0)
    b = pyramid.predict([images, regions], verbose=0)
    assert b.shape == a.shape
    # Regions of about 8-15 px at 32 px are nearest 8 px at half scale.
    assert not np.allclose(a, b)


def test_fine_tuning_through_pooled_features_moves_the_network():
    network = _strided()
    network.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy"
    )
    model = finetuning.shared_training_model(network, 24, 5)
    before = [np.array(w) for w in network.trainable_weights]
    images, regions = _images(4), _random_regions(4)
    labels = np.random.default_rng(2).integers(0, NUM_CLASSES + 1, (4, 5))
    model.fit(
        (images, regions),
        labels,
        epochs=1,
        batch_size=2,
        verbose=0,
        callbacks=[DetectorAdapter(knn=1)],
    )
    after = [np.array(w) for w in network.trainable_weights]
    assert any(not np.allclose(b, a) for b, a in zip(before, after))
    head = find_background_head(network)
    assert bool(np.asarray(head.snapshot_taken))


def test_detect_on_proposals_runs_both_paths():
    network = _pointwise()
    images, regions = _images(), _random_regions()
    kwargs = dict(verbose=False, max_detections=5)
    per_crop = scoring.detect_on_proposals(network, images, regions, **kwargs)
    shared = scoring.detect_on_proposals(
        network, images, regions, detector="shared", **kwargs
    )
    assert per_crop["boxes"].shape == shared["boxes"].shape == (2, 5, 4)
    with pytest.raises(ValueError, match="`detector`"):
        scoring.detect_on_proposals(network, images, regions, detector="x")


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"image_shape": (24, 24)}, "image_shape"),
        ({"num_regions": 0}, "num_regions"),
        ({"image_scales": ()}, "image_scales"),
        ({"image_scales": (0.0,)}, "image_scales"),
        ({"output_mode": "logits"}, "output_mode"),
        ({"split_layer_name": "dense"}, "split_layer_name"),
    ],
)
def test_bad_arguments(kwargs, argument):
    network = _pointwise()
    arguments = {"image_shape": (24, 24, 3), "num_regions": 2, **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}`"):
        shared_feature_detector(network, **arguments)
