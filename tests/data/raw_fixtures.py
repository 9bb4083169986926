"""Tiny raw datasets in the official VOC 2007, COCO 2017 and COCO-JSON layouts.

The real TFDS builders `voc/2007` and `coco/2017` prepare from these files
offline when only their download step is replaced (`prepare_builder`), so
tests run the builders' own parsing, not a mock of it.

Writers (each takes a folder, creates it if needed, and returns paths):

* `write_voc2007(root) -> str`: `root/VOCdevkit/VOC2007/{JPEGImages,
  Annotations,ImageSets/Main/{train,val,test}.txt}`; returns `root`, the
  folder both of the builder's archives "extract" to.
* `write_coco2017(root) -> str`: `root/{train2017,val2017,test2017}/*.jpg`
  and `root/annotations/{instances_train2017,instances_val2017,
  image_info_test2017}.json` (80 official categories; the test split has no
  annotations, as in the real release); returns `root`.
* `write_coco_json(root) -> (annotation_file, image_dir)`: an annotation
  tool's export with 3 categories listed out of id order, an RGB JPEG, a
  grayscale PNG in a subfolder, an RGBA PNG without annotations, a crowd
  box and a box past the image edge.
* `prepare_builder(name, raw_root, data_dir) -> tfds builder`: runs
  `download_and_prepare` of `name` ("voc/2007" or "coco/2017") with
  `tfds.download.DownloadManager.download_and_extract` patched to return
  `raw_root` for every archive.

`VOC2007`, `COCO2017` and `COCO_JSON` describe what was written: per split,
a list of images `(height, width, objects)` with objects
`(label, (ymin, xmin, ymax, xmax) relative, ignore)` in file order, where
`label` is the TFDS (or contiguous JSON) label and `ignore` is the
difficult or crowd flag.
"""

import json
import os
from unittest import mock

import numpy as np
from PIL import Image

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "stop sign",
    "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv",
    "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
# The official ids: 1..90 without the 10 ids COCO never used.
COCO_CATEGORY_IDS = tuple(
    i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
)

# VOC: split -> [(image id, height, width,
#                 [(class name, (ymin, xmin, ymax, xmax) px, difficult)])]
_VOC = {
    "train": [
        ("000001", 120, 160, [("person", (10, 20, 100, 80), False),
                              ("dog", (40, 90, 110, 150), True)]),
        ("000002", 96, 128, [("car", (20, 10, 80, 120), False)]),
    ],
    "val": [
        ("000003", 100, 100, [("cat", (10, 10, 90, 90), False)]),
        ("000004", 80, 120, [("bottle", (10, 10, 70, 40), True),
                             ("chair", (20, 60, 75, 110), False)]),
    ],
    "test": [
        ("000005", 100, 140, [("person", (5, 5, 95, 60), False),
                              ("horse", (30, 70, 90, 130), False)]),
        ("000006", 90, 90, [("bird", (30, 30, 60, 60), True)]),
    ],
}  # fmt: skip

# COCO: split -> [(image id, height, width,
#                  [(category id, [x, y, w, h] px, iscrowd)])]
_COCO = {
    "train": [
        (1, 120, 160, [(1, [20, 10, 60, 90], 0), (1, [90, 40, 60, 70], 1),
                       (18, [5, 80, 40, 30], 0)]),
        (2, 96, 128, [(3, [10, 20, 100, 60], 0)]),
        (3, 80, 80, []),
    ],
    "validation": [
        (10, 100, 100, [(17, [10, 10, 80, 80], 0)]),
        (11, 90, 120, [(44, [5, 5, 30, 60], 0), (1, [50, 10, 60, 70], 1)]),
    ],
    "test": [(20, 64, 64, []), (21, 48, 80, [])],
}  # fmt: skip
_COCO_FOLDERS = {
    "train": ("train2017", "instances_train2017.json"),
    "validation": ("val2017", "instances_val2017.json"),
    "test": ("test2017", "image_info_test2017.json"),
}

# COCO JSON export: categories out of id order; labels follow the ids.
_JSON_CATEGORIES = ({"id": 7, "name": "cat"}, {"id": 3, "name": "dog"},
                    {"id": 12, "name": "bird"})  # fmt: skip
JSON_CLASSES = ("dog", "cat", "bird")
# (image id, file name, height, width, mode,
#  [(category id, [x, y, w, h] px, iscrowd)])
_JSON_IMAGES = (
    (5, "a.jpg", 60, 90, "RGB", [(3, [10, 5, 40, 30], 0),
                                 (12, [50, 20, 35, 30], 1),
                                 (7, [60, 30, 40, 40], 0)]),
    (2, "sub/b.png", 50, 40, "L", [(7, [5, 5, 20, 30], 0)]),
    (9, "c.png", 32, 48, "RGBA", []),
)  # fmt: skip


def _relative(box, height, width):
    y0, x0, y1, x1 = box
    return (
        min(y0 / height, 1.0),
        min(x0 / width, 1.0),
        min(y1 / height, 1.0),
        min(x1 / width, 1.0),
    )


def _xywh_to_yxyx(box):
    x, y, w, h = box
    return (y, x, y + h, x + w)


VOC2007 = {
    split: [
        (h, w, [(VOC_CLASSES.index(name), _relative(box, h, w), difficult)
                for name, box, difficult in objects])
        for _, h, w, objects in images
    ]
    for split, images in _VOC.items()
}  # fmt: skip
COCO2017 = {
    split: [
        (h, w, [(COCO_CATEGORY_IDS.index(c),
                 _relative(_xywh_to_yxyx(box), h, w), bool(crowd))
                for c, box, crowd in objects])
        for _, h, w, objects in images
    ]
    for split, images in _COCO.items()
}  # fmt: skip
_JSON_LABEL = {3: 0, 7: 1, 12: 2}
COCO_JSON = [
    (h, w, [(_JSON_LABEL[c], _relative(_xywh_to_yxyx(box), h, w),
             bool(crowd)) for c, box, crowd in objects])
    for _, _, h, w, _, objects in sorted(_JSON_IMAGES)
]  # fmt: skip


def _image(seed, height, width, boxes, mode="RGB"):
    """Dark noise with each box filled bright; boxes in (y0, x0, y1, x1) px."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 50, (height, width, 3)).astype("uint8")
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        pixels[int(y0) : int(y1), int(x0) : int(x1)] = 180 + 15 * (i % 5)
    image = Image.fromarray(pixels, "RGB")
    return image.convert(mode)


def write_voc2007(root):
    """Writes the VOC 2007 layout under `root`; returns `root` (a str)."""
    base = os.path.join(str(root), "VOCdevkit", "VOC2007")
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    for split, images in _VOC.items():
        for image_id, height, width, objects in images:
            _image(
                int(image_id), height, width, [box for _, box, _ in objects]
            ).save(os.path.join(base, "JPEGImages", f"{image_id}.jpg"))
            parts = [
                "<annotation><folder>VOC2007</folder>",
                f"<filename>{image_id}.jpg</filename>",
                f"<size><width>{width}</width><height>{height}</height>"
                "<depth>3</depth></size><segmented>0</segmented>",
            ]
            for name, (y0, x0, y1, x1), difficult in objects:
                parts.append(
                    f"<object><name>{name}</name><pose>Unspecified</pose>"
                    f"<truncated>0</truncated>"
                    f"<difficult>{int(difficult)}</difficult><bndbox>"
                    f"<xmin>{x0}</xmin><ymin>{y0}</ymin>"
                    f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                )
            parts.append("</annotation>")
            with open(
                os.path.join(base, "Annotations", f"{image_id}.xml"), "w"
            ) as f:
                f.write("".join(parts))
        with open(
            os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w"
        ) as f:
            f.write("".join(f"{i}\n" for i, _, _, _ in images))
    return str(root)


def write_coco2017(root):
    """Writes the COCO 2017 layout under `root`; returns `root` (a str)."""
    root = str(root)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    categories = [
        {"id": i, "name": name, "supercategory": "thing"}
        for i, name in zip(COCO_CATEGORY_IDS, COCO_CLASSES)
    ]
    annotation_id = 1
    for split, images in _COCO.items():
        folder, annotation_file = _COCO_FOLDERS[split]
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        data = {"info": {}, "licenses": [], "images": [],
                "categories": categories}  # fmt: skip
        if split != "test":
            data["annotations"] = []
        for image_id, height, width, objects in images:
            file_name = f"{image_id:012d}.jpg"
            _image(
                image_id,
                height,
                width,
                [_xywh_to_yxyx(box) for _, box, _ in objects],
            ).save(os.path.join(root, folder, file_name))
            data["images"].append(
                {"id": image_id, "file_name": file_name, "height": height,
                 "width": width}
            )  # fmt: skip
            for category, box, crowd in objects:
                data["annotations"].append(
                    {"id": annotation_id, "image_id": image_id,
                     "category_id": category, "bbox": box,
                     "area": float(box[2] * box[3]), "iscrowd": crowd,
                     "segmentation": []}
                )  # fmt: skip
                annotation_id += 1
        with open(os.path.join(root, "annotations", annotation_file), "w") as f:
            json.dump(data, f)
    return root


def write_coco_json(root):
    """Writes an annotation tool's COCO export under `root`.

    Returns:
        `(annotation_file, image_dir)`: `root/annotations.json` and
        `root/images`.
    """
    root = str(root)
    image_dir = os.path.join(root, "images")
    os.makedirs(os.path.join(image_dir, "sub"), exist_ok=True)
    data = {"images": [], "annotations": [],
            "categories": list(_JSON_CATEGORIES)}  # fmt: skip
    annotation_id = 100
    for image_id, file_name, height, width, mode, objects in _JSON_IMAGES:
        boxes = [_xywh_to_yxyx(box) for _, box, _ in objects]
        _image(image_id, height, width, boxes, mode).save(
            os.path.join(image_dir, file_name)
        )
        data["images"].append(
            {"id": image_id, "file_name": file_name, "height": height,
             "width": width}
        )  # fmt: skip
        for category, box, crowd in objects:
            data["annotations"].append(
                {"id": annotation_id, "image_id": image_id,
                 "category_id": category, "bbox": box,
                 "area": float(box[2] * box[3]), "iscrowd": crowd}
            )  # fmt: skip
            annotation_id += 1
    annotation_file = os.path.join(root, "annotations.json")
    with open(annotation_file, "w") as f:
        json.dump(data, f)
    return annotation_file, image_dir


def prepare_builder(name, raw_root, data_dir):
    """Prepares the real TFDS builder `name` from the raw files offline.

    Args:
        name: str. `"voc/2007"` or `"coco/2017"` (any builder whose
            `_split_generators` only calls `download_and_extract`).
        raw_root: str. What the writer returned.
        data_dir: str. TFDS data folder to prepare into.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.
    """
    import tensorflow_datasets as tfds

    def download_and_extract(self, url_or_urls):
        if isinstance(url_or_urls, dict):
            return {key: raw_root for key in url_or_urls}
        if isinstance(url_or_urls, (list, tuple)):
            return [raw_root for _ in url_or_urls]
        return raw_root

    builder = tfds.builder(name, data_dir=str(data_dir))
    with mock.patch.object(
        tfds.download.DownloadManager,
        "download_and_extract",
        download_and_extract,
    ):
        builder.download_and_prepare()
    return builder
