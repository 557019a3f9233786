"""Silencing what native code (TensorFlow, SentencePiece) writes to file
descriptor 2, where Python's `sys.stderr` settings cannot reach."""

from __future__ import annotations

import contextlib
import os
import sys

# Set to keep native log lines (and tracebacks of the command line).
DEBUG_ENV_VAR = "KERAS_NMT_DEBUG"


@contextlib.contextmanager
def native_stderr_to_devnull():
    """Send what native code writes to file descriptor 2 to /dev/null
    while the block runs (Python's own `sys.stderr` writes are flushed
    first); a no-op with `KERAS_NMT_DEBUG` set."""
    if os.environ.get(DEBUG_ENV_VAR):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
