"""Fitting a detection network on invalid labels, under any backend.

Eager steps (`run_eagerly=True`) read the labels and raise a `ValueError`
naming them and the valid range; compiled steps (`tf.function`,
`jax.jit`) cannot, so the loss turns NaN (the documented rule) and
`keras.callbacks.TerminateOnNaN` stops training.
"""

import keras
import numpy as np
import pytest

from keras_objectness.losses import JointDetectionLoss
from keras_objectness.models import detection_network
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier

K = NUM_CLASSES


def _network(run_eagerly):
    keras.utils.set_random_seed(0)
    network = detection_network(
        tiny_classifier(), DETECTION_CLASSES, mask_heldout_classes=False
    )
    network.compile(
        keras.optimizers.SGD(0.1),
        JointDetectionLoss(K, DETECTION_CLASSES),
        run_eagerly=run_eagerly,
    )
    return network


@pytest.mark.parametrize("bad", [2 * K + 1, 3 * K, -1, -5])
def test_eager_fit_names_the_invalid_labels_and_the_range(bad):
    images, labels = region_data(count=8)
    labels = labels.copy()
    labels[3] = bad
    network = _network(run_eagerly=True)
    with pytest.raises(ValueError) as info:
        network.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    message = str(info.value)
    assert f"invalid labels [{bad}]" in message
    assert f"[{K + 1}, {2 * K}]" in message
    assert f"the background {K}" in message


def test_eager_fit_accepts_every_valid_kind_of_label():
    images, labels = region_data(count=8)
    # Classification examples of held-out and detection classes.
    labels = labels.copy()
    labels[:2] = [K + 1 + 2, 2 * K]
    network = _network(run_eagerly=True)
    history = network.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_compiled_fit_reports_nan_and_terminate_on_nan_stops():
    images, labels = region_data(count=16)
    labels = labels.copy()
    labels[12] = 2 * K + 1
    network = _network(run_eagerly=False)
    history = network.fit(
        images,
        labels,
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    losses = history.history["loss"]
    # The bad label is in the second batch: the epoch's loss is NaN and
    # training stops in the first epoch.
    assert len(losses) == 1
    assert np.isnan(losses[0])
