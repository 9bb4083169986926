"""The detector's graph holds the scoring network once (one compile)."""

import keras
import numpy as np

from keras_objectness.models import detection_network
from keras_objectness.models import region_detector
from tests.graph_ops import op_counts
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import tiny_classifier


def _graph_op_counts(detector, max_proposals):
    return op_counts(
        lambda images, proposals: detector([images, proposals], training=False),
        [(None, 16, 16, 3), (None, max_proposals, 4)],
    )


def test_scoring_network_is_traced_once_whatever_the_proposals():
    network = detection_network(tiny_classifier(), DETECTION_CLASSES)
    counts = []
    for max_proposals in (5, 40):
        detector = region_detector(
            network, image_shape=(16, 16, 3), max_proposals=max_proposals
        )
        found = _graph_op_counts(detector, max_proposals)
        counts.append((found["conv"], found["matmul"]))
    # tiny_classifier: one Conv2D, one Dense; BackgroundHead: one MatMul.
    # A per-proposal unrolled loop would give 5 and 40 copies.
    assert counts[0] == counts[1]
    assert counts[0][0] == 1


def test_predict_traces_once_for_batches_of_one_shape():
    network = detection_network(tiny_classifier(), DETECTION_CLASSES)
    detector = region_detector(network, image_shape=(16, 16, 3))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 16, 16, 3)).astype("float32")
    proposals = np.tile([[[0.1, 0.1, 0.6, 0.7]]], (6, 100, 1))
    proposals = proposals.astype("float32")
    traces = []
    original = detector.call

    def counting_call(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    detector.call = counting_call
    first = detector.predict([images, proposals], batch_size=2, verbose=0)
    again = detector.predict([images, proposals], batch_size=2, verbose=0)
    # Three batches per predict, two predicts: the graph is built once.
    assert len(traces) == 1
    np.testing.assert_array_equal(first["classes"], again["classes"])
    assert keras.ops.convert_to_numpy(first["num_detections"]).shape == (6,)
