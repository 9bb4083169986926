"""Fast R-CNN-style scoring: one trunk pass per image, pooled regions."""

import math

import keras
from keras import ops

from keras_objectness.adaptation import find_background_head
from keras_objectness.layers.region_crops import check_crop_arguments
from keras_objectness.layers.region_crops import pad_regions
from keras_objectness.layers.region_pooling import RegionPooling

# Layers that keep each pixel where it is (pointwise in space).
_POINTWISE = ("Rescaling", "Normalization", "Activation", "ReLU",
              "LeakyReLU", "BatchNormalization", "LayerNormalization",
              "LocalResponseNormalization", "Dropout", "SpatialDropout2D",
              "GaussianNoise", "GaussianDropout", "Identity")  # fmt: skip


def shared_feature_detector(
    detection_network,
    image_shape,
    num_regions,
    context_padding=0.1,
    image_scales=(1.0,),
    sampling_ratio=2,
    output_mode="scores",
    split_layer_name=None,
    name="shared_feature_detector",
):
    """Scores proposals from one trunk pass per image (Fast R-CNN style).

    The detection network (a classifier with a `BackgroundHead`, from
    `keras_objectness.models.detection_network`) is split at its last
    spatial layer: the convolutional trunk runs once on the whole image,
    `keras_objectness.layers.RegionPooling` pools every proposal (grown by
    `context_padding`, as the per-crop path crops it) to the spatial size
    the trunk gives on a crop of the training size, and the layers after
    the split (flatten, fc6, fc7, ...) and the head run per region.

    The model calls the detection network's own layer objects: it shares
    their weights, so fine-tuning either model changes both, and
    `DetectorAdapter` / `adapt_classifier` find the same `BackgroundHead`.

    **Alignment.** The pooling bins are placed where the trunk's cells
    fall on a crop: cell `k` of a crop of side `S` looks at crop pixel
    `offset + stride * k` (read from the trunk's convolutions, paddings
    and poolings), and the pooled region is the one whose bin centres are
    those points mapped into the image's feature map. With a pointwise
    trunk and `sampling_ratio=1` this is exactly the per-crop computation.

    **Scale.** The trunk learned from objects resized to `S` pixels. With
    several `image_scales` the trunk runs on each resized image (an image
    pyramid) and each region is pooled from the level at which its padded
    size is nearest to `S` (SPP-net's choice); one scale other than `1.0`
    resizes the scene once.

    Args:
        detection_network: `keras.Model` from square crops to a
            `BackgroundHead` output.
        image_shape: `(height, width, channels)` of the images.
        num_regions: int. Proposals per image (static).
        context_padding: float >= 0. Context around each region, as in
            the per-crop path. Defaults to `0.1`.
        image_scales: tuple of positive floats. Pyramid levels, as factors
            of the image size. Defaults to `(1.0,)` (native scale).
        sampling_ratio: int. Bilinear samples per bin and side. Defaults
            to `2`.
        output_mode: `"scores"` (the LSDA scores `w_i . x - w_bg . x`, K
            per region, what `RegionDetections` takes) or `None` (the
            head's own mode, e.g. the `K + 1` probabilities to train on).
            Defaults to `"scores"`.
        split_layer_name: optional name of the trunk's last layer. Defaults
            to the last layer with a spatial (rank-4) output.
        name: str. Model name. Defaults to `"shared_feature_detector"`.

    Returns:
        A functional `keras.Model` from `[images (N, H, W, C), regions
        (N, num_regions, 4) relative yxyx]` to `(N, num_regions, K)`
        scores (or the head's output per region).

    Example:

    ```python
    scorer = shared_feature_detector(network, (128, 128, 3), 100)
    scores = scorer.predict([images, proposals])
    ```

    References:
        - [Girshick, 2015. Fast R-CNN](https://arxiv.org/abs/1504.08083).
        - [He et al., 2014. Spatial Pyramid Pooling in Deep Convolutional
          Networks for Visual Recognition](https://arxiv.org/abs/1406.4729).
    """
    # === Config ===
    head = find_background_head(detection_network)
    crop_shape = tuple(detection_network.inputs[0].shape[1:])
    if (
        len(crop_shape) != 3
        or crop_shape[0] is None
        or (crop_shape[0] != crop_shape[1])
    ):
        raise ValueError(
            "`detection_network` must take square crops of a known size. "
            f"Received: detection_network with input shape {crop_shape}"
        )
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in image_shape)
    ):
        raise ValueError(
            "`image_shape` must be `(height, width, channels)` of positive "
            f"ints. Received: image_shape={image_shape!r}"
        )
    if not isinstance(num_regions, int) or num_regions < 1:
        raise ValueError(
            "`num_regions` must be a positive integer. "
            f"Received: num_regions={num_regions!r}"
        )
    check_crop_arguments(crop_shape[0], context_padding)
    if (
        not isinstance(image_scales, (tuple, list))
        or not image_scales
        or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0
            for s in image_scales
        )
    ):
        raise ValueError(
            "`image_scales` must be a non-empty tuple of positive numbers. "
            f"Received: image_scales={image_scales!r}"
        )
    if output_mode not in ("scores", None):
        raise ValueError(
            "`output_mode` must be 'scores' or None. "
            f"Received: output_mode={output_mode!r}"
        )
    crop_size = crop_shape[0]
    trunk, chain = _split(detection_network, head, split_layer_name)
    pooled_shape = tuple(trunk.outputs[0].shape[1:])
    pool_size = pooled_shape[0]
    if pooled_shape[0] != pooled_shape[1]:
        raise ValueError(
            "The trunk's output on a crop must be square. Received: "
            f"{pooled_shape} at layer {trunk.outputs[0].name!r}"
        )
    offset, stride = _geometry(trunk, crop_size, pool_size)

    # === Functional Model ===
    images = keras.Input(image_shape, name=f"{name}_images")
    regions = keras.Input((num_regions, 4), name=f"{name}_regions")
    padded = pad_regions(ops.cast(regions, "float32"), context_padding)
    pooling = RegionPooling(
        pool_size, sampling_ratio, name=f"{name}_region_pooling"
    )
    pooled, sizes = [], []
    for scale in image_scales:
        height = max(1, round(image_shape[0] * scale))
        width = max(1, round(image_shape[1] * scale))
        level = images
        if (height, width) != tuple(image_shape[:2]):
            level = keras.layers.Resizing(
                height, width, name=f"{name}_resize_{height}x{width}"
            )(images)
        features = _replay(trunk, level)
        map_height, map_width = features.shape[1], features.shape[2]
        boxes = _feature_boxes(
            padded,
            (height, width),
            (map_height, map_width),
            crop_size,
            pool_size,
            offset,
            stride,
        )
        pooled.append(pooling(features, boxes))
        side = ops.sqrt(
            ops.maximum(padded[..., 2] - padded[..., 0], 0.0)
            * ops.maximum(padded[..., 3] - padded[..., 1], 0.0)
            * float(height * width)
        )
        sizes.append(ops.abs(ops.log(ops.maximum(side, 1e-3) / crop_size)))
    if len(pooled) == 1:
        regions_features = pooled[0]
    else:
        # SPP-net: each region from the level where it is nearest S px.
        choice = ops.one_hot(
            ops.argmin(ops.stack(sizes, axis=-1), axis=-1), len(pooled)
        )
        stacked = ops.stack(pooled, axis=-1)
        regions_features = ops.sum(
            stacked * choice[:, :, None, None, None, :], axis=-1
        )
    folded = ops.reshape(regions_features, (-1,) + pooled_shape)
    outputs = folded
    for layer in chain:
        outputs = layer(outputs)
    if output_mode == "scores":
        outputs = head(outputs, output_mode="scores")
    else:
        outputs = head(outputs)
    outputs = ops.reshape(outputs, (-1, num_regions, outputs.shape[-1]))
    return keras.Model([images, regions], outputs, name=name)


def _producer(tensor):
    history = tensor._keras_history
    layer = history.operation
    return layer, layer._inbound_nodes[history.node_index]


def _split(network, head, split_layer_name):
    """`(trunk, chain)`: a model to the split tensor, layers after it."""
    tensor = network.outputs[0]
    layer, node = _producer(tensor)
    if layer is not head:
        raise ValueError(
            "`detection_network` must end in its `BackgroundHead`. "
            f"Received: output from layer {layer.name!r}"
        )
    tensor = node.input_tensors[0]
    graph, chain = network, []
    while True:
        layer, node = _producer(tensor)
        if isinstance(layer, keras.Model):
            # Step into a nested model (the classifier's backbone).
            if len(layer.outputs) != 1:
                break
            graph, tensor = layer, layer.outputs[0]
            continue
        spatial = len(tensor.shape) == 4
        if (split_layer_name is None and spatial) or (
            split_layer_name is not None and layer.name == split_layer_name
        ):
            if not spatial:
                raise ValueError(
                    "`split_layer_name` must name a layer with a spatial "
                    "(batch, height, width, channels) output. Received: "
                    f"split_layer_name={split_layer_name!r}"
                )
            return _trunk(network, graph, tensor), chain[::-1]
        if len(node.input_tensors) != 1 or isinstance(
            layer, keras.layers.InputLayer
        ):
            break
        chain.append(layer)
        tensor = node.input_tensors[0]
    if split_layer_name is not None:
        raise ValueError(
            "`split_layer_name` must name a layer with a spatial output on "
            "the single-input path to the head. Received: "
            f"split_layer_name={split_layer_name!r}"
        )
    raise ValueError(
        "`detection_network` must reach its head from a spatial feature map "
        "through single-input layers (conv trunk -> flatten/dense -> head). "
        f"Received: stopped at layer {layer.name!r} "
        f"(split_layer_name={split_layer_name!r})"
    )


def _trunk(network, graph, tensor):
    if graph is not network:
        # The nested model must be called directly on the network's input.
        calls = [
            n
            for n in graph._inbound_nodes
            if n.input_tensors and n.input_tensors[0] is network.inputs[0]
        ]
        if not calls:
            raise ValueError(
                "The trunk's nested model must be called on the detection "
                f"network's input. Received: model {graph.name!r}"
            )
    return keras.Model(graph.inputs, tensor, name=f"{graph.name}_trunk")


def _replay(model, inputs):
    """Calls `model`'s layers (the same objects) on a new input tensor."""
    tensors = {id(model.inputs[0]): inputs}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in tensors for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            outputs = node.operation(*args, **kwargs)
            for x, y in zip(node.outputs, keras.tree.flatten(outputs)):
                tensors[id(x)] = y
    return tensors[id(model.outputs[0])]


def _geometry(trunk, crop_size, pool_size):
    """`(offset, stride)`: output cell `k` looks at input pixel `o + s k`.

    Read from a chain of convolutions, poolings, zero paddings and
    pointwise layers; otherwise cells are taken as spread evenly.
    """
    offset, stride = 0.0, 1.0
    size = crop_size
    for layer in trunk.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.InputLayer) or kind in _POINTWISE:
            continue
        if isinstance(layer, keras.layers.ZeroPadding2D):
            (top, bottom), _ = layer.padding
            offset -= stride * top
            size += top + bottom
            continue
        if isinstance(
            layer,
            (
                keras.layers.Conv2D,
                keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D,
            ),
        ):
            if isinstance(layer, keras.layers.Conv2D):
                kernel = layer.kernel_size[0]
                step = layer.strides[0]
                dilation = layer.dilation_rate[0]
            else:
                kernel, step, dilation = layer.pool_size[0], layer.strides[0], 1
            span = dilation * (kernel - 1) + 1
            if layer.padding == "valid":
                start = (span - 1) / 2
                size = (size - span) // step + 1
            else:
                remainder = size % step
                total = max(span - (step if remainder == 0 else remainder), 0)
                start = (span - 1) / 2 - total // 2
                size = math.ceil(size / step)
            offset += stride * start
            stride *= step
            continue
        # Unknown spatial layer: cells spread evenly over the crop.
        stride = crop_size / pool_size
        return (stride - 1) / 2, stride
    return offset, stride


def _feature_boxes(
    regions, image_size, map_size, crop_size, pool_size, offset, stride
):
    """Regions on the feature map whose bins sit where a crop's cells do.

    Along one axis, a crop of side `S` of the region `[y0, y1]` (relative)
    puts cell `k` at crop pixel `o + s k`, i.e. at image pixel
    `y0 H + (o + s k + 0.5) (y1 - y0) H / S - 0.5`; on the image's map it
    is cell `(pixel - o) / s`, relative `(cell + 0.5) / h`. The returned
    box has its `pool_size` bin centres at these points.
    """
    coordinates = []
    for axis in (0, 1):
        start, end = regions[..., axis], regions[..., axis + 2]
        size, cells = float(image_size[axis]), float(map_size[axis])
        extent = (end - start) * size
        first_pixel = start * size + (offset + 0.5) * extent / crop_size - 0.5
        first = ((first_pixel - offset) / stride + 0.5) / cells
        step = extent / (crop_size * cells)
        last = first + (pool_size - 0.5) * step
        coordinates.append((first - 0.5 * step, last))
    (y0, y1), (x0, x1) = coordinates
    return ops.stack([y0, x0, y1, x1], axis=-1)
