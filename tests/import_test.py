"""`import keras_nmt` stays light on every backend.

TensorFlow, tensorflow-text, sacrebleu and matplotlib are needed only by the
text pipeline, the translator and the plots, which load on first use.
"""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "tensorflow_text", "sacrebleu", "matplotlib")

SCRIPT = """
import json, sys
import keras
before = set(sys.modules)
import keras_nmt
import keras_nmt.decoding
import keras_nmt.layers
import keras_nmt.seq2seq
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_package_import_adds_no_heavy_module(backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    added = json.loads(result.stdout.strip().splitlines()[-1])
    roots = {name.split(".")[0] for name in added}
    assert not roots & set(HEAVY), sorted(roots & set(HEAVY))
    assert "keras_nmt" in roots  # the check saw the package load


def test_lazy_names_load_on_first_use():
    import keras_nmt

    assert callable(keras_nmt.Translator)
    assert callable(keras_nmt.plot_attention)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        keras_nmt.Nope  # noqa: B018
