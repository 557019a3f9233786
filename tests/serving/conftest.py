"""Shared fixtures of the serving tests: a tiny untrained translator saved
to a temporary directory, loaded twice (once for the server, once as the
independent reference the answers are compared with), and a server on
127.0.0.1 with an ephemeral port.

The untrained model's weights are scaled so that its attention is peaked
and differs from step to step (a plain untrained model attends almost
uniformly, and every row of its attention maps would look alike), and its
translations differ from sentence to sentence: a request given another
request's results would be caught.
"""

import pathlib
import threading

import keras
import pytest

from keras_nmt import text
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.serving.server import TranslationServer
from keras_nmt.serving.settings import ServerSettings
from keras_nmt.text import TextProcessor
from keras_nmt.translator import Translator

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"
BATCH_SIZE = 8
# Small limits, so the 413 cases stay small.
SETTINGS = ServerSettings(port=0, max_sentences=16, max_chars=200)


def _peaked(model: keras.Model) -> keras.Model:
    """Scale the encoder, attention and decoder-cell weights: larger
    encoder outputs and scores, so the attention is far from uniform."""
    for variable in model.weights:
        path = variable.path
        if path.startswith("encoder/embedding"):
            factor = 40.0
        elif path.startswith("encoder") or "cell" in path:
            factor = 3.0
        elif "attention" in path:
            factor = 10.0
        else:
            continue
        variable.assign(variable.numpy() * factor)
    return model


@pytest.fixture(scope="session")
def source_pairs():
    return text.read_pairs(FIXTURE, max_pairs=300)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, source_pairs):
    """An untrained translator (batch_size 8) saved in a directory."""
    processor = TextProcessor.from_sentences(
        source_pairs.sources, source_pairs.targets, max_length=12
    )
    keras.utils.set_random_seed(7)
    model = build_seq2seq(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=8,
        units=16,
        attention="general",
    )
    directory = tmp_path_factory.mktemp("serving") / "model"
    Translator(_peaked(model), processor, batch_size=BATCH_SIZE).save(directory)
    return directory


@pytest.fixture(scope="session")
def reference(model_dir):
    """The saved translator, loaded on its own: the reference."""
    return Translator.load(model_dir)


@pytest.fixture(scope="session")
def sentences(reference, source_pairs):
    """48 source sentences whose greedy translations all differ (short
    enough not to be truncated to the model's 12 tokens)."""
    candidates = [
        s for s in dict.fromkeys(source_pairs.sources) if len(s) <= 20
    ]
    translations = reference.translate(candidates)
    chosen, seen = [], set()
    for sentence, translation in zip(candidates, translations, strict=True):
        if translation and translation not in seen:
            chosen.append(sentence)
            seen.add(translation)
    assert len(chosen) >= 48, len(chosen)
    return chosen[:48]


@pytest.fixture(scope="session")
def server(model_dir):
    """A `TranslationServer` of its own loaded translator on 127.0.0.1,
    port 0, serving from a thread."""
    served = TranslationServer(
        Translator.load(model_dir), SETTINGS, model_dir=str(model_dir)
    )
    thread = threading.Thread(
        target=served.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()
        thread.join(10)


@pytest.fixture(scope="session")
def api(server):
    """The server's `TranslationApi`, called without a socket."""
    return server.api
