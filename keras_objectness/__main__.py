"""`python -m keras_objectness`: the `keras-objectness` command line."""

import sys

from keras_objectness.cli import main

if __name__ == "__main__":
    sys.exit(main())
