import gc

import pytest


@pytest.fixture(autouse=True)
def _freeze_survivors(_fresh_keras_state):
    """Makes the next test's `clear_session()` cheap.

    The shared autouse fixture calls `keras.utils.clear_session()`, whose
    full `gc.collect()` walks every live object: the ~400,000 TensorFlow
    creates at import (which Keras imports on the first `get_config()` even
    on the JAX and PyTorch backends) cost about 0.5 s per test on a small
    CPU, more than most tests take. Right after that collection, freezing
    what survived takes it out of the collector's sight; what each test
    creates is still collected by the next test's `clear_session()`.
    """
    gc.freeze()
    yield


@pytest.fixture(scope="package", autouse=True)
def _unfreeze_after_layer_tests():
    yield
    gc.unfreeze()
