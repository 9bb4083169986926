"""Detection galleries a person can read: ground truth beside predictions."""

import os

import numpy as np

# Colours of the classes with boxes in training (B) and without (A).
TRAINED_COLOR = "#2ca02c"
HELDOUT_COLOR = "#ff7f0e"
GROUND_TRUTH_COLOR = "white"


def draw_gallery(
    images,
    ground_truth,
    detections,
    class_split,
    path,
    titles=None,
    count=6,
    per_image=4,
    min_confidence=0.3,
    panel_size=200,
):
    """Draws ground truth and each detector's detections, one row each.

    The first row shows the ground truth with class names; each further
    row one detector's best `per_image` detections above
    `min_confidence`, with the ground truth as thin dashed outlines
    beneath. Classes of B are green, classes of A orange (in the labels and
    the boxes); each label sits on a filled background inside its box's
    top edge and is moved (or left out, keeping the box) where it would
    cover another label.

    Args:
        images: uint8 `(N, H, W, 3)`.
        ground_truth: dict of `"boxes"` (relative yxyx) and `"classes"`,
            padded with `-1`.
        detections: a detections dict, or a list of them (one row each).
        class_split: the `ClassSplit` (colours and class names).
        path: where to write the PNG.
        titles: optional list of row titles, one per detections dict.
        count: int. Images drawn (columns).
        per_image: int. Detections drawn per image at most.
        min_confidence: float. Detections below are not drawn.
        panel_size: int. Side of each image panel in pixels.

    Returns:
        The path written, as a str.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.patches import Rectangle

    if isinstance(detections, dict):
        detections = [detections]
    titles = list(titles or [f"detector {i}" for i in range(len(detections))])
    count = min(count, len(images))
    names = _class_names(class_split)
    trained = set(class_split.detection_classes)
    rows = 1 + len(detections)
    dpi = 100
    figure = Figure(
        figsize=(
            count * panel_size / dpi,
            rows * (panel_size + 28) / dpi + 0.4,
        ),
        dpi=dpi,
    )
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, count, squeeze=False)
    figure.subplots_adjust(
        left=0.005, right=0.995, top=0.95, bottom=0.06, wspace=0.03, hspace=0.12
    )
    for column in range(count):
        image = images[column]
        height, width = image.shape[:2]
        gt_boxes = np.asarray(ground_truth["boxes"][column])
        gt_classes = np.asarray(ground_truth["classes"][column])
        valid = gt_classes >= 0
        for row in range(rows):
            axes = grid[row][column]
            axes.imshow(image, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_title(
                    "ground truth" if row == 0 else titles[row - 1],
                    loc="left",
                    fontsize=10,
                )
            placed = []
            for box, label in zip(gt_boxes[valid], gt_classes[valid]):
                _draw_box(
                    axes,
                    Rectangle,
                    box,
                    width,
                    height,
                    GROUND_TRUTH_COLOR,
                    linestyle="--",
                    linewidth=1.0 if row else 1.5,
                )
                if row == 0:
                    _draw_label(
                        axes,
                        box,
                        width,
                        height,
                        names[int(label)],
                        _color(int(label), trained),
                        placed,
                    )
            if row == 0:
                continue
            found = detections[row - 1]
            confidence = np.asarray(found["confidence"][column])
            classes = np.asarray(found["classes"][column])
            boxes = np.asarray(found["boxes"][column])
            order = np.argsort(-confidence, kind="stable")
            drawn = 0
            for index in order:
                if drawn == per_image:
                    break
                if classes[index] < 0 or confidence[index] < min_confidence:
                    continue
                label = int(classes[index])
                color = _color(label, trained)
                _draw_box(axes, Rectangle, boxes[index], width, height, color)
                _draw_label(
                    axes,
                    boxes[index],
                    width,
                    height,
                    f"{names[label]} {confidence[index]:.2f}",
                    color,
                    placed,
                )
                drawn += 1
    figure.legend(
        handles=[
            Patch(color=TRAINED_COLOR, label="classes with boxes (B)"),
            Patch(color=HELDOUT_COLOR, label="classes without boxes (A)"),
            Patch(
                facecolor="none",
                edgecolor="black",
                linestyle="--",
                label="ground truth",
            ),
        ],
        loc="lower center",
        ncol=3,
        fontsize=9,
        frameon=False,
    )
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, format="png")
    return os.fspath(path)


def _class_names(class_split):
    names = getattr(class_split, "class_names", None)
    if names:
        return list(names)
    return [str(i) for i in range(class_split.num_classes)]


def _color(label, trained):
    return TRAINED_COLOR if label in trained else HELDOUT_COLOR


def _draw_box(axes, rectangle, box, width, height, color, **style):
    y0, x0, y1, x1 = (float(v) for v in box)
    style.setdefault("linewidth", 2.0)
    axes.add_patch(
        rectangle(
            (x0 * width - 0.5, y0 * height - 0.5),
            (x1 - x0) * width,
            (y1 - y0) * height,
            fill=False,
            edgecolor=color,
            **style,
        )
    )


def _draw_label(axes, box, width, height, text, color, placed):
    """Puts `text` at the box's top (or bottom) edge, never over a label."""
    y0, x0, y1, x1 = (float(v) for v in box)
    # Label extent in image pixels, estimated from the text length.
    label_height = 0.09 * height
    label_width = min(0.05 * width * len(text) * 0.62, width)
    left = min(max(x0 * width, 0.0), width - label_width)
    for top in (y0 * height, y1 * height - label_height):
        top = min(max(top, 0.0), height - label_height)
        extent = (left, top, left + label_width, top + label_height)
        if not any(_overlap(extent, other) for other in placed):
            placed.append(extent)
            axes.text(
                left,
                top,
                text,
                fontsize=7,
                color="black",
                va="top",
                ha="left",
                bbox=dict(
                    boxstyle="square,pad=0.15",
                    facecolor=color,
                    edgecolor="none",
                    alpha=0.9,
                ),
            )
            return True
    return False


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
