"""SavedModel export of detectors: uint8 images in, detections out."""

import keras

from keras_objectness.layers.background_head import BackgroundHead
from keras_objectness.layers.box_bin_decoder import BoxBinDecoder
from keras_objectness.layers.box_bin_softmax import BoxBinSoftmax
from keras_objectness.models.objectness_detector import (
    objectness_inference_model,
)

_FORMATS = ("tf_saved_model", "onnx")
_GENERIC_KEYS = ("boxes", "confidence", "num_detections")
_ONNX_REASON = (
    "`format='onnx'` is not supported: the detectors' non-max suppression "
    "has not been shown to convert. keras-cv's `NonMaxSuppression` (inside "
    "`BoxBinDecoder`, and inside `RegionDetections` for vocabularies above "
    "its classes per region) lowers `keras.ops.argmax` to TensorFlow "
    "`Bitcast` and `BitwiseAnd` ops that tf2onnx (1.17) cannot convert, yet "
    "it still writes a file (exit status 0) that onnxruntime refuses; "
    "TensorFlow's per-class NMS kernel, which `RegionDetections` runs "
    "otherwise, has not been checked with onnxruntime. Export "
    "`format='tf_saved_model'` (servable with TensorFlow alone), or convert "
    "the network without NMS (e.g. the `objectness_detector` or the "
    "detection network) and run NMS outside. Received: format='onnx'"
)


def export_detector(
    detector,
    path,
    class_names=None,
    proposer=None,
    proposal_iou_threshold=0.5,
    format="tf_saved_model",
):
    """Writes a detector as a SavedModel that serves uint8 images.

    The SavedModel's `serve` signature (also `serving_default`) takes
    `images`, uint8 `[N, H, W, 3]` of any `H` and `W`, resizes them
    bilinearly (no antialiasing, as `keras.layers.Resizing`) to the
    detector's input size, runs the detector with its non-max suppression
    and returns a dict:

    - `"boxes"`: float32 `[N, D, 4]`, relative yxyx (`[0, 1]` of the
      original image, whatever its size), padding rows `-1`;
    - `"confidence"`: float32 `[N, D]`, padding `-1`;
    - `"num_detections"`: int32 `[N]`;
    - `"classes"`: int32 `[N, D]`, padding `-1` (not for class-generic
      objectness models);
    - `"class_names"`: string `[N, D]`, padding `""` (when `class_names`
      is given).

    `D` is the detector's `max_detections`. The file needs only TensorFlow
    to serve: `tf.saved_model.load(path).serve(images)` works in a process
    that imports neither Keras nor keras_objectness.

    Detectors:

    - an objectness model: `objectness_inference_model(...)`, or an
      `objectness_detector` (then decoded with `BoxBinDecoder`'s defaults);
      class-generic, so no `classes` and no `class_names`;
    - a `region_detector` built with a proposer (one image input);
    - a `region_detector` without one (inputs `[images, proposals]`):
      either pass `proposer` to compose it in (the signature then takes
      only `images`), or leave it out and the signature takes a second
      input `proposals`, float32 `[N, P, 4]` relative yxyx boxes padded
      with rows of `-1`, `P` the detector's `max_proposals` (e.g. selective
      search boxes computed by the client).

    Args:
        detector: `keras.Model`, one of the detectors above.
        path: str or path-like. Folder to write the SavedModel to.
        class_names: optional sequence of `num_classes` strings, one per
            class id. Defaults to `None`: no `"class_names"` output.
        proposer: optional objectness model composed in front of a
            detector that takes proposals: an `objectness_detector` (decoded
            to `P` proposals with NMS at `proposal_iou_threshold`, as
            `region_detector` does) or an `objectness_inference_model`
            (its boxes, cut or padded with `-1` to `P`). Its input is the
            image resized to its own input size. Defaults to `None`.
        proposal_iou_threshold: float. NMS overlap among proposals when
            `proposer` is an `objectness_detector`. Defaults to `0.5`.
        format: `"tf_saved_model"`. `"onnx"` raises a `ValueError` that says
            why (the NMS does not convert). Defaults to `"tf_saved_model"`.

    Returns:
        The `path` written.

    Example:

    ```python
    export_detector(detector, "detector_savedmodel", class_names=names)
    # In a serving process, with TensorFlow only:
    served = tf.saved_model.load("detector_savedmodel")
    detections = served.serve(tf.constant(uint8_images))
    ```
    """
    if format not in _FORMATS:
        raise ValueError(
            f"`format` must be one of {_FORMATS}. Received: format={format!r}"
        )
    if format == "onnx":
        raise ValueError(_ONNX_REASON)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`export_detector` writes a TensorFlow SavedModel and needs the "
            "TensorFlow backend (`KERAS_BACKEND=tensorflow`). Received: "
            f"backend={keras.backend.backend()!r}"
        )
    detector = _as_detector(detector, "detector")
    takes_proposals = len(detector.inputs) == 2
    image_input = detector.inputs[0]
    if len(image_input.shape) != 4 or image_input.shape[-1] not in (3, None):
        raise ValueError(
            "`detector` must take RGB images `(batch, height, width, 3)`. "
            f"Received: detector with image input shape {image_input.shape}"
        )
    max_proposals = None
    if takes_proposals:
        proposal_shape = tuple(detector.inputs[1].shape)
        if len(proposal_shape) != 3 or proposal_shape[-1] != 4:
            raise ValueError(
                "The second input of `detector` must be proposals "
                "`(batch, max_proposals, 4)`, as `region_detector` builds "
                "it. Received: proposals input shape "
                f"{detector.inputs[1].shape}"
            )
        max_proposals = proposal_shape[1]
    if proposer is not None:
        if not takes_proposals:
            raise ValueError(
                "`proposer` is only for a detector that takes "
                "`[images, proposals]`; this detector finds its own "
                f"proposals. Received: proposer={_name(proposer)!r} with "
                f"detector={detector.name!r}"
            )
        proposer = _as_proposer(proposer, max_proposals, proposal_iou_threshold)
    has_classes = "classes" in detector.output
    names = _check_class_names(class_names, detector, has_classes)
    serve = _serving_function(detector, proposer, max_proposals, names)
    return _write(detector, proposer, serve, path, takes_proposals)


def _as_detector(model, argument):
    """The model as a dict-output detector (objectness models decoded)."""
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            f"`{argument}` must be a functional `keras.Model` detector "
            "(`objectness_inference_model`, `objectness_detector` or "
            f"`region_detector`). Received: {argument}={model!r}"
        )
    output = model.output
    if not isinstance(output, dict) and any(
        isinstance(layer, BoxBinSoftmax) for layer in model.layers
    ):
        model = objectness_inference_model(model)
        output = model.output
    if (
        not isinstance(output, dict)
        or not set(_GENERIC_KEYS) <= set(output)
        or len(model.inputs) not in (1, 2)
    ):
        raise ValueError(
            f"`{argument}` must return a dict with "
            f"{', '.join(_GENERIC_KEYS)} (and `classes`), from images (and "
            "proposals). Received: "
            f"{argument}={model.name!r} with outputs "
            f"{sorted(output) if isinstance(output, dict) else output} and "
            f"{len(model.inputs)} inputs"
        )
    for layer in model.layers:
        if isinstance(layer, BoxBinDecoder) and layer._format != "rel_yxyx":
            raise ValueError(
                f"`{argument}` must return relative yxyx boxes; build its "
                "`objectness_inference_model` without `bounding_box_format`. "
                f"Received: bounding_box_format={layer.bounding_box_format!r}"
            )
    return model


def _as_proposer(proposer, max_proposals, iou_threshold):
    if isinstance(proposer, keras.Model) and any(
        isinstance(layer, BoxBinSoftmax) for layer in proposer.layers
    ):
        proposer = objectness_inference_model(
            proposer, max_detections=max_proposals, iou_threshold=iou_threshold
        )
    proposer = _as_detector(proposer, "proposer")
    if len(proposer.inputs) != 1:
        raise ValueError(
            "`proposer` must take images only. Received: "
            f"proposer={proposer.name!r} with {len(proposer.inputs)} inputs"
        )
    return proposer


def _check_class_names(class_names, detector, has_classes):
    if class_names is None:
        return None
    if not has_classes:
        raise ValueError(
            "`class_names` must be `None` for a class-generic detector "
            f"(it returns no classes). Received: class_names={class_names!r}"
        )
    if isinstance(class_names, (str, bytes)) or not all(
        isinstance(name, str) for name in _iterate(class_names)
    ):
        raise TypeError(
            "`class_names` must be a sequence of strings, one per class. "
            f"Received: class_names={class_names!r}"
        )
    names = tuple(class_names)
    num_classes = _num_classes(detector)
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"`class_names` must hold one name per class ({num_classes}). "
            f"Received: {len(names)} names"
        )
    return names


def _iterate(values):
    try:
        return list(values)
    except TypeError:
        return [None]


def _num_classes(detector):
    """`num_classes` of the detector's `BackgroundHead`, if it has one."""
    # Walks nested models and wrappers (`layers` and `layer` attributes).
    stack, seen = [detector], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, BackgroundHead):
            return layer.num_classes
        stack.extend(getattr(layer, "layers", ()) or ())
        if isinstance(getattr(layer, "layer", None), keras.layers.Layer):
            stack.append(layer.layer)
    return None


def _serving_function(detector, proposer, max_proposals, class_names):
    import tensorflow as tf

    image_shape = detector.inputs[0].shape[1:3]
    image_dtype = detector.inputs[0].dtype

    def resize(images, shape):
        if None in tuple(shape):
            return images
        return tf.image.resize(images, tuple(shape), method="bilinear")

    def serve(images, proposals=None):
        images = resize(tf.cast(images, "float32"), image_shape)
        images = tf.cast(images, image_dtype)
        if proposer is not None:
            proposer_images = resize(images, proposer.inputs[0].shape[1:3])
            proposer_images = tf.cast(proposer_images, proposer.inputs[0].dtype)
            boxes = proposer(proposer_images, training=False)["boxes"]
            proposals = _fit_proposals(tf.cast(boxes, "float32"), max_proposals)
        if proposals is None:
            outputs = detector(images, training=False)
        else:
            outputs = detector([images, proposals], training=False)
        result = {
            "boxes": tf.cast(outputs["boxes"], "float32"),
            "confidence": tf.cast(outputs["confidence"], "float32"),
            "num_detections": tf.cast(outputs["num_detections"], "int32"),
        }
        if "classes" in outputs:
            classes = tf.cast(outputs["classes"], "int32")
            result["classes"] = classes
            if class_names is not None:
                result["class_names"] = _lookup(classes, class_names)
        return result

    return serve


def _fit_proposals(boxes, max_proposals):
    """Cuts or pads (rows of `-1`) `(batch, n, 4)` boxes to `max_proposals`."""
    import tensorflow as tf

    boxes = boxes[:, :max_proposals]
    missing = max_proposals - tf.shape(boxes)[1]
    boxes = tf.pad(boxes, [[0, 0], [0, missing], [0, 0]], constant_values=-1)
    return tf.ensure_shape(boxes, (None, max_proposals, 4))


def _lookup(classes, class_names):
    import tensorflow as tf

    names = tf.constant(class_names + ("",), dtype=tf.string)
    # Padding (-1) and any id past the names read the trailing "".
    index = tf.where(
        (classes >= 0) & (classes < len(class_names)),
        classes,
        len(class_names),
    )
    return tf.gather(names, index)


def _write(detector, proposer, serve, path, takes_proposals):
    import tensorflow as tf

    signature = [tf.TensorSpec((None, None, None, 3), tf.uint8, "images")]
    function = serve
    if takes_proposals and proposer is None:
        shape = (None, detector.inputs[1].shape[1], 4)
        signature.append(tf.TensorSpec(shape, tf.float32, "proposals"))
    else:

        def function(images):
            return serve(images)

    # A plain `tf.Module` holding the variables and one function, traced
    # once (Keras' `ExportArchive` traces the endpoint three times, and
    # each trace of keras-cv's NMS takes seconds); saving a concrete
    # function, not the `tf.function`, keeps `save` from tracing again.
    module = tf.Module()
    models = [detector] + ([proposer] if proposer is not None else [])
    module.model_variables = [v for m in models for v in m.variables]
    concrete = tf.function(
        function, input_signature=signature, autograph=False
    ).get_concrete_function()
    module.serve = concrete
    tf.saved_model.save(
        module,
        str(path),
        signatures={"serve": concrete, "serving_default": concrete},
    )
    return path


def _name(model):
    return getattr(model, "name", model)
