import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides tests/conftest.py's fixture of the same name for this folder.

    These tests build no Keras layers or models (the one that does clears
    the session itself), and `keras.utils.clear_session()` runs a full
    garbage collection (~0.5 s with TensorFlow loaded) before each test.
    """
    yield
