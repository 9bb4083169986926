"""Training beyond one machine, resumable at any step."""

from keras_objectness.training.cluster import is_chief
from keras_objectness.training.cluster import prepare_dataset
from keras_objectness.training.cluster import worker_id
from keras_objectness.training.resumable_fit import resumable_fit

__all__ = ["is_chief", "prepare_dataset", "resumable_fit", "worker_id"]
