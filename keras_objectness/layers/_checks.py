"""Old home of the argument checks, kept so existing imports work.

The checks live in `keras_objectness._checks`, NMS in
`keras_objectness.layers.nms`; import from there.
"""

from keras_objectness._checks import *  # noqa: F401,F403
from keras_objectness._checks import is_number as _is_number  # noqa: F401
from keras_objectness.layers.nms import check_nms_arguments  # noqa: F401
from keras_objectness.layers.nms import non_max_suppression  # noqa: F401
