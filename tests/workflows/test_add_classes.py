"""`add_classes`: new classes from image labels, old classes untouched."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_objectness as ko
from keras_objectness.adaptation import find_background_head
from keras_objectness.workflows import vocabulary
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import tiny_classifier

K = NUM_CLASSES
NAMES = tuple(f"old_{i}" for i in range(K))


def tiny_detector(seed=0, class_names=NAMES):
    """A 6-class detector on 8x8 images whose B columns moved from W^c."""
    keras.utils.set_random_seed(seed)
    split = ko.ClassSplit(K, DETECTION_CLASSES, class_names=class_names)
    network = ko.models.detection_network(tiny_classifier(), split)
    head = find_background_head(network)
    head.take_snapshot()
    rng = np.random.default_rng(seed)
    kernel = keras.ops.convert_to_numpy(head.kernel).copy()
    bias = keras.ops.convert_to_numpy(head.bias).copy()
    # "Fine-tuning": B's columns and the background move.
    moved = list(DETECTION_CLASSES) + [K]
    kernel[:, moved] += rng.normal(0, 0.3, (kernel.shape[0], len(moved)))
    bias[moved] += rng.normal(0, 0.3, len(moved))
    head.kernel.assign(kernel)
    head.bias.assign(bias)
    return network


def new_examples(count=24, num_new=2, seed=1):
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_new
    # Each new class has its own mean image: learnable.
    means = rng.normal(0, 2, (num_new, 8, 8, 3))
    images = means[labels] + rng.normal(0, 0.5, (count, 8, 8, 3))
    return images.astype("float32"), labels.astype("int32")


def _test_input(seed=2, count=16):
    return (
        np.random.default_rng(seed)
        .normal(size=(count, 8, 8, 3))
        .astype("float32")
    )


@pytest.fixture(scope="module")
def detector():
    return tiny_detector()


@pytest.fixture(scope="module")
def grown(detector):
    return ko.add_classes(detector, new_examples(), ("new_a", "new_b"), knn=2)


def _scores(network, x):
    return ko.workflows.region_scores_model(network).predict(x, verbose=0)


def _logits(network, x):
    head = find_background_head(network)
    logits = head(head.input, output_mode="logits")
    return keras.Model(network.inputs, logits).predict(x, verbose=0)


def _weights(network):
    return [keras.ops.convert_to_numpy(w) for w in network.weights]


# The old columns' weights are bit for bit the same (tested below), so the
# old scores are the same dot products; only the matrix product over a
# wider kernel may sum them in another order on some CPUs' kernels (one
# float32 rounding step, 1.2e-7 here), so they are compared to that.
SAME_PRODUCT = dict(rtol=1e-6, atol=1e-6)


def test_existing_scores_are_unchanged(detector, grown):
    x = _test_input()
    before, after = _scores(detector, x), _scores(grown, x)
    assert after.shape == (len(x), K + 2)
    np.testing.assert_allclose(after[:, :K], before, **SAME_PRODUCT)
    # The new classes score something of their own.
    assert np.abs(after[:, K:]).max() > 0
    # Logits of the old classes and the background are identical too; the
    # softmax over K + n + 1 units is not (the new classes take mass).
    old, new = _logits(detector, x), _logits(grown, x)
    np.testing.assert_allclose(new[:, :K], old[:, :K], **SAME_PRODUCT)
    np.testing.assert_allclose(new[:, -1], old[:, -1], **SAME_PRODUCT)
    probabilities = grown.predict(x, verbose=0)
    assert probabilities.shape == (len(x), K + 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_old_weights_kept_new_columns_before_background(detector, grown):
    head, big = find_background_head(detector), find_background_head(grown)
    kernel, bias = (
        keras.ops.convert_to_numpy(w) for w in (head.kernel, head.bias)
    )
    big_kernel = keras.ops.convert_to_numpy(big.kernel)
    big_bias = keras.ops.convert_to_numpy(big.bias)
    np.testing.assert_array_equal(big_kernel[:, :K], kernel[:, :K])
    np.testing.assert_array_equal(big_kernel[:, -1], kernel[:, -1])
    np.testing.assert_array_equal(big_bias[:K], bias[:K])
    np.testing.assert_array_equal(big_bias[-1], bias[-1])
    w_c = keras.ops.convert_to_numpy(big.classification_kernel)
    np.testing.assert_array_equal(
        w_c[:, :K], keras.ops.convert_to_numpy(head.classification_kernel)
    )
    assert w_c.shape == (kernel.shape[0], K + 2)
    assert big.has_snapshot
    assert big.num_classes == K + 2
    assert big.detection_classes == DETECTION_CLASSES
    assert big.heldout_classes == (2, 4, 5, 6, 7)
    assert big.class_names == NAMES + ("new_a", "new_b")
    assert vocabulary.head_class_names(grown)[-1] == "new_b"
    assert grown.name == detector.name


def test_detection_columns_are_lsda_offsets(detector, grown):
    head, big = find_background_head(detector), find_background_head(grown)
    numpy = keras.ops.convert_to_numpy
    w_c, b_c = (
        numpy(head.classification_kernel),
        numpy(head.classification_bias),
    )
    w_d, b_d = numpy(head.kernel), numpy(head.bias)
    new_c = numpy(big.classification_kernel)[:, K:]
    new_b = numpy(big.classification_bias)[K:]
    b = list(DETECTION_CLASSES)
    unit = lambda m: m / np.linalg.norm(m, axis=0, keepdims=True)  # noqa: E731
    for j in range(2):
        distance = np.linalg.norm(
            unit(w_c[:, b]) - unit(new_c[:, j : j + 1]), axis=0
        )
        near = [b[i] for i in np.argsort(distance, kind="stable")[:2]]
        offset = (w_d[:, near] - w_c[:, near]).mean(axis=1)
        np.testing.assert_allclose(
            numpy(big.kernel)[:, K + j], new_c[:, j] + offset, atol=1e-5
        )
        np.testing.assert_allclose(
            numpy(big.bias)[K + j],
            new_b[j] + (b_d[near] - b_c[near]).mean(),
            atol=1e-5,
        )
    plain = ko.add_classes(
        detector, new_examples(), ("new_a", "new_b"), adaptation="none"
    )
    plain_head = find_background_head(plain)
    np.testing.assert_array_equal(
        numpy(plain_head.kernel)[:, K : K + 2],
        numpy(plain_head.classification_kernel)[:, K:],
    )
    # The fit does not depend on the adaptation.
    np.testing.assert_array_equal(
        numpy(plain_head.classification_kernel),
        numpy(big.classification_kernel),
    )


def test_new_columns_recognise_their_images(detector, grown):
    images, labels = new_examples(count=24, seed=1)
    head = find_background_head(grown)
    features = keras.Model(grown.inputs[0], head.input)(images)
    logits = keras.ops.convert_to_numpy(
        keras.ops.matmul(features, head.classification_kernel)
        + head.classification_bias
    )
    # Against all K + 2 classifier columns, the new classes win on their
    # own images (what the fit optimises).
    np.testing.assert_array_equal(logits.argmax(-1), labels + K)


def test_same_inputs_same_weights_and_input_untouched(detector, grown):
    before = _weights(detector)
    again = ko.add_classes(detector, new_examples(), ("new_a", "new_b"), knn=2)
    for a, b in zip(_weights(again), _weights(grown), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_weights(detector), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # copy_network=True (default): nothing shared; False: the backbone is.
    ids = {id(w) for w in detector.weights}
    assert not ids & {id(w) for w in again.weights}
    shared = ko.add_classes(
        detector, new_examples(), ("new_a", "new_b"), knn=2, copy_network=False
    )
    assert len(ids & {id(w) for w in shared.weights}) == len(ids) - 5
    np.testing.assert_array_equal(
        _scores(shared, _test_input()), _scores(grown, _test_input())
    )


def test_datasets_give_the_same_columns_as_arrays(detector, grown):
    images, labels = new_examples()
    for dataset in (
        tf.data.Dataset.from_tensor_slices((images, labels)),
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(5),
    ):
        result = ko.add_classes(detector, dataset, ("new_a", "new_b"), knn=2)
        for a, b in zip(_weights(result), _weights(grown), strict=True):
            np.testing.assert_array_equal(a, b)


def test_keras_round_trip_and_growing_twice(grown, tmp_path):
    x = _test_input()
    path = tmp_path / "grown.keras"
    grown.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), grown.predict(x, verbose=0)
    )
    head = find_background_head(restored)
    assert head.class_names == NAMES + ("new_a", "new_b")
    assert head.has_snapshot
    images, labels = new_examples(count=6, num_new=1, seed=4)
    twice = ko.add_classes(restored, (images, labels), ["new_c"], knn="all")
    np.testing.assert_array_equal(
        _scores(twice, x)[:, : K + 2], _scores(grown, x)
    )
    assert find_background_head(twice).class_names[-1] == "new_c"


def test_reference_examples_push_new_columns_down(detector):
    images, labels = new_examples()
    rng = np.random.default_rng(7)
    others = rng.normal(size=(24, 8, 8, 3)).astype("float32")
    other_labels = np.arange(24) % K
    with pytest.warns(UserWarning, match="reference_examples"):
        plain = ko.add_classes(detector, (images, labels), ("a", "b"), knn=2)
    with warnings.catch_warnings():
        # No such warning with contrast images.
        warnings.filterwarnings("error", message=".*reference_examples")
        contrast = ko.add_classes(
            detector,
            (images, labels),
            ("a", "b"),
            knn=2,
            reference_examples=(others, other_labels),
        )
    s_plain = _scores(plain, others)[:, K:]
    s_contrast = _scores(contrast, others)[:, K:]
    assert s_contrast.mean() < s_plain.mean()


def test_names_of_a_head_without_names(tmp_path):
    detector = tiny_detector(class_names=None)
    images, labels = new_examples()
    grown = ko.add_classes(detector, (images, labels), ("x", "y"), knn=2)
    assert find_background_head(grown).class_names == (
        "0", "1", "2", "3", "4", "5", "x", "y"
    )  # fmt: skip
    names = tuple("abcdef")
    grown = ko.add_classes(
        detector, (images, labels), ("x", "y"), knn=2,
        existing_class_names=names,
    )  # fmt: skip
    assert find_background_head(grown).class_names == names + ("x", "y")
    with pytest.raises(ValueError, match="`class_names` must be new.*'3'"):
        ko.add_classes(detector, (images, labels), ("3", "y"), knn=2)


@pytest.mark.parametrize(
    "change, argument, message",
    [
        (dict(class_names=("old_2", "new")), "class_names",
         "already has 'old_2'"),
        (dict(class_names=("a", "a")), "class_names", "distinct"),
        (dict(class_names=()), "class_names", "at least one"),
        (dict(class_names="ab"), "class_names", "sequence"),
        (dict(class_names=("a", "b", "c")), "examples", "no images of 'c'"),
        (dict(labels=np.zeros(24, "int32")), "examples", "no images of 'b'"),
        (dict(labels=np.arange(24) % 3), "examples", r"in \[0, 2\)"),
        (dict(labels=np.zeros(5, "int32")), "examples", "one label per image"),
        (dict(labels=np.zeros(24, "float32")), "examples", "integers"),
        (dict(images=np.zeros((24, 9, 9, 3), "float32")), "examples",
         r"input shape.*\(8, 8, 3\).*\(24, 9, 9, 3\)"),
        (dict(images=np.zeros((0, 8, 8, 3)), labels=np.zeros(0, "int32")),
         "examples", "at least one image|not be empty"),
        (dict(knn=4), "knn", "between 1 and"),
        (dict(adaptation="mean"), "adaptation", "one of"),
        (dict(steps=0), "steps", "positive"),
        (dict(l2=-1.0), "l2", ">= 0"),
        (dict(learning_rate=0.0), "learning_rate", "> 0"),
        (dict(copy_network=1), "copy_network", "bool"),
        (dict(existing_class_names=("a",)), "existing_class_names",
         "6 distinct"),
        (dict(reference_examples=(np.zeros((2, 8, 8, 3)), np.array([0, 6]))),
         "reference_examples", r"in \[0, 6\)"),
    ],
)  # fmt: skip
def test_bad_inputs_name_the_argument(detector, change, argument, message):
    images, labels = new_examples()
    kwargs = dict(class_names=("a", "b"), knn=2)
    images = change.pop("images", images)
    labels = change.pop("labels", labels)
    kwargs.update(change)
    with pytest.raises(ValueError, match=f"`{argument}`.*({message})"):
        ko.add_classes(detector, (images, labels), **kwargs)


def test_bad_networks_and_example_types(detector):
    images, labels = new_examples()
    unsnapped = ko.models.detection_network(
        tiny_classifier(), DETECTION_CLASSES
    )
    with pytest.raises(ValueError, match="no snapshot"):
        ko.add_classes(unsnapped, (images, labels), ("a", "b"))
    wrapped = keras.Model(
        detector.inputs, keras.layers.Identity()(detector.output)
    )
    with pytest.raises(ValueError, match="output must be its `BackgroundHead`"):
        ko.add_classes(wrapped, (images, labels), ("a", "b"))
    with pytest.raises(ValueError, match="`examples` must be a tuple"):
        ko.add_classes(detector, images, ("a", "b"), knn=2)
    with pytest.raises(ValueError, match="`examples` must be a dataset of"):
        ko.add_classes(
            detector,
            tf.data.Dataset.from_tensor_slices(images),
            ("a", "b"),
            knn=2,
        )


def test_fit_class_columns_lowers_the_loss_deterministically():
    rng = np.random.default_rng(3)
    features = np.abs(rng.normal(size=(40, 8))).astype("float32")
    labels = 4 + np.arange(40) % 2
    features[labels == 5, :4] += 2.0
    w_c = rng.normal(0, 0.3, (8, 4)).astype("float32")
    b_c = np.zeros(4, "float32")
    kernel, bias, loss = vocabulary.fit_class_columns(
        features, labels, w_c, b_c, num_new_classes=2, steps=100
    )
    assert kernel.shape == (8, 2) and bias.shape == (2,)
    # From zeros the new logits are 0; the fit must do better than that.
    zero = np.concatenate([features @ w_c + b_c, np.zeros((40, 2))], 1)
    zero_loss = -np.mean(
        zero[np.arange(40), labels] - np.log(np.exp(zero).sum(1))
    )
    assert loss < 0.5 * zero_loss
    again = vocabulary.fit_class_columns(
        features, labels, w_c, b_c, num_new_classes=2, steps=100
    )
    np.testing.assert_array_equal(again[0], kernel)
    assert again[2] == loss
    with pytest.raises(ValueError, match="`num_new_classes`"):
        vocabulary.fit_class_columns(features, labels, w_c, b_c, 0)
