import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import BoxSpace
from keras_objectness.export import export_detector
from keras_objectness.models import ALEXNET_PRESETS
from keras_objectness.models import alexnet_backbone
from keras_objectness.models import detection_network
from keras_objectness.models import objectness_detector
from keras_objectness.models import objectness_inference_model
from keras_objectness.models import region_detector
from tests.lsda_helpers import DETECTION_CLASSES
from tests.lsda_helpers import NUM_CLASSES
from tests.lsda_helpers import tiny_classifier
from tests.subprocess_helpers import start_python
from tests.subprocess_helpers import wait_all
from tests.test_case import large

NAMES = tuple(f"class_{i}" for i in range(NUM_CLASSES))
# Uint8 images of two sizes, neither the detectors' own.
SIZES = ((20, 28), (48, 40))

# Serves every exported model with TensorFlow alone.
SERVE_SCRIPT = textwrap.dedent(
    """
    import sys

    # A serving process without Keras: with keras installed, a plain
    # `import tensorflow` imports it (TensorFlow's optional Keras hooks), so
    # it is made unimportable here; TensorFlow then skips those hooks and
    # nothing can fall back on Keras or keras_objectness code.
    BLOCKED = ("keras", "keras_objectness")
    for name in BLOCKED:
        sys.modules[name] = None
    import numpy as np
    import tensorflow as tf

    folder = sys.argv[1]
    inputs = np.load(f"{folder}/inputs.npz")
    results = {}
    for name in sys.argv[2:]:
        served = tf.saved_model.load(f"{folder}/{name}")
        for size in ("a", "b"):
            args = [tf.constant(inputs[f"images_{size}"])]
            if f"{name}_proposals" in inputs:
                args.append(tf.constant(inputs[f"{name}_proposals"]))
            outputs = served.serve(*args)
            for key, value in outputs.items():
                results[f"{name}/{size}/{key}"] = value.numpy()
    loaded = [
        m for m, module in sys.modules.items()
        if m.split(".")[0] in BLOCKED and module is not None
    ]
    if loaded:
        sys.exit(f"serving imported {loaded}")
    np.savez(f"{folder}/outputs.npz", **results)
    """
)


def _network():
    keras.utils.set_random_seed(0)
    return detection_network(tiny_classifier(), DETECTION_CLASSES)


def _proposer():
    keras.utils.set_random_seed(1)
    space = BoxSpace(grid_shape=(4, 4), scales=(0.3, 0.6))
    return objectness_detector(
        alexnet_backbone(**ALEXNET_PRESETS["alexnet_small_32"]), space
    )


def _images(size, count=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *size, 3)).astype("uint8")


def _proposals(count=2, max_proposals=5):
    rng = np.random.default_rng(4)
    corner = rng.uniform(0.0, 0.5, (count, max_proposals, 2))
    size = rng.uniform(0.2, 0.5, (count, max_proposals, 2))
    boxes = np.concatenate([corner, corner + size], axis=-1)
    boxes[:, -1] = -1.0  # one padding row
    return boxes.astype("float32")


def _keras_detections(model, images, proposals=None):
    shape = model.inputs[0].shape[1:3]
    resized = keras.ops.image.resize(images.astype("float32"), shape)
    if proposals is not None:
        proposals = keras.ops.convert_to_tensor(proposals)
    inputs = resized if proposals is None else [resized, proposals]
    # Eager call: the Keras model itself, no graph of its own to trace.
    outputs = model(inputs, training=False)
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


def _assert_same(served, expected, class_names=None):
    np.testing.assert_array_equal(
        served["num_detections"], expected["num_detections"]
    )
    for key in ("boxes", "confidence"):
        np.testing.assert_allclose(served[key], expected[key], atol=1e-5)
    if "classes" in expected:
        np.testing.assert_array_equal(served["classes"], expected["classes"])
    if class_names is not None:
        names = np.array(list(class_names) + [""], dtype=object)
        np.testing.assert_array_equal(
            served["class_names"].astype(str),
            names[expected["classes"]].astype(str),
        )


@large
def test_serves_from_a_process_without_keras(tmp_path):
    network, proposer = _network(), _proposer()
    with_proposer = region_detector(
        network, proposer=proposer, max_proposals=6, max_detections=20
    )
    given = region_detector(network, image_shape=(24, 24, 3), max_proposals=5)
    composed = region_detector(
        network, proposer=proposer, image_shape=(24, 24, 3), max_proposals=5
    )
    objectness = objectness_inference_model(proposer, max_detections=5)
    cases = {
        # name: (exported model, Keras reference, export kwargs)
        "with_proposer": (with_proposer, with_proposer, {"class_names": NAMES}),
        "given": (given, given, {}),
        "composed": (given, composed, {"proposer": proposer}),
        "objectness": (objectness, objectness, {}),
    }
    for name, (model, _, kwargs) in cases.items():
        written = export_detector(model, tmp_path / name, **kwargs)
        assert written == tmp_path / name
    images = {"a": _images(SIZES[0]), "b": _images(SIZES[1], seed=1)}
    np.savez(
        tmp_path / "inputs.npz",
        images_a=images["a"],
        images_b=images["b"],
        given_proposals=_proposals(),
    )
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    child = start_python([str(script), str(tmp_path), *cases])
    wait_all([child], "serving in a TensorFlow-only process", timeout=240)
    outputs = np.load(tmp_path / "outputs.npz", allow_pickle=True)
    for name, (_, reference, kwargs) in cases.items():
        for size in ("a", "b"):
            served = {
                key.split("/")[-1]: outputs[key]
                for key in outputs.files
                if key.startswith(f"{name}/{size}/")
            }
            proposals = _proposals() if name == "given" else None
            expected = _keras_detections(reference, images[size], proposals)
            keys = {"boxes", "confidence", "num_detections"}
            if name != "objectness":
                keys.add("classes")
            if "class_names" in kwargs:
                keys.add("class_names")
            assert set(served) == keys, name
            assert served["boxes"].shape[0] == 2
            _assert_same(served, expected, kwargs.get("class_names"))
    # Detections were found at all (not only padding compared).
    assert outputs["with_proposer/a/num_detections"].min() > 0


def test_signatures_and_objectness_detector(tmp_path):
    proposer = _proposer()
    export_detector(proposer, tmp_path / "raw")
    served = tf.saved_model.load(str(tmp_path / "raw"))
    signature = served.signatures["serve"]
    _, specs = signature.structured_input_signature
    assert list(specs) == ["images"]
    assert specs["images"].dtype == tf.uint8
    assert specs["images"].shape.as_list() == [None, None, None, 3]
    assert "serving_default" in served.signatures
    images = _images((32, 32))
    # A raw objectness_detector is decoded with BoxBinDecoder's defaults.
    expected = _keras_detections(objectness_inference_model(proposer), images)
    _assert_same(served.serve(tf.constant(images)), expected)

    network = _network()
    export_detector(
        region_detector(network, image_shape=(16, 16, 3), max_proposals=5),
        tmp_path / "given",
    )
    _, specs = (
        tf.saved_model.load(str(tmp_path / "given"))
        .signatures["serve"]
        .structured_input_signature
    )
    assert sorted(specs) == ["images", "proposals"]
    assert specs["proposals"].shape.as_list() == [None, 5, 4]


def test_objectness_model_export_takes_the_image_tensor(tmp_path):
    # `objectness_inference_model` has one input tensor, not a list of one:
    # Keras' own `model.export` serves the images directly.
    model = objectness_inference_model(_proposer(), max_detections=3)
    assert not isinstance(model._inputs_struct, (list, tuple))
    model.export(str(tmp_path / "plain"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "plain"))
    images = _images((32, 32)).astype("float32")
    outputs = served.serve(tf.constant(images))
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(outputs["boxes"], expected["boxes"], atol=1e-6)


def test_onnx_refused_without_writing(tmp_path):
    path = tmp_path / "detector.onnx"
    with pytest.raises(ValueError, match="Bitcast"):
        export_detector(_proposer(), path, format="onnx")
    assert not path.exists()


def test_bad_arguments(tmp_path):
    network, proposer = _network(), _proposer()
    given = region_detector(network, image_shape=(16, 16, 3), max_proposals=5)
    with_proposer = region_detector(network, proposer=proposer)
    path = tmp_path / "model"
    with pytest.raises(ValueError, match="`format` must be one of"):
        export_detector(given, path, format="tflite")
    with pytest.raises(ValueError, match="`detector` must be a functional"):
        export_detector("model", path)
    with pytest.raises(ValueError, match="must return a dict"):
        export_detector(tiny_classifier(), path)
    with pytest.raises(ValueError, match="class-generic"):
        export_detector(proposer, path, class_names=NAMES)
    with pytest.raises(ValueError, match="one name per class \\(6\\)"):
        export_detector(given, path, class_names=NAMES[:3])
    with pytest.raises(TypeError, match="sequence of strings"):
        export_detector(given, path, class_names="cat")
    with pytest.raises(TypeError, match="sequence of strings"):
        export_detector(given, path, class_names=(1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="finds its own"):
        export_detector(with_proposer, path, proposer=proposer)
    with pytest.raises(ValueError, match="`proposer` must be a functional"):
        export_detector(given, path, proposer=3)
    xyxy = objectness_inference_model(
        proposer, bounding_box_format="xyxy", image_shape=(32, 32)
    )
    with pytest.raises(ValueError, match="relative yxyx"):
        export_detector(xyxy, path)
    gray = objectness_detector(
        alexnet_backbone(
            **dict(ALEXNET_PRESETS["alexnet_small_32"], input_shape=(32, 32, 1))
        ),
        BoxSpace(grid_shape=(4, 4)),
    )
    with pytest.raises(ValueError, match="RGB images"):
        export_detector(gray, path)
    assert not path.exists()
