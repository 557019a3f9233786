"""`import keras_nmt` stays light on every backend.

TensorFlow, tensorflow-text, sacrebleu and matplotlib are needed only by the
text pipeline, the translator and the plots, which load on first use.
"""

import json
import os
import subprocess
import sys

import pytest

HEAVY = (
    "tensorflow",
    "tensorflow_text",
    "sacrebleu",
    "matplotlib",
    "sentencepiece",
    "tensorboard",
)

SCRIPT = """
import json, sys
import keras
before = set(sys.modules)
import keras_nmt
import keras_nmt.decoding
import keras_nmt.layers
import keras_nmt.seq2seq
keras_nmt.seq2seq.build_seq2seq  # resolves the lazy names
keras_nmt.decoding.greedy_search
print(json.dumps(sorted(set(sys.modules) - before)))
"""

BARE = """
import json, sys
import keras_nmt
import keras_nmt.decoding.methods
import keras_nmt.seq2seq.options
import keras_nmt.training.settings
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                        ("keras", "tensorflow", "jax", "torch", "numpy"))))
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


def test_the_package_and_its_option_modules_import_no_framework():
    result = subprocess.run(
        [sys.executable, "-c", BARE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_exported_name_resolves():
    import keras_nmt
    import keras_nmt.decoding
    import keras_nmt.seq2seq
    import keras_nmt.training

    for package in (
        keras_nmt,
        keras_nmt.decoding,
        keras_nmt.seq2seq,
        keras_nmt.training,
    ):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
        assert set(package.__all__) <= set(dir(package))
