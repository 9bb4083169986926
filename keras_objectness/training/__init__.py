"""Training beyond one machine, resumable at any step."""

from keras_objectness.training.resumable_fit import is_chief
from keras_objectness.training.resumable_fit import resumable_fit
from keras_objectness.training.resumable_fit import worker_id

__all__ = ["is_chief", "resumable_fit", "worker_id"]
