"""A small network learns to localise objects it never saw."""

import keras
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness.box_space import _iou_yxyx
from keras_objectness.data.synthetic import single_object_images
from keras_objectness.layers import BoxBinDecoder
from keras_objectness.layers import BoxBinSoftmax
from keras_objectness.layers import GaussianBoxTargets
from tests.test_case import large


@large
def test_box_bin_softmax_localises_unseen_objects():
    keras.utils.set_random_seed(0)
    size = 32
    space = BoxSpace(
        grid_shape=(8, 8), scales=(0.3, 0.42, 0.6), aspect_ratios=(0.6, 1, 1.6)
    )
    train_images, train_boxes = single_object_images(500, size, seed=1)
    test_images, test_boxes = single_object_images(200, size, seed=2)
    targets = GaussianBoxTargets(space)
    # Targets are made inside the tf.data graph, as a training pipeline would.
    train = (
        tf.data.Dataset.from_tensor_slices((train_images, train_boxes[:, None]))
        .map(lambda image, boxes: (image, targets(boxes)))
        .shuffle(500, seed=0)
        .batch(32)
    )
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(
            x
        )
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    model = keras.Model(inputs, BoxBinSoftmax(space)(x))
    model.compile(
        keras.optimizers.Adam(2e-3), keras.losses.CategoricalCrossentropy()
    )
    history = model.fit(train, epochs=25, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    detections = BoxBinDecoder(space, max_detections=1)(
        model.predict(test_images, verbose=0)
    )
    top_boxes = keras.ops.convert_to_numpy(detections["boxes"])[:, 0]
    localised = _iou_yxyx(top_boxes, test_boxes) >= 0.5
    assert localised.mean() >= 0.9, f"localised {localised.mean():.3f}"
