import os
import tempfile

import keras
import numpy as np
import pytest

import keras_objectness
from keras_objectness.adaptation import find_background_head
from keras_objectness.callbacks import DetectorAdapter
from keras_objectness.class_split import ClassSplit
from keras_objectness.layers import BackgroundHead
from keras_objectness.layers import RegionCrops
from keras_objectness.models import detection_network
from keras_objectness.models import region_detector
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import FEATURES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import region_data
from tests.lsda_helpers import tiny_classifier


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def test_head_starts_from_the_classifier():
    classifier = tiny_classifier(activation=None)
    dense = classifier.get_layer("classifier_predictions")
    dense.bias.assign(np.linspace(-1, 1, NUM_CLASSES).astype("float32"))
    detector = detection_network(
        classifier,
        DETECTION_CLASSES,
        output_mode="logits",
        copy_classifier=False,
    )
    head = detector.get_layer("detector_background_head")
    assert isinstance(head, BackgroundHead)
    assert head.num_classes == NUM_CLASSES
    assert head.detection_classes == DETECTION_CLASSES
    assert detector.name == "detector"
    assert detector.output.shape == (None, NUM_CLASSES + 1)
    # Shared: the backbone is the classifier's own layer object.
    assert detector.get_layer("tiny_backbone") is classifier.get_layer(
        "tiny_backbone"
    )
    # New weights: the background column and bias, the snapshot and flag.
    assert detector.count_params() == (
        classifier.count_params()
        + FEATURES
        + 1
        + FEATURES * NUM_CLASSES
        + NUM_CLASSES
        + 1
    )
    kernel = head.kernel.numpy()
    np.testing.assert_array_equal(kernel[:, :NUM_CLASSES], dense.kernel.numpy())
    np.testing.assert_array_equal(kernel[:, NUM_CLASSES], 0.0)
    np.testing.assert_array_equal(head.bias.numpy()[:-1], dense.bias.numpy())
    assert not head.has_snapshot
    # Before fine-tuning the class logits are the classifier's logits.
    images, _ = region_data(count=4)
    logits = detector.predict(images, verbose=0)
    np.testing.assert_allclose(
        logits[:, :NUM_CLASSES], classifier.predict(images, verbose=0), 1e-6
    )
    np.testing.assert_array_equal(logits[:, NUM_CLASSES], 0.0)


def test_shares_backbone_weights_with_the_classifier():
    classifier = tiny_classifier()
    detector = detection_network(
        classifier, ClassSplit(NUM_CLASSES, (0, 4)), copy_classifier=False
    )
    conv = classifier.get_layer("tiny_backbone").get_layer("tiny_conv")
    conv.kernel.assign(conv.kernel.numpy() + 1.0)
    shared = detector.get_layer("tiny_backbone").get_layer("tiny_conv")
    np.testing.assert_array_equal(shared.kernel.numpy(), conv.kernel.numpy())


def test_scores_output_and_custom_output_layer():
    images = keras.Input((5,))
    hidden = keras.layers.Dense(4, name="fc7")(images)
    classifier = keras.Model(
        images, keras.layers.Dense(3, name="fc8")(hidden), name="net"
    )
    detector = detection_network(
        classifier,
        (1,),
        output_mode="scores",
        output_layer_name="fc8",
        background_initializer="ones",
        name="det",
    )
    head = detector.get_layer("det_background_head")
    np.testing.assert_array_equal(head.kernel.numpy()[:, 3], 1.0)
    x = np.random.default_rng(0).normal(size=(2, 5)).astype("float32")
    features = x @ detector.get_layer("fc7").kernel.numpy()
    features += detector.get_layer("fc7").bias.numpy()
    logits = features @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(
        detector.predict(x, verbose=0),
        logits[:, :3] - logits[:, 3:],
        atol=1e-5,
    )


def test_frozen_detection_classes_pass_through():
    classifier = tiny_classifier()
    detector = detection_network(
        classifier, DETECTION_CLASSES, train_detection_classes=False
    )
    head = detector.get_layer("detector_background_head")
    assert head.train_detection_classes is False
    before = head.kernel.numpy().copy()
    detector.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = region_data(count=16)
    detector.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    kernel = head.kernel.numpy()
    np.testing.assert_array_equal(
        kernel[:, :NUM_CLASSES], before[:, :NUM_CLASSES]
    )
    assert not np.allclose(kernel[:, NUM_CLASSES], before[:, NUM_CLASSES])
    assert (
        detection_network(tiny_classifier(), DETECTION_CLASSES)
        .get_layer("detector_background_head")
        .train_detection_classes
    )


def test_head_follows_the_classifier_dtype_policy(restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    detector = detection_network(tiny_classifier(), DETECTION_CLASSES)
    head = detector.get_layer("detector_background_head")
    assert head.compute_dtype == "float32"
    assert (
        detector.get_layer("tiny_backbone").get_layer("tiny_conv").compute_dtype
        == "bfloat16"
    )


def test_adapted_detector_saves_and_loads_identically():
    classifier = tiny_classifier()
    detector = detection_network(classifier, DETECTION_CLASSES)
    head = detector.get_layer("detector_background_head")
    head.take_snapshot()
    detector.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = region_data(count=16)
    detector.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    keras_objectness.adapt_classifier(detector, knn=2)
    expected = detector.predict(images, verbose=0)
    weights = [w.numpy() for w in head.weights]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "detector.keras")
        detector.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), expected)
    restored_head = restored.get_layer("detector_background_head")
    assert restored_head.has_snapshot
    for actual, wanted in zip(restored_head.weights, weights):
        np.testing.assert_array_equal(actual.numpy(), wanted)
    # The restored model adapts to the same weights (from its snapshot).
    keras_objectness.adapt_classifier(restored, knn=2)
    np.testing.assert_array_equal(restored_head.kernel.numpy(), weights[0])


def test_bad_arguments():
    classifier = tiny_classifier()
    with pytest.raises(ValueError, match="`classifier`"):
        detection_network("classifier", DETECTION_CLASSES)
    with pytest.raises(ValueError, match="`detection_classes`"):
        detection_network(classifier, (0, NUM_CLASSES))
    with pytest.raises(ValueError, match="`output_mode`"):
        detection_network(classifier, DETECTION_CLASSES, output_mode="probs")
    with pytest.raises(ValueError, match="`output_layer_name` must name a"):
        detection_network(classifier, (0,), output_layer_name="missing")
    with pytest.raises(ValueError, match="`keras.layers.Dense`"):
        detection_network(classifier, (0,), output_layer_name="tiny_backbone")
    with pytest.raises(ValueError, match="`copy_classifier`"):
        detection_network(classifier, (0,), copy_classifier="yes")
    with pytest.raises(ValueError, match="`name`"):
        detection_network(classifier, (0,), name="")
    images = keras.Input((5,))
    # A Dense called twice in the classifier's graph is ambiguous.
    shared = keras.layers.Dense(5, name="shared_predictions")
    twice = keras.Model(images, shared(shared(images)))
    with pytest.raises(ValueError, match="called exactly once"):
        detection_network(twice, (0,))


def test_uses_the_classifier_node_of_a_reused_output_layer():
    fc8 = keras.layers.Dense(3, name="fc8_predictions")
    elsewhere = keras.Input((4,), name="elsewhere")
    keras.Model(elsewhere, fc8(elsewhere))  # fc8's first node: another graph
    images = keras.Input((5,))
    classifier = keras.Model(
        images, fc8(keras.layers.Dense(4, name="fc7")(images))
    )
    detector = detection_network(classifier, (0, 2), copy_classifier=False)
    assert detector.inputs[0] is classifier.inputs[0]
    x = np.zeros((2, 5), "float32")
    assert detector.predict(x, verbose=0).shape == (2, 4)


# === Any classifier: finding the class layer, copies, bad inputs ===

K = 5
B = (0, 2)
A = (1, 3, 4)


def _softmax(logits):
    logits = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


def _class_logits(detector, x):
    """The head's `K + 1` logits, from the features it receives."""
    head = detector.get_layer("detector_background_head")
    # Called eagerly: tracing a `predict` of a large model costs more.
    features = _eager(keras.Model(detector.input, head.input), x)
    kernel = keras.ops.convert_to_numpy(head.kernel)
    return features @ kernel + keras.ops.convert_to_numpy(head.bias)


def _eager(model, x):
    """`model(x)` at inference, as numpy (a pytree of numpy arrays)."""
    return keras.tree.map_structure(
        keras.ops.convert_to_numpy, model(x, training=False)
    )


def _randomize(layer, seed=0):
    """Random (not near-uniform) class weights, bias included."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


def _images(count=4, size=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, size, size, 3)).astype("float32")


def _trunk(images):
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(images)
    return x


def test_finds_an_unnamed_dense_behind_activations_and_dropout():
    images = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(_trunk(images))
    x = keras.layers.Dense(K, name="fc8")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Activation("linear")(x)
    outputs = keras.layers.Softmax()(x)
    classifier = keras.Model(images, outputs)
    _randomize(classifier.get_layer("fc8"))
    detector = detection_network(classifier, B)
    logits = _class_logits(detector, _images())
    fc8 = keras.Model(images, classifier.get_layer("fc8").output)
    np.testing.assert_allclose(
        logits[:, :K], fc8.predict(_images(), verbose=0), atol=1e-5
    )
    np.testing.assert_array_equal(logits[:, K], 0.0)
    np.testing.assert_allclose(
        _softmax(logits[:, :K]), classifier.predict(_images(), verbose=0), 1e-5
    )


def _conv_head_classifier(pooled, activation="softmax"):
    """A MobileNetV3-style head: 1x1 `Conv2D` logits, flatten, softmax."""
    images = keras.Input((8, 8, 3))
    x = _trunk(images)
    if pooled:
        # Logits at every position, then averaged.
        x = keras.layers.Conv2D(K, 1, name="logits")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = keras.layers.Dropout(0.2)(x)
        x = keras.layers.Conv2D(K, 1, name="logits")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    logits = x
    outputs = keras.layers.Activation(activation, name="predictions")(x)
    classifier = keras.Model(images, outputs, name="conv_head")
    _randomize(classifier.get_layer("logits"))
    return classifier, keras.Model(images, logits)


@pytest.mark.parametrize("pooled", [False, True], ids=["1x1_map", "pooled"])
def test_one_by_one_conv_head_is_its_equivalent_dense(pooled):
    classifier, logits_model = _conv_head_classifier(pooled)
    detector = detection_network(classifier, B)
    head = detector.get_layer("detector_background_head")
    assert head.input.shape == (None, 6)
    conv = classifier.get_layer("logits")
    np.testing.assert_array_equal(
        head.kernel.numpy()[:, :K], conv.kernel.numpy().reshape(6, K)
    )
    np.testing.assert_array_equal(head.bias.numpy()[:K], conv.bias.numpy())
    x = _images()
    logits = _class_logits(detector, x)
    np.testing.assert_allclose(
        logits[:, :K], logits_model.predict(x, verbose=0), atol=1e-5
    )
    # At inference: the classifier's softmax, extended by the background.
    expected = _softmax(np.concatenate([logits[:, :K], np.zeros((4, 1))], 1))
    np.testing.assert_allclose(detector.predict(x, verbose=0), expected, 1e-5)
    # Naming the layer gives the same network.
    named = detection_network(classifier, B, output_layer_name="logits")
    np.testing.assert_array_equal(
        named.predict(x, verbose=0), detector.predict(x, verbose=0)
    )


def _sequential(build="input"):
    layers = [
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(K, name="fc8"),
    ]
    if build == "input":
        return keras.Sequential([keras.Input((8, 8, 3))] + layers)
    model = keras.Sequential(layers)
    if build == "build":
        model.build((None, 8, 8, 3))
    elif build == "call":
        model(_images(count=1))
    return model


@pytest.mark.parametrize("build", ["input", "build", "call"])
def test_accepts_a_built_sequential(build):
    classifier = _sequential(build)
    detector = detection_network(classifier, B)
    assert detector.output.shape == (None, K + 1)
    # A logits classifier: the class logits are its outputs.
    x = _images()
    np.testing.assert_allclose(
        _class_logits(detector, x)[:, :K],
        classifier.predict(x, verbose=0),
        atol=1e-5,
    )


def test_sequential_built_by_a_call_without_copying():
    classifier = keras.Sequential(
        [
            keras.layers.Flatten(),
            keras.layers.Dense(K, name="fc8"),
            keras.layers.Dropout(0.5),
            keras.layers.Activation("softmax"),
        ]
    )
    x = _images()
    classifier(x[:1])  # built by a call: batch size 1 in its own graph
    expected = classifier.predict(x, verbose=0)
    detector = detection_network(classifier, B, copy_classifier=False)
    assert detector.output.shape == (None, K + 1)
    head = detector.get_layer("detector_background_head")
    fc8 = classifier.get_layer("fc8")
    assert head.kernel.shape == (8 * 8 * 3, K + 1)
    np.testing.assert_array_equal(head.kernel.numpy()[:, :K], fc8.kernel)
    np.testing.assert_allclose(
        _softmax(_class_logits(detector, x)[:, :K]), expected, atol=1e-5
    )
    # The Sequential still works as before.
    np.testing.assert_array_equal(classifier.predict(x, verbose=0), expected)


def test_copies_the_classifier_by_default():
    classifier = tiny_classifier()
    weights = [w.numpy().copy() for w in classifier.weights]
    detector = detection_network(classifier, DETECTION_CLASSES)
    ids = {id(w) for w in classifier.weights}
    assert not any(id(w) in ids for w in detector.weights)
    assert detector.get_layer("tiny_backbone") is not classifier.get_layer(
        "tiny_backbone"
    )
    backbone = detector.get_layer("tiny_backbone").get_layer("tiny_fc")
    before = backbone.kernel.numpy().copy()
    detector.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    detector.fit(*region_data(count=16), batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(backbone.kernel.numpy(), before)
    for weight, expected in zip(classifier.weights, weights):
        np.testing.assert_array_equal(weight.numpy(), expected)


def test_refuses_a_sigmoid_classifier():
    images = keras.Input((5,))
    dense = keras.Model(
        images, keras.layers.Dense(3, activation="sigmoid")(images)
    )
    with pytest.raises(ValueError, match="not a sigmoid"):
        detection_network(dense, (0,))
    classifier, _ = _conv_head_classifier(pooled=False, activation="sigmoid")
    with pytest.raises(ValueError, match="LSDA adds the background"):
        detection_network(classifier, (0,))


def test_bad_classifiers():
    images = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D()(_trunk(images))
    # No class layer: features only.
    with pytest.raises(ValueError, match="must end in a class layer"):
        detection_network(keras.Model(images, features), (0,))
    # A ReLU after the class layer: not class scores.
    relu = keras.layers.ReLU()(keras.layers.Dense(3)(features))
    with pytest.raises(ValueError, match="must end in a class layer"):
        detection_network(keras.Model(images, relu), (0,))
    # Another activation after the class layer.
    tanh = keras.layers.Dense(3, activation="tanh")(features)
    with pytest.raises(ValueError, match="'tanh'"):
        detection_network(keras.Model(images, tanh), (0,))
    # Two softmaxes.
    twice = keras.layers.Softmax()(
        keras.layers.Dense(3, activation="softmax")(features)
    )
    with pytest.raises(ValueError, match="second softmax"):
        detection_network(keras.Model(images, twice), (0,))
    # A softmax over the wrong axis of a 1x1 map.
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(_trunk(images))
    x = keras.layers.Conv2D(3, 1)(x)
    wrong = keras.layers.Flatten()(keras.layers.Softmax(axis=1)(x))
    with pytest.raises(ValueError, match="class axis"):
        detection_network(keras.Model(images, wrong), (0,))
    # A non-linear class layer before the pooling does not commute.
    x = keras.layers.Conv2D(3, 1, activation="relu")(_trunk(images))
    pooled_relu = keras.layers.GlobalAveragePooling2D()(x)
    with pytest.raises(ValueError, match="'relu'"):
        detection_network(keras.Model(images, pooled_relu), (0,))
    # A 1x1 conv on a 6x6 map, not pooled: per-position, not class scores.
    per_position = keras.layers.Conv2D(3, 1, name="per_position")(
        _trunk(images)
    )
    flat = keras.layers.Dense(3)(keras.layers.Flatten()(per_position))
    with pytest.raises(ValueError, match="1x1 feature map"):
        detection_network(
            keras.Model(images, flat), (0,), output_layer_name="per_position"
        )
    # The output comes from a nested model.
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    vectors = keras.Input((5,))
    with pytest.raises(ValueError, match="must end in a class layer"):
        detection_network(keras.Model(vectors, inner(vectors)), (0,))
    # Two outputs.
    two = keras.Model(vectors, [inner(vectors), inner(vectors)])
    with pytest.raises(ValueError, match="exactly one output"):
        detection_network(two, (0,))


def test_output_layer_name_must_name_a_class_layer():
    classifier, _ = _conv_head_classifier(pooled=False)
    for name in ("conv", "flatten", "predictions"):
        with pytest.raises(ValueError, match="must name the class layer"):
            detection_network(classifier, (0,), output_layer_name=name)


def test_refuses_unbuilt_sequential_and_subclassed_models():
    with pytest.raises(ValueError, match="`classifier` must be a built"):
        detection_network(_sequential(build=None), (0,))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 5), "float32"))
    with pytest.raises(ValueError, match="`classifier` must be a functional"):
        detection_network(model, (0,))


# === Foreign classifiers end to end: fine-tune, adapt, detect, save ===

SIZE = 32


def _applications(builder, **kwargs):
    def make():
        return builder(
            input_shape=(SIZE, SIZE, 3), weights=None, classes=K, **kwargs
        )

    return make


def _small_sequential():
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(K, activation="softmax", name="fc8"),
        ],
        name="small_sequential",
    )


class _HeadRecorder(keras.callbacks.Callback):
    """Keeps the head's weights at the end of `fit`, before adaptation."""

    def on_train_end(self, logs=None):
        head = find_background_head(self.model)
        self.kernel = head.kernel.numpy().copy()
        self.bias = head.bias.numpy().copy()


@pytest.mark.large
@pytest.mark.parametrize(
    "make, class_layer, outputs_logits",
    [
        (_applications(keras.applications.ResNet50), "predictions", False),
        # Logits out (no softmax): also a valid classifier.
        (
            _applications(
                keras.applications.EfficientNetB0, classifier_activation=None
            ),
            "predictions",
            True,
        ),
        # A 1x1 Conv2D "logits" + Flatten + Activation head, no Dense.
        (_applications(keras.applications.MobileNetV3Small), "logits", False),
        (_small_sequential, "fc8", False),
    ],
    ids=["resnet50", "efficientnetb0", "mobilenetv3small", "sequential"],
)
def test_foreign_classifier_end_to_end(make, class_layer, outputs_logits):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    classifier = make()
    _randomize(classifier.get_layer(class_layer))
    images = rng.uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    expected = _eager(classifier, images)
    before = [w.numpy().copy() for w in classifier.weights]

    network = detection_network(classifier, B)
    head = find_background_head(network)
    logits = _class_logits(network, images)
    if outputs_logits:
        np.testing.assert_allclose(logits[:, :K], expected, atol=1e-4)
    else:
        np.testing.assert_allclose(_softmax(logits[:, :K]), expected, atol=1e-5)
    np.testing.assert_array_equal(logits[:, K], 0.0)
    initial_kernel = head.kernel.numpy().copy()
    initial_bias = head.bias.numpy().copy()

    # Fine-tune on regions of B and background, then adapt A.
    # Tracing the training step of a large network takes minutes on a
    # small CPU; eager steps compute the same. The Sequential is compiled.
    # The package's loss: Keras' own clips probabilities at 1e-7, which
    # stops the gradient of the background (p ~ 1e-12 here against the
    # randomised class logits) wherever Keras cannot recover the logits
    # (every backend but TensorFlow).
    network.compile(
        keras.optimizers.Adam(1e-3),
        keras_objectness.losses.JointDetectionLoss(K, B),
        run_eagerly=not isinstance(classifier, keras.Sequential),
    )
    labels = np.array(B + (K,), "int32")[np.arange(8) % 3]
    recorder = _HeadRecorder()
    network.fit(
        images,
        labels,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[recorder, DetectorAdapter(knn=1)],
    )
    # The masked training left A's columns exactly as they were.
    np.testing.assert_array_equal(recorder.kernel[:, A], initial_kernel[:, A])
    np.testing.assert_array_equal(recorder.bias[list(A)], initial_bias[list(A)])
    # The background column trained (Adam moves the bias by about the
    # rate).
    assert abs(recorder.bias[K] - initial_bias[K]) > 1e-4
    assert not np.allclose(recorder.kernel[:, K], initial_kernel[:, K])
    np.testing.assert_array_equal(
        head.classification_kernel.numpy(), initial_kernel[:, :K]
    )
    # Adaptation moved A by the offsets learnt on B.
    assert not np.allclose(head.kernel.numpy()[:, A], initial_kernel[:, A])
    # The user's classifier is untouched.
    for weight, value in zip(classifier.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)

    # Detect on two images with given proposals (one padding row).
    detector = region_detector(
        network, image_shape=(48, 48, 3), max_proposals=3, max_detections=8
    )
    scenes = rng.uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    proposals = np.array(
        [[[0.0, 0.0, 0.6, 0.6], [0.3, 0.2, 1.0, 0.9], [-1.0] * 4]] * 2,
        "float32",
    )
    detections = _eager(detector, [scenes, proposals])
    assert detections["boxes"].shape == (2, 8, 4)
    assert np.all(detections["num_detections"] > 0)
    # The best detection is the best LSDA score of the network on a crop.
    crops = RegionCrops(SIZE, 0.1)(scenes, proposals[:, :2])
    crops = keras.ops.convert_to_numpy(crops).reshape(-1, SIZE, SIZE, 3)
    crop_logits = _class_logits(network, crops)
    scores = (crop_logits[:, :K] - crop_logits[:, K:]).reshape(2, -1)
    np.testing.assert_allclose(
        detections["confidence"][:, 0],
        1 / (1 + np.exp(-scores.max(axis=1))),
        rtol=1e-4,
        atol=1e-5,
    )

    # A `.keras` round trip in safe mode gives the same outputs.
    wanted = _eager(network, images)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "network.keras")
        network.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(_eager(restored, images), wanted)
