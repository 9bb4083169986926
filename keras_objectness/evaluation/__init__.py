"""Evaluation: matching, precision-recall, AP/mAP and error analysis.

Pure numpy. Inputs may be numpy arrays or eager tensors (read with
`np.asarray`).
"""

from keras_objectness.evaluation.average_precision import average_precision
from keras_objectness.evaluation.average_precision import precision_recall_auc
from keras_objectness.evaluation.average_precision import precision_recall_curve
from keras_objectness.evaluation.detection_evaluator import DetectionEvaluator
from keras_objectness.evaluation.error_analysis import (
    DEFAULT_FALSE_POSITIVE_COUNTS,
)
from keras_objectness.evaluation.error_analysis import ERROR_TYPES
from keras_objectness.evaluation.error_analysis import FalsePositiveAnalyzer
from keras_objectness.evaluation.error_analysis import classify_false_positives
from keras_objectness.evaluation.error_analysis import false_positive_breakdown
from keras_objectness.evaluation.error_analysis import (
    plot_false_positive_breakdown,
)
from keras_objectness.evaluation.matching import compute_iou
from keras_objectness.evaluation.matching import match_detections
from keras_objectness.evaluation.proposal_recall import proposal_recall

__all__ = [
    "DEFAULT_FALSE_POSITIVE_COUNTS",
    "DetectionEvaluator",
    "ERROR_TYPES",
    "FalsePositiveAnalyzer",
    "average_precision",
    "classify_false_positives",
    "compute_iou",
    "false_positive_breakdown",
    "match_detections",
    "plot_false_positive_breakdown",
    "precision_recall_auc",
    "precision_recall_curve",
    "proposal_recall",
]
