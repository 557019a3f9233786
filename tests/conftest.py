import os
import signal

# Quiet TensorFlow before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# A test run started in the background (`cmd &`, nohup, some CI runners)
# inherits SIGINT ignored, and so would every command the tests start, which
# then could not be interrupted as the Ctrl-C tests do. A caught signal is
# reset to its default in a child process, an ignored one is not: catch it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session and a float32 policy.

    Without the garbage collection that `clear_session` runs by default
    (about 0.5 s per test with TensorFlow loaded).
    """
    keras.utils.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)  # reproducible weight initialisation
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
