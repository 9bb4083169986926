"""`keras-objectness add-classes` on a tiny detector and image folder."""

import argparse
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_objectness import cli
from keras_objectness.adaptation import find_background_head
from tests.workflows.test_add_classes import NAMES
from tests.workflows.test_add_classes import tiny_detector


def _write_images(folder, count, seed, size=12):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    mean = rng.integers(0, 255, (size, size, 3))
    for i in range(count):
        noise = rng.integers(-20, 20, (size, size, 3))
        image = np.clip(mean + noise, 0, 255).astype("uint8")
        tf.io.write_file(
            os.path.join(folder, f"{i:03d}.png"), tf.io.encode_png(image)
        )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("grow")
    path = str(root / "detector.keras")
    tiny_detector().save(path)
    images = root / "new"
    _write_images(str(images / "otter"), 4, seed=1)
    _write_images(str(images / "heron"), 3, seed=2)
    return root, path, str(images)


def test_add_classes_writes_a_grown_detector(saved, capsys):
    root, path, images = saved
    output = str(root / "grown.keras")
    argv = ["add-classes", "--detector", path, "--images", images,
            "--output", output, "--knn", "2"]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "added 2 classes (heron, otter) from 7 images" in out
    assert "6 -> 8 classes" in out
    grown = keras.saving.load_model(output, safe_mode=True)
    head = find_background_head(grown)
    # Subfolders in sorted order after the stored names.
    assert head.class_names == NAMES + ("heron", "otter")
    original = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 3)).astype("float32")
    from keras_objectness.workflows import region_scores_model

    before = region_scores_model(original).predict(x, verbose=0)
    after = region_scores_model(grown).predict(x, verbose=0)
    # The same weights; a wider matrix product may round once differently.
    np.testing.assert_allclose(after[:, :6], before, rtol=1e-6, atol=1e-6)
    # The name lookup of detect/export prefers the model's own names.
    args = argparse.Namespace(class_names=None, detector=output)
    assert cli._class_names_for(args, grown)[-2:] == ["heron", "otter"]
    # At most one image per class: a different fit.
    capped = str(root / "capped.keras")
    argv[-3] = capped
    assert cli.main(argv + ["--max-images-per-class", "1"]) == cli.EXIT_OK
    assert "from 2 images" in capsys.readouterr().out


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        ("existing", [], "already has 'old_1'"),
        ("empty", [], "holds no image files"),
        ("none", [], "no subfolders"),
        ("ok", ["--knn", "9"], "`knn` must be"),
        ("ok", ["--output", "grown.h5"], "`--output` must end in .keras"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    saved, tmp_path, capsys, setup, extra, message
):
    root, path, _ = saved
    images = tmp_path / "images"
    os.makedirs(images)
    if setup == "existing":
        _write_images(str(images / "old_1"), 2, seed=3)
    elif setup == "empty":
        _write_images(str(images / "fine"), 2, seed=3)
        os.makedirs(images / "empty")
    elif setup == "ok":
        _write_images(str(images / "fine"), 2, seed=3)
    argv = ["add-classes", "--detector", path, "--images", str(images),
            "--output", str(tmp_path / "grown.keras"), "--knn", "2",
            *extra]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("keras-objectness add-classes: error:")
    assert message in err
    assert not os.path.exists(tmp_path / "grown.keras")


def test_help_shows_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["add-classes", "--help"])
    text = capsys.readouterr().out
    for flag in ("--detector", "--images", "--output", "--knn", "--steps",
                 "--adaptation", "--max-images-per-class", "--l2",
                 "--learning-rate", "--class-names"):  # fmt: skip
        assert flag in text
    assert "(default: 300)" in text


def test_reference_images_of_existing_classes(saved, tmp_path, capsys):
    root, path, images = saved
    reference = tmp_path / "reference"
    _write_images(str(reference / "old_0"), 3, seed=5)
    _write_images(str(reference / "old_4"), 2, seed=6)
    output = str(tmp_path / "grown.keras")
    argv = ["add-classes", "--detector", path, "--images", images,
            "--output", output, "--knn", "2",
            "--reference-images", str(reference)]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_OK
    assert "from 7 images (+5 reference)" in capsys.readouterr().out
    plain = str(root / "grown.keras")
    if not os.path.exists(plain):
        argv_plain = argv[:-2]
        argv_plain[6] = plain
        assert cli.main(argv_plain) == cli.EXIT_OK
    a = find_background_head(keras.saving.load_model(output))
    b = find_background_head(keras.saving.load_model(plain))
    # The contrast changes the new columns only.
    ka, kb = (keras.ops.convert_to_numpy(h.kernel) for h in (a, b))
    np.testing.assert_array_equal(ka[:, :6], kb[:, :6])
    assert not np.array_equal(ka[:, 6:8], kb[:, 6:8])
    bad = tmp_path / "bad"
    _write_images(str(bad / "zebra"), 1, seed=7)
    argv[-1] = str(bad)
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "named after the detector's classes" in capsys.readouterr().err
