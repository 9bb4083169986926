"""The LSDA recipe as library functions: data in, detectors and results out.

`run_lsda` strings the steps together; each step is a function of its own
(`train_classifier`, `train_proposer`, `make_proposals`,
`finetune_detector`, `detect_on_proposals`, `evaluate_detections`,
`draw_gallery`), and the `keras-objectness` command line calls them.
"""

from keras_objectness.workflows import robustness
from keras_objectness.workflows.classifiers import build_classifier
from keras_objectness.workflows.classifiers import train_classifier
from keras_objectness.workflows.config import PROPOSAL_SOURCES
from keras_objectness.workflows.config import WorkflowConfig
from keras_objectness.workflows.data_source import CocoDataSource
from keras_objectness.workflows.data_source import DataSource
from keras_objectness.workflows.data_source import TfdsSource
from keras_objectness.workflows.finetuning import METHODS
from keras_objectness.workflows.finetuning import detection_network_copy
from keras_objectness.workflows.finetuning import finetune_detector
from keras_objectness.workflows.finetuning import region_batches
from keras_objectness.workflows.gallery import draw_gallery
from keras_objectness.workflows.image_label_regions import image_label_boxes
from keras_objectness.workflows.image_label_regions import image_label_scenes
from keras_objectness.workflows.image_label_regions import most_confident_picks
from keras_objectness.workflows.image_label_regions import scene_proposals
from keras_objectness.workflows.lsda import classification_examples
from keras_objectness.workflows.lsda import classifier_from_config
from keras_objectness.workflows.lsda import finetune_from_config
from keras_objectness.workflows.lsda import make_strategy
from keras_objectness.workflows.lsda import proposer_from_config
from keras_objectness.workflows.lsda import run_lsda
from keras_objectness.workflows.lsda import test_arrays
from keras_objectness.workflows.objectness import classifier_from_detector
from keras_objectness.workflows.objectness import draw_objectness_gallery
from keras_objectness.workflows.objectness import evaluate_objectness
from keras_objectness.workflows.objectness import load_split
from keras_objectness.workflows.objectness import objectness_backbone
from keras_objectness.workflows.objectness import objectness_box_space
from keras_objectness.workflows.objectness import objectness_grid
from keras_objectness.workflows.objectness import plot_precision_recall
from keras_objectness.workflows.objectness import pretrain_classifier
from keras_objectness.workflows.objectness import run_objectness
from keras_objectness.workflows.objectness import train_objectness
from keras_objectness.workflows.objectness import validation_arrays
from keras_objectness.workflows.precision import PRECISIONS
from keras_objectness.workflows.precision import precision_policy
from keras_objectness.workflows.progress import StageLog
from keras_objectness.workflows.proposals import make_proposals
from keras_objectness.workflows.proposals import proposer_box_space
from keras_objectness.workflows.proposals import sliding_windows
from keras_objectness.workflows.proposals import train_proposer
from keras_objectness.workflows.scoring import detect_on_proposals
from keras_objectness.workflows.scoring import evaluate_detections
from keras_objectness.workflows.scoring import region_scores_model
from keras_objectness.workflows.vocabulary import add_classes
from keras_objectness.workflows.vocabulary import fit_class_columns

__all__ = [
    "CocoDataSource",
    "DataSource",
    "METHODS",
    "PRECISIONS",
    "PROPOSAL_SOURCES",
    "StageLog",
    "TfdsSource",
    "WorkflowConfig",
    "add_classes",
    "build_classifier",
    "classification_examples",
    "classifier_from_config",
    "classifier_from_detector",
    "detect_on_proposals",
    "detection_network_copy",
    "draw_gallery",
    "image_label_boxes",
    "scene_proposals",
    "image_label_scenes",
    "most_confident_picks",
    "draw_objectness_gallery",
    "evaluate_detections",
    "evaluate_objectness",
    "finetune_detector",
    "finetune_from_config",
    "fit_class_columns",
    "load_split",
    "make_proposals",
    "make_strategy",
    "objectness_backbone",
    "objectness_box_space",
    "objectness_grid",
    "plot_precision_recall",
    "precision_policy",
    "pretrain_classifier",
    "proposer_box_space",
    "proposer_from_config",
    "region_batches",
    "region_scores_model",
    "robustness",
    "run_lsda",
    "run_objectness",
    "sliding_windows",
    "test_arrays",
    "train_classifier",
    "train_objectness",
    "train_proposer",
    "validation_arrays",
]
