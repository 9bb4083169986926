"""The settings of the LSDA workflow, in one validated object."""

import dataclasses
import numbers

from keras_objectness import _checks

PROPOSAL_SOURCES = ("selective_search", "objectness", "sliding")
CLASSIFIER_PRESETS = ("alexnet_small",)


@dataclasses.dataclass
class WorkflowConfig:
    """Every setting of `keras_objectness.workflows` in one place.

    The defaults are those of the main job (`keras-objectness run` on the
    bundled `silhouette_scenes`); every field is also a command-line flag
    of the same name (`--classifier-epochs`, ...).

    Attributes:
        output_dir: folder for results, models, figures and (by default)
            resume checkpoints.
        seed: seed of every pipeline, initialiser and sampler.
        batch_size: global batch size of every training.
        classifier: `"alexnet_small"` (the built-in AlexNet-style preset),
            a path to a `.keras` classifier (used as trained), or the name
            of a `keras.applications` model (built with `weights=None`).
        crop_size: side of the classifier's input and of region crops.
        classifier_epochs: epochs of classifier training (0: do not train).
        classifier_min_crop: random square crops of at least this relative
            side augment classifier training (0: whole images).
        dropout_rate: dropout after fc6 and fc7 of the built-in preset
            (0 by default: in the main job's 10 epochs the preset
            converges faster without it, 42 against 35 % top-1).
        learning_rate: Adam rate of the classifier and the proposer.
        proposal_source: `"selective_search"` (OpenCV, no training),
            `"objectness"` (a class-generic objectness detector trained on
            B's boxes) or `"sliding"` (fixed windows).
        proposals: proposals scored per image.
        proposer_epochs: epochs of the objectness proposer.
        proposer_image_size: input side of the objectness proposer.
        proposal_iou: non-max suppression overlap among proposals.
        method: adaptation method (see `keras_objectness.workflows.METHODS`),
            or `"auto"`: `"joint_image_refined"` where the data has scenes
            to read image labels of A from (the `"image_label_scenes"`
            role), else `"joint"` (see `for_source`).
        knn: neighbours in B for the `"lsda"` offsets, or `"all"`.
        image_label_scenes: scenes with a class of A whose image labels
            the `"joint_image_*"` methods read, at
            most (the classifier scores 256 windows or 100 selective-search
            proposals of each).
        finetune_epochs: epochs of detection fine-tuning.
        finetune_learning_rate: Adam rate of fine-tuning.
        frozen_layers: the first this many layers with weights of the
            classifier (in graph order: conv1 and conv2 of the preset)
            keep their weights during fine-tuning, as in Fast R-CNN; 0
            fine-tunes every layer. The default 2 fine-tunes about 1.5x
            faster than 0 for 0.6 mAP of A and 2 of B in the main job.
        regions_per_image: region crops sampled per training scene.
        positive_fraction: largest share of object regions among them.
        flip: whether training flips images left-right (turn it off for
            digits, text and other chiral classes).
        iou_threshold: per-class non-max suppression overlap of detection.
        max_test_images: cap on the test images (`None`: all).
        gallery_images: test images drawn in the gallery.
        save_freq: resume checkpoint every this many steps.
        backup_dir: resume checkpoints (`None`: `output_dir/backup`).
        verbose: Keras verbosity of the trainings (0, 1 or 2).
        region_features: "per_crop" (every proposal cropped and run
            through the whole network, R-CNN) or "shared" (the trunk runs
            once per image and proposals are pooled from its maps, Fast
            R-CNN; fine-tuned that way too, the joint methods' image-labelled
            examples as whole images). The baseline is always per crop.
        mixed_precision: compute dtype of new models: float32, or the
            bfloat16 / float16 mixed policies (variables, normalisation,
            softmaxes and boxes stay float32). Slower than float32 for the
            small presets on a 2-core CPU: see
            benchmarks/results/mixed_precision.json.
    """

    output_dir: str = "runs/keras_objectness"
    seed: int = 0
    batch_size: int = 64
    classifier: str = "alexnet_small"
    crop_size: int = 32
    classifier_epochs: int = 10
    classifier_min_crop: float = 0.75
    dropout_rate: float = 0.0
    learning_rate: float = 1e-3
    proposal_source: str = "selective_search"
    proposals: int = 100
    proposer_epochs: int = 12
    proposer_image_size: int = 64
    proposal_iou: float = 0.5
    method: str = "auto"
    knn: object = 5
    image_label_scenes: int = 1000
    finetune_epochs: int = 3
    finetune_learning_rate: float = 1e-4
    frozen_layers: int = 2
    regions_per_image: int = 8
    positive_fraction: float = 0.25
    flip: bool = True
    iou_threshold: float = 0.3
    max_test_images: object = None
    gallery_images: int = 6
    save_freq: int = 50
    backup_dir: object = None
    verbose: int = 2
    region_features: str = "per_crop"
    mixed_precision: str = "float32"

    def __post_init__(self):
        for name in (
            "batch_size",
            "crop_size",
            "proposals",
            "proposer_image_size",
            "regions_per_image",
            "save_freq",
            "image_label_scenes",
        ):
            _checks.check_int(name, getattr(self, name), minimum=1)
        for name in (
            "classifier_epochs",
            "proposer_epochs",
            "finetune_epochs",
            "gallery_images",
            "seed",
            "frozen_layers",
        ):
            _checks.check_int(name, getattr(self, name), minimum=0)
        _checks.check_int(
            "max_test_images", self.max_test_images, allow_none=True
        )
        for name in (
            "classifier_min_crop",
            "dropout_rate",
            "positive_fraction",
            "proposal_iou",
            "iou_threshold",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not 0.0 <= value <= 1.0
            ):
                raise ValueError(
                    f"`{name}` must be a number in [0, 1]. "
                    f"Received: {name}={value!r}"
                )
        for name in ("learning_rate", "finetune_learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(
                    f"`{name}` must be a positive number. "
                    f"Received: {name}={value!r}"
                )
        if self.proposal_source not in PROPOSAL_SOURCES:
            raise ValueError(
                f"`proposal_source` must be one of {PROPOSAL_SOURCES}. "
                f"Received: proposal_source={self.proposal_source!r}"
            )
        from keras_objectness.workflows.finetuning import METHODS

        if self.method not in (*METHODS, "auto"):
            raise ValueError(
                f"`method` must be 'auto' or one of {tuple(METHODS)}. "
                f"Received: method={self.method!r}"
            )
        from keras_objectness.workflows.finetuning import DETECTORS

        if self.region_features not in DETECTORS:
            raise ValueError(
                f"`region_features` must be one of {tuple(DETECTORS)}. "
                f"Received: region_features={self.region_features!r}"
            )
        if isinstance(self.knn, str) and self.knn.isdigit():
            self.knn = int(self.knn)
        if self.knn != "all":
            _checks.check_int("knn", self.knn, minimum=1)
        if self.verbose not in (0, 1, 2):
            raise ValueError(
                "`verbose` must be 0, 1 or 2. "
                f"Received: verbose={self.verbose!r}"
            )
        if not isinstance(self.flip, bool):
            raise ValueError(
                f"`flip` must be a bool. Received: flip={self.flip!r}"
            )

        from keras_objectness.workflows.precision import check_precision

        check_precision(self.mixed_precision)

    def to_dict(self):
        return dataclasses.asdict(self)

    def for_source(self, source):
        """This config with `method="auto"` made concrete for `source`.

        `"joint_image_refined"` needs scenes whose image labels it places
        on boxes: it is chosen where `source` has the `"image_label_scenes"`
        role; elsewhere `"joint"`, which needs only image-labelled examples.
        Of the methods in `benchmarks/results/adaptation_robustness.json`
        it closed the most of the held-out gap on average in every regime
        (3 seeds each) and never fell below the classifier alone; it
        trains twice (`"joint_image_proposals"`, one round, is the cheaper
        choice).
        """
        if self.method != "auto":
            return self
        method = "joint"
        if source.has_role("image_label_scenes"):
            method = "joint_image_refined"
        return dataclasses.replace(self, method=method)
