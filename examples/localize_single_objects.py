"""Train a small network to localise objects with a softmax over box bins.

A quick end-to-end check of the class-generic objectness layers on
generated images (one rectangle or ellipse each): `GaussianBoxTargets` in a
`tf.data` map, a small CNN ending in `BoxBinSoftmax`, Keras `fit` with
TensorBoard, `BoxBinDecoder` on images the network never saw.

    python examples/localize_single_objects.py --help
    python examples/localize_single_objects.py --output-dir runs/localize

Writes `results.json` and `gallery.png` to `--output-dir`, and TensorBoard
logs to `--output-dir/logs`.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import keras_objectness as ko


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/localize")
    return parser.parse_args(argv)


def build_model(box_space, image_size):
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(
            x
        )
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    outputs = ko.layers.BoxBinSoftmax(box_space, name="box_bins")(x)
    return keras.Model(inputs, outputs, name="localizer")


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    box_space = ko.BoxSpace(
        grid_shape=(12, 12),
        scales=(0.3, 0.38, 0.47, 0.6),
        aspect_ratios=(0.6, 0.77, 1.0, 1.26, 1.6),
    )
    report = box_space.quantization_report()
    print(f"{box_space}\nquantisation: {report}")

    train_images, train_boxes = ko.data.single_object_images(
        args.num_train, args.image_size, seed=args.seed + 1
    )
    test_images, test_boxes = ko.data.single_object_images(
        args.num_test, args.image_size, seed=args.seed + 2
    )
    targets = ko.layers.GaussianBoxTargets(box_space)
    train = (
        tf.data.Dataset.from_tensor_slices((train_images, train_boxes[:, None]))
        .map(lambda image, boxes: (image, targets(boxes)))
        .shuffle(args.num_train, seed=args.seed)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

    model = build_model(box_space, args.image_size)
    # Soft Gaussian targets work with Keras' own categorical cross-entropy.
    model.compile(
        keras.optimizers.Adam(2e-3), keras.losses.CategoricalCrossentropy()
    )
    start = time.time()
    history = model.fit(
        train,
        epochs=args.epochs,
        callbacks=[
            keras.callbacks.TensorBoard(os.path.join(args.output_dir, "logs"))
        ],
        verbose=2,
    )
    train_seconds = time.time() - start

    decoder = ko.layers.BoxBinDecoder(box_space, max_detections=1)
    detections = decoder(model.predict(test_images, verbose=0))
    top_boxes = keras.ops.convert_to_numpy(detections["boxes"])[:, 0]
    iou = np.diag(
        keras.ops.convert_to_numpy(
            keras.utils.bounding_boxes.compute_iou(
                top_boxes, test_boxes, bounding_box_format="yxyx"
            )
        )
    )
    results = {
        "command": " ".join(
            ["python examples/localize_single_objects.py", *sys.argv[1:]]
        ),
        "arguments": vars(args),
        "box_space": box_space.get_config(),
        "quantization": report,
        "final_loss": float(history.history["loss"][-1]),
        "train_seconds": round(train_seconds, 1),
        "test_images": args.num_test,
        "fraction_localised_iou_0.5": float(np.mean(iou >= 0.5)),
        "mean_iou": float(np.mean(iou)),
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    save_gallery(
        test_images[:16],
        test_boxes[:16],
        top_boxes[:16],
        os.path.join(args.output_dir, "gallery.png"),
    )
    print(json.dumps(results, indent=2))
    return results


def save_gallery(images, true_boxes, predicted_boxes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def boxes(b):
        return {"boxes": b[:, None], "labels": np.zeros((len(b), 1), "int32")}

    drawn = keras.visualization.draw_bounding_boxes(
        images,
        boxes(true_boxes),
        "rel_yxyx",
        color=(0, 200, 0),
        line_thickness=1,
    )
    drawn = keras.visualization.draw_bounding_boxes(
        drawn,
        boxes(predicted_boxes),
        "rel_yxyx",
        color=(60, 120, 255),
        line_thickness=1,
    )
    figure, axes = plt.subplots(2, 8, figsize=(16, 4.4))
    for axis, image in zip(axes.flat, np.asarray(drawn)):
        axis.imshow(image)
        axis.axis("off")
    figure.suptitle("green: ground truth, blue: top decoded box")
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
