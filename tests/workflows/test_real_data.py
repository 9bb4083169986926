"""`keras-objectness run` on the real TFDS `voc/2007` and `coco/2017`
builders (prepared offline from raw files in their official layouts) and
on a COCO-format JSON with its image folder."""

import json

import pytest

from keras_objectness import cli
from keras_objectness import workflows
from tests.data import raw_fixtures
from tests.test_case import large

TINY_RUN = [
    "--classifier-epochs=1",
    "--finetune-epochs=1",
    "--regions-per-image=4",
    "--proposals=5",
    "--gallery-images=2",
    "--batch-size=4",
    "--knn=1",
    "--verbose=0",
]


def _run(tmp_path, data_args):
    output = tmp_path / "out"
    code = cli.main(["run", *data_args, f"--output-dir={output}", *TINY_RUN])
    assert code == cli.EXIT_OK
    with open(output / "results.json") as file:
        return json.load(file)


@pytest.mark.parametrize(
    "name, writer, num_classes, test_images",
    [
        ("voc/2007", raw_fixtures.write_voc2007, 20, 2),
        ("coco/2017", raw_fixtures.write_coco2017, 80, 2),
    ],
)
@large
def test_run_on_a_real_tfds_builder(
    tmp_path, name, writer, num_classes, test_images
):
    data_dir = tmp_path / "tfds"
    raw_fixtures.prepare_builder(name, writer(tmp_path / "raw"), data_dir)
    results = _run(
        tmp_path,
        [
            f"--data={name}",
            f"--data-dir={data_dir}",
            "--detection-classes=person,car",
        ],
    )
    assert results["num_test_images"] == test_images
    assert len(results["class_names"]) == num_classes
    assert [
        results["class_names"][i] for i in results["detection_classes"]
    ] in (
        ["car", "person"],
        ["person", "car"],
    )
    for row in ("no_adaptation", "adapted"):
        assert len(results[row]["average_precision"]) == num_classes


@large
def test_run_on_a_coco_json_export(tmp_path):
    annotation_file, image_dir = raw_fixtures.write_coco_json(tmp_path / "raw")
    results = _run(
        tmp_path,
        [
            f"--coco-json={annotation_file}",
            f"--images-dir={image_dir}",
            "--test-fraction=0.34",
            "--detection-classes=dog",
        ],
    )
    assert results["class_names"] == list(raw_fixtures.JSON_CLASSES)
    assert results["detection_classes"] == [0]
    assert results["num_test_images"] == 1


def test_coco_source_splits_images_once_and_disjointly(tmp_path):
    annotation_file, image_dir = raw_fixtures.write_coco_json(tmp_path / "raw")
    source = workflows.CocoDataSource(
        annotation_file, image_dir, test_fraction=0.34
    )
    shapes = lambda role: sorted(  # noqa: E731
        tuple(example["image"].shape.as_list()) for example in source.load(role)
    )
    train, test = shapes("detection_train"), shapes("test")
    assert len(train) == 2 and len(test) == 1
    assert not set(train) & set(test)
    assert shapes("test") == test  # the same draw every time
    usable = set()
    for example in source.load("detection_train"):
        objects = example["objects"]
        for label, crowd in zip(objects["label"], objects["is_crowd"]):
            if not crowd:
                usable.add(int(label))
    # The bird box is a crowd box: it makes no class "boxed".
    assert source.class_split("boxed").detection_classes == tuple(
        sorted(usable)
    )
    with pytest.raises(ValueError, match="`test_fraction`"):
        workflows.CocoDataSource(annotation_file, image_dir, test_fraction=1)
    with pytest.raises(ValueError, match="no default class split"):
        source.class_split()
