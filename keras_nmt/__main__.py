"""`python -m keras_nmt`: the `keras-nmt` command."""

import sys

from keras_nmt.cli import main

if __name__ == "__main__":
    sys.exit(main())
