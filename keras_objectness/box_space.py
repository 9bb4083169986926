"""The discretised 4-D box space of class-generic objectness."""

import math

import keras
import numpy as np

from keras_objectness import _checks
from keras_objectness import box_utils
from keras_objectness._ops import ops

# sqrt(area) as a fraction of the image: 0.125 .. 0.9, a factor sqrt(2) apart.
DEFAULT_SCALES = (0.125, 0.177, 0.25, 0.354, 0.5, 0.707, 0.9)
DEFAULT_ASPECT_RATIOS = (0.5, 0.707, 1.0, 1.414, 2.0)


@keras.saving.register_keras_serializable(package="keras_objectness")
class BoxSpace:
    """A discretised space of boxes: centre (y, x), scale and aspect ratio.

    Each bin is one box. Centres lie on a regular `grid_shape` grid over the
    image (bin `i` of `n` is centred at `(i + 0.5) / n`); the scale of a box
    is `sqrt(width * height)` and its aspect ratio `width / height`, both
    measured in relative image coordinates. Bins are flattened in the order
    `(y, x, scale, aspect_ratio)`, aspect ratio fastest.

    Boxes map to *continuous bin coordinates*: centres linearly, scales and
    aspect ratios piecewise-linearly in log space between the given values,
    so that the coordinate `i` is exactly `scales[i]` and the nearest bin is
    found by rounding. `GaussianBoxTargets` places its Gaussians in these
    coordinates.

    Args:
        grid_shape: tuple of two ints. Number of centre bins along y and x.
            Defaults to `(16, 16)`.
        scales: tuple of floats. Strictly increasing box scales in `(0, 1]`
            (`sqrt(width * height)` relative to the image). Defaults to seven
            values from 0.125 to 0.9, a factor `sqrt(2)` apart.
        aspect_ratios: tuple of floats. Strictly increasing positive
            `width / height` ratios. Defaults to `(0.5, 0.707, 1, 1.414, 2)`.
        bounding_box_format: str. The Keras box format of boxes passed to
            and returned by `encode`/`decode`, e.g. `"rel_yxyx"` or
            `"xyxy"`. Defaults to `"rel_yxyx"`.
        image_shape: optional `(height, width)`. Required for absolute box
            formats; ignored by relative ones. Defaults to `None`.

    Example:

    ```python
    space = keras_objectness.BoxSpace()
    coordinates, bins = space.encode([[0.1, 0.2, 0.5, 0.6]])
    boxes = space.decode(bins)  # the box of the nearest bin
    space.quantization_report()["worst_case_iou"]
    ```

    References:
        - [Huval, Coates and Ng, 2013. Deep learning for class-generic
          object detection](https://arxiv.org/abs/1312.6885), section 3.2.
    """

    def __init__(
        self,
        grid_shape=(16, 16),
        scales=DEFAULT_SCALES,
        aspect_ratios=DEFAULT_ASPECT_RATIOS,
        bounding_box_format="rel_yxyx",
        image_shape=None,
    ):
        self.grid_shape = _validate_grid_shape(grid_shape)
        self.scales = _validate_increasing(scales, "scales", upper=1.0)
        self.aspect_ratios = _validate_increasing(
            aspect_ratios, "aspect_ratios"
        )
        self.bounding_box_format = _checks.check_bounding_box_format(
            bounding_box_format
        )
        self.image_shape = _checks.check_image_shape(
            image_shape, bounding_box_format
        )
        self.bins_shape = (
            *self.grid_shape,
            len(self.scales),
            len(self.aspect_ratios),
        )
        self.num_bins = math.prod(self.bins_shape)
        self._log_scales = np.log(np.asarray(self.scales, "float32"))
        self._log_aspect_ratios = np.log(
            np.asarray(self.aspect_ratios, "float32")
        )

    # ------------------------------------------------------------------
    # Encoding and decoding.

    def encode(self, boxes, bounding_box_format=None, image_shape=None):
        """Maps boxes to continuous bin coordinates and nearest bins.

        Boxes are not clipped. Bad boxes follow the package rule
        (`keras_objectness.box_utils`): in eager calls a box with a NaN or
        infinite coordinate or an inverted box (max < min) raises a
        `ValueError`; inside graphs such a box gets the bin index `-1`
        (which `decode` turns into NaN boxes) and NaN coordinates. Zero-area
        boxes (padding rows of `-1`, say) encode like tiny boxes.

        Args:
            boxes: array of shape `(..., 4)` in `bounding_box_format`.
            bounding_box_format: optional format overriding the space's.
            image_shape: optional `(height, width)` overriding the space's.

        Returns:
            `(coordinates, bin_indices)`: float32 `(..., 4)` continuous bin
            coordinates ordered `(y, x, scale, aspect_ratio)`, and int32
            `(...)` flat indices of the nearest bins.
        """
        box_utils.check_real_dtype(boxes, "boxes")
        boxes = ops.convert_to_tensor(boxes)
        boxes = self._to_rel_yxyx(boxes, bounding_box_format, image_shape)
        bad = ops.logical_or(
            ops.logical_not(ops.all(ops.isfinite(boxes), axis=-1)),
            ops.logical_or(
                boxes[..., 2] < boxes[..., 0], boxes[..., 3] < boxes[..., 1]
            ),
        )
        if box_utils.is_eager(boxes):
            bad_values = ops.convert_to_numpy(bad)
            if bad_values.any():
                row = ops.convert_to_numpy(boxes)[bad_values][0]
                raise ValueError(
                    "`boxes` must be finite and not inverted (max >= min). "
                    f"Received: a box {row.tolist()} (as relative yxyx)"
                )
        coordinates = self.continuous_coordinates(boxes)
        coordinates = ops.where(bad[..., None], np.nan, coordinates)
        bins = ops.where(bad, -1, self.nearest_bin(coordinates))
        return coordinates, bins

    def continuous_coordinates(self, rel_yxyx):
        """Continuous bin coordinates `(..., 4)` of relative yxyx boxes."""
        rel_yxyx = ops.cast(rel_yxyx, "float32")
        y0, x0, y1, x1 = ops.unstack(rel_yxyx, num=4, axis=-1)
        # Guard against zero-area boxes so the logs below stay finite.
        height = ops.maximum(y1 - y0, 1e-6)
        width = ops.maximum(x1 - x0, 1e-6)
        grid_y, grid_x = self.grid_shape
        y = (y0 + y1) * 0.5 * grid_y - 0.5
        x = (x0 + x1) * 0.5 * grid_x - 0.5
        log_scale = 0.5 * (ops.log(height) + ops.log(width))
        log_aspect = ops.log(width) - ops.log(height)
        scale = _piecewise_coordinate(log_scale, self._log_scales)
        aspect = _piecewise_coordinate(log_aspect, self._log_aspect_ratios)
        return ops.stack([y, x, scale, aspect], axis=-1)

    def nearest_bin(self, coordinates):
        """Flat index of the bin nearest to continuous `coordinates`."""
        limits = ops.convert_to_tensor(
            np.asarray(self.bins_shape, "float32") - 1.0
        )
        index = ops.cast(ops.clip(ops.round(coordinates), 0.0, limits), "int32")
        iy, ix, i_scale, i_aspect = ops.unstack(index, num=4, axis=-1)
        _, grid_x, num_scales, num_aspects = self.bins_shape
        return ((iy * grid_x + ix) * num_scales + i_scale) * num_aspects + (
            i_aspect
        )

    def decode(
        self,
        bin_indices,
        bounding_box_format=None,
        image_shape=None,
        clip=False,
    ):
        """Returns the boxes of flat bin indices.

        Args:
            bin_indices: int array of any shape with values in
                `[0, num_bins)`. Eager calls raise a `ValueError` for others;
                inside graphs (`tf.function`, `jax.jit`) they decode to NaN
                boxes, on every backend.
            bounding_box_format: optional format overriding the space's.
            image_shape: optional `(height, width)` overriding the space's.
            clip: bool. Clip boxes to the image. Defaults to `False`.

        Returns:
            float32 boxes of shape `bin_indices.shape + (4,)`.
        """
        bin_indices = ops.convert_to_tensor(bin_indices)
        if not _is_integer(bin_indices.dtype):
            raise TypeError(
                "`bin_indices` must be an integer array. "
                f"Received: bin_indices.dtype={bin_indices.dtype}"
            )
        if box_utils.is_eager(bin_indices):
            values = ops.convert_to_numpy(bin_indices)
            if values.size and (
                values.min() < 0 or values.max() >= self.num_bins
            ):
                raise ValueError(
                    f"`bin_indices` must be in [0, {self.num_bins}). "
                    f"Received: values in [{values.min()}, {values.max()}]"
                )
        in_range = ops.logical_and(
            ops.greater_equal(bin_indices, 0),
            ops.less(bin_indices, self.num_bins),
        )
        safe = ops.where(in_range, bin_indices, 0)
        boxes = ops.take(self.bin_boxes(), safe, axis=0)
        boxes = ops.where(in_range[..., None], boxes, np.nan)
        if clip:
            boxes = ops.clip(boxes, 0.0, 1.0)
        return self._from_rel_yxyx(boxes, bounding_box_format, image_shape)

    def bin_boxes(self):
        """All bin boxes, `(num_bins, 4)` relative yxyx float32."""
        grid_y, grid_x = self.grid_shape
        y = (np.arange(grid_y, dtype="float32") + 0.5) / grid_y
        x = (np.arange(grid_x, dtype="float32") + 0.5) / grid_x
        y, x, scale, aspect = np.meshgrid(
            y,
            x,
            np.asarray(self.scales, "float32"),
            np.asarray(self.aspect_ratios, "float32"),
            indexing="ij",
        )
        half_height = 0.5 * scale / np.sqrt(aspect)
        half_width = 0.5 * scale * np.sqrt(aspect)
        boxes = np.stack(
            [y - half_height, x - half_width, y + half_height, x + half_width],
            axis=-1,
        )
        return ops.convert_to_tensor(boxes.reshape(-1, 4).astype("float32"))

    def bin_centers(self):
        """Integer bin coordinates per axis, for building targets."""
        return tuple(np.arange(n, dtype="float32") for n in self.bins_shape)

    # ------------------------------------------------------------------
    # Fitting to a dataset's boxes.

    @classmethod
    def from_boxes(
        cls,
        boxes,
        bounding_box_format="rel_yxyx",
        grid_shape=(16, 16),
        num_scales=7,
        num_aspect_ratios=5,
        image_shape=None,
    ):
        """A box space whose scales and aspect ratios fit given boxes.

        Scales and aspect ratios are quantiles of the boxes' log scale and
        log aspect ratio at the levels `(i + 0.5) / n`, the centres of `n`
        equally populated bins, so every value covers about the same share
        of the boxes. Values that would coincide (many identical boxes) are
        spread to at least 1% apart; scales stay at most 1.

        Args:
            boxes: array-like `(..., 4)` of a dataset's boxes, for example
                its `objects/bbox` stacked. Rows without area (such as `-1`
                padding) and non-finite rows are left out.
            bounding_box_format: str. Keras format of `boxes`, also the new
                space's. Defaults to `"rel_yxyx"`.
            grid_shape: tuple of two ints. Centre bins. Defaults to
                `(16, 16)`.
            num_scales: int. Number of scales. Defaults to `7`.
            num_aspect_ratios: int. Number of aspect ratios. Defaults to
                `5`.
            image_shape: optional `(height, width)`, required for absolute
                formats. Defaults to `None`.

        Returns:
            A `BoxSpace`.

        Example:

        ```python
        boxes = np.concatenate([example["objects"]["bbox"] for example in
                                tfds.as_numpy(raw.take(1000))])
        space = BoxSpace.from_boxes(boxes, num_scales=7, num_aspect_ratios=5)
        space.coverage_report(boxes)["fraction_iou_at_least_0.7"]
        ```
        """
        _checks.check_positive_int("num_scales", num_scales)
        _checks.check_positive_int("num_aspect_ratios", num_aspect_ratios)
        _checks.check_bounding_box_format(bounding_box_format)
        image_shape = _checks.check_image_shape(
            image_shape, bounding_box_format
        )
        rel = _valid_rel_yxyx(boxes, bounding_box_format, image_shape)
        if len(rel) == 0:
            raise ValueError(
                "`boxes` must hold at least one box with positive area. "
                f"Received: boxes with shape {np.shape(boxes)}"
            )
        height = rel[:, 2] - rel[:, 0]
        width = rel[:, 3] - rel[:, 1]
        log_scale = 0.5 * (np.log(height) + np.log(width))
        log_aspect = np.log(width) - np.log(height)
        scales = _fitted_values(log_scale, int(num_scales), upper=1.0)
        aspects = _fitted_values(log_aspect, int(num_aspect_ratios))
        return cls(
            grid_shape=grid_shape,
            scales=scales,
            aspect_ratios=aspects,
            bounding_box_format=bounding_box_format,
            image_shape=image_shape,
        )

    def coverage_report(
        self, boxes, bounding_box_format=None, image_shape=None
    ):
        """How well the space's bins reproduce given boxes.

        For each box, the IoU with its nearest bin (the bin `encode` gives,
        what the objectness head decodes to) and the best IoU over all bins.

        Args:
            boxes: array-like `(..., 4)`. Rows without area (padding) and
                non-finite rows are left out.
            bounding_box_format: optional format of `boxes`. Defaults to
                the space's.
            image_shape: optional `(height, width)`. Defaults to the
                space's.

        Returns:
            dict with `"num_boxes"`, `"mean_nearest_iou"`,
            `"fraction_iou_at_least_0.5"` and `"fraction_iou_at_least_0.7"`
            (of the nearest bin's IoU), `"mean_best_iou"` and
            `"fraction_best_iou_at_least_0.5"` (of the best bin's), and
            `"fraction_in_range"` (boxes whose scale and aspect ratio lie
            within the space's first and last values).
        """
        bounding_box_format, image_shape = self._resolve_format(
            bounding_box_format, image_shape
        )
        rel = _valid_rel_yxyx(boxes, bounding_box_format, image_shape)
        if len(rel) == 0:
            raise ValueError(
                "`boxes` must hold at least one box with positive area. "
                f"Received: boxes with shape {np.shape(boxes)}"
            )
        _, bins = self.encode(rel.astype("float32"), "rel_yxyx")
        nearest = ops.convert_to_numpy(self.decode(bins, "rel_yxyx"))
        nearest_iou = _iou_yxyx(rel, nearest)
        all_bins = ops.convert_to_numpy(self.bin_boxes())
        best_iou = np.concatenate(
            [
                _iou_yxyx(chunk[:, None], all_bins[None]).max(axis=1)
                for chunk in np.array_split(
                    rel, max(1, len(rel) * len(all_bins) // 4_000_000 + 1)
                )
            ]
        )
        height = rel[:, 2] - rel[:, 0]
        width = rel[:, 3] - rel[:, 1]
        scale = np.sqrt(height * width)
        aspect = width / height
        slack = 1e-6
        in_range = (
            (scale >= self.scales[0] * (1 - slack))
            & (scale <= self.scales[-1] * (1 + slack))
            & (aspect >= self.aspect_ratios[0] * (1 - slack))
            & (aspect <= self.aspect_ratios[-1] * (1 + slack))
        )
        return {
            "num_boxes": int(len(rel)),
            "mean_nearest_iou": float(nearest_iou.mean()),
            "fraction_iou_at_least_0.5": float(np.mean(nearest_iou >= 0.5)),
            "fraction_iou_at_least_0.7": float(np.mean(nearest_iou >= 0.7)),
            "mean_best_iou": float(best_iou.mean()),
            "fraction_best_iou_at_least_0.5": float(np.mean(best_iou >= 0.5)),
            "fraction_in_range": float(np.mean(in_range)),
        }

    # ------------------------------------------------------------------
    # Quantisation quality.

    def quantization_report(self, num_samples=20000, seed=0):
        """How well the nearest bin reproduces a box in the space's range.

        A box is *in range* when its centre lies in the image, its scale in
        `[scales[0], scales[-1]]` and its aspect ratio in
        `[aspect_ratios[0], aspect_ratios[-1]]`.

        `worst_case_iou` is computed, not sampled: for every pair of
        neighbouring scale and aspect-ratio values it evaluates the IoU on a
        dense lattice (including the corners) of the box's possible offsets
        from its nearest bin: up to half a cell in y and x, and up to the
        log-space midpoint towards each neighbouring scale and aspect ratio.
        The IoU falls with the centre offset, so the lattice minimum is the
        worst case up to the lattice's resolution along scale and aspect
        ratio. `mean_iou` and the percentiles come from `num_samples` boxes
        drawn uniformly in centre, log scale and log aspect ratio.

        Args:
            num_samples: int. Boxes for the sampled statistics.
            seed: int. Seed of the sampler.

        Returns:
            dict with `worst_case_iou`, `mean_iou`, `iou_percentiles`
            (5th, 50th), `fraction_iou_at_least_0.5`, `num_bins`.
        """
        worst = min(
            _lattice_worst_iou(scale_cell, aspect_cell, self.grid_shape)
            for scale_cell in _cell_ranges(self.scales)
            for aspect_cell in _cell_ranges(self.aspect_ratios)
        )
        rng = np.random.default_rng(seed)
        boxes = self.sample_boxes(rng, num_samples)
        _, bins = self.encode(boxes, "rel_yxyx")
        decoded = ops.convert_to_numpy(self.decode(bins, "rel_yxyx"))
        ious = _iou_yxyx(boxes, decoded)
        return {
            "worst_case_iou": float(worst),
            "mean_iou": float(ious.mean()),
            "iou_percentiles": {
                "5": float(np.percentile(ious, 5)),
                "50": float(np.percentile(ious, 50)),
            },
            "fraction_iou_at_least_0.5": float(np.mean(ious >= 0.5)),
            "num_bins": self.num_bins,
        }

    def sample_boxes(self, rng, num_boxes):
        """Draws in-range relative yxyx boxes (see `quantization_report`)."""
        center = rng.uniform(0.0, 1.0, size=(num_boxes, 2))
        log_scale = rng.uniform(
            np.log(self.scales[0]), np.log(self.scales[-1]), num_boxes
        )
        log_aspect = rng.uniform(
            np.log(self.aspect_ratios[0]),
            np.log(self.aspect_ratios[-1]),
            num_boxes,
        )
        return _boxes_from_parameters(
            center[:, 0], center[:, 1], np.exp(log_scale), np.exp(log_aspect)
        ).astype("float32")

    # ------------------------------------------------------------------
    # Serialisation and helpers.

    def get_config(self):
        return {
            "grid_shape": self.grid_shape,
            "scales": self.scales,
            "aspect_ratios": self.aspect_ratios,
            "bounding_box_format": self.bounding_box_format,
            "image_shape": self.image_shape,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            isinstance(other, BoxSpace)
            and self.get_config() == other.get_config()
        )

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self):
        return (
            f"BoxSpace(grid_shape={self.grid_shape}, scales={self.scales}, "
            f"aspect_ratios={self.aspect_ratios}, "
            f"bounding_box_format={self.bounding_box_format!r}, "
            f"image_shape={self.image_shape}) with {self.num_bins} bins"
        )

    def _resolve_format(self, bounding_box_format, image_shape):
        if bounding_box_format is None:
            bounding_box_format = self.bounding_box_format
        _checks.check_bounding_box_format(bounding_box_format)
        if image_shape is None:
            image_shape = self.image_shape
        return bounding_box_format, _checks.check_image_shape(
            image_shape, bounding_box_format
        )

    def _to_rel_yxyx(self, boxes, bounding_box_format, image_shape):
        bounding_box_format, image_shape = self._resolve_format(
            bounding_box_format, image_shape
        )
        box_utils.check_boxes_shape(boxes)
        return box_utils.to_rel_yxyx(boxes, bounding_box_format, image_shape)

    def _from_rel_yxyx(self, boxes, bounding_box_format, image_shape):
        bounding_box_format, image_shape = self._resolve_format(
            bounding_box_format, image_shape
        )
        return box_utils.from_rel_yxyx(boxes, bounding_box_format, image_shape)


def get(box_space):
    """Returns a `BoxSpace` from an instance or its config dict."""
    if isinstance(box_space, BoxSpace):
        return box_space
    if isinstance(box_space, dict):
        if "config" in box_space and "class_name" in box_space:
            return keras.saving.deserialize_keras_object(box_space)
        return BoxSpace.from_config(box_space)
    raise TypeError(
        "`box_space` must be a `keras_objectness.BoxSpace` or its config "
        f"dict. Received: box_space={box_space!r}"
    )


def _valid_rel_yxyx(boxes, bounding_box_format, image_shape):
    """float64 `(N, 4)` relative yxyx boxes with positive area."""
    array = np.asarray(boxes, dtype="float64")
    if array.ndim < 1 or array.shape[-1] != 4:
        raise ValueError(
            "`boxes` must have shape (..., 4). "
            f"Received: boxes with shape {array.shape}"
        )
    array = array.reshape(-1, 4)
    finite = np.all(np.isfinite(array), axis=-1)
    array = array[finite]
    if len(array) and bounding_box_format != "rel_yxyx":
        array = ops.convert_to_numpy(
            box_utils.to_rel_yxyx(
                array.astype("float32"), bounding_box_format, image_shape
            )
        ).astype("float64")
    positive = (array[:, 2] > array[:, 0]) & (array[:, 3] > array[:, 1])
    return array[positive]


def _fitted_values(logs, count, upper=None, min_gap=np.log(1.01)):
    """`count` strictly increasing values from quantiles of `logs`."""
    levels = (np.arange(count) + 0.5) / count
    values = np.quantile(logs, levels)
    if upper is not None:
        values = np.minimum(values, np.log(upper))
    for i in range(1, count):
        values[i] = max(values[i], values[i - 1] + min_gap)
    if upper is not None and values[-1] > np.log(upper):
        values[-1] = np.log(upper)
        for i in range(count - 2, -1, -1):
            values[i] = min(values[i], values[i + 1] - min_gap)
    return tuple(float(v) for v in np.round(np.exp(values), 6))


def _validate_grid_shape(grid_shape):
    try:
        values = tuple(grid_shape)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
        for v in values
    ):
        raise ValueError(
            "`grid_shape` must be a tuple of two positive integers "
            f"(y bins, x bins). Received: grid_shape={grid_shape!r}"
        )
    return tuple(int(v) for v in values)


def _validate_increasing(values, name, upper=None):
    received = values
    if isinstance(values, (str, bytes)):
        # A string iterates as characters: "12" is not (1.0, 2.0).
        values = ()
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        values = ()
    ok = (
        len(values) > 0
        and all(math.isfinite(v) and v > 0 for v in values)
        and all(b > a for a, b in zip(values, values[1:]))
        and (upper is None or values[-1] <= upper)
    )
    if not ok:
        limit = f" in (0, {upper}]" if upper is not None else ""
        raise ValueError(
            f"`{name}` must be a non-empty, strictly increasing sequence of "
            f"positive numbers{limit}. Received: {name}={received!r}"
        )
    return values


def _piecewise_coordinate(value, knots):
    """Index-valued coordinate of `value` on sorted `knots`.

    Linear between neighbouring knots and extrapolated with the end
    segments' slopes, so `knots[i]` maps to exactly `i`.
    """
    if len(knots) == 1:
        # One value: unit slope in log space keeps Gaussians meaningful.
        return value - float(knots[0])
    steps = np.diff(knots)
    coordinate = ops.minimum(value - float(knots[0]), 0.0) / float(steps[0])
    coordinate = coordinate + ops.maximum(
        value - float(knots[-1]), 0.0
    ) / float(steps[-1])
    for low, step in zip(knots[:-1], steps):
        coordinate = coordinate + ops.clip(
            (value - float(low)) / float(step), 0.0, 1.0
        )
    return coordinate


def _is_integer(dtype):
    return "int" in keras.backend.standardize_dtype(dtype)


def _cell_ranges(values):
    """Per value, `(value, low, high)`: the range it is the nearest knot of.

    Neighbouring knots split at their log-space midpoint; the outer ends
    are the first and last values (the space's range).
    """
    logs = np.log(np.asarray(values, "float64"))
    midpoints = (logs[:-1] + logs[1:]) / 2
    lows = np.exp(np.concatenate([logs[:1], midpoints]))
    highs = np.exp(np.concatenate([midpoints, logs[-1:]]))
    return list(zip(values, lows, highs))


def _lattice_worst_iou(scale_cell, aspect_cell, grid_shape, steps=65):
    """Worst IoU between a box and its nearest bin, within one cell.

    The centre offset is set to its maximum, half a cell along y and x: the
    intersection only shrinks as the offset grows, so that is exact. Scale
    and aspect ratio are searched on a `steps` x `steps` log lattice.
    """
    bin_scale, scale_low, scale_high = scale_cell
    bin_aspect, aspect_low, aspect_high = aspect_cell
    scale, aspect = np.meshgrid(
        np.geomspace(scale_low, scale_high, steps),
        np.geomspace(aspect_low, aspect_high, steps),
        indexing="ij",
    )
    boxes = _boxes_from_parameters(
        0.5 / grid_shape[0], 0.5 / grid_shape[1], scale, aspect
    )
    bin_box = _boxes_from_parameters(0.0, 0.0, bin_scale, bin_aspect)
    return float(_iou_yxyx(boxes, bin_box).min())


def _boxes_from_parameters(center_y, center_x, scale, aspect):
    half_height = 0.5 * scale / np.sqrt(aspect)
    half_width = 0.5 * scale * np.sqrt(aspect)
    return np.stack(
        [
            center_y - half_height,
            center_x - half_width,
            center_y + half_height,
            center_x + half_width,
        ],
        axis=-1,
    )


def _iou_yxyx(a, b):
    a = np.asarray(a, "float64")
    b = np.asarray(b, "float64")
    height = np.clip(
        np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]),
        0,
        None,
    )
    width = np.clip(
        np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]),
        0,
        None,
    )
    intersection = height * width
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return intersection / (area_a + area_b - intersection)
