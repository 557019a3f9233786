import csv
import json
import pathlib

import keras
import pytest

from keras_attention import text
from keras_attention.training import train_translator
from keras_attention.translator import Translator

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"
TINY = {
    "embedding_dim": 8,
    "units": 16,
    "batch_size": 32,
    "max_length": 16,
    "learning_rate": 1e-2,
    "verbose": 0,
}


@pytest.fixture(scope="module")
def pairs():
    return text.split_pairs(text.read_pairs(FIXTURE, reverse=True), seed=0)


class _Record(keras.callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.begun, self.val_losses, self.stop_after = [], [], stop_after

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(logs["val_loss"])
        if self.stop_after is not None and epoch + 1 == self.stop_after:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C


def _history(out_dir):
    with open(out_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run")
    record = _Record()
    translator = train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=4,
        callbacks=[record],
        **TINY,
    )
    return out_dir, translator, record


def test_writes_a_loadable_translator(trained, pairs):
    out_dir, translator, _ = trained
    assert isinstance(translator, Translator)
    names = {p.name for p in out_dir.iterdir()}
    assert {
        "model.keras",
        "translator.json",
        "source_vocab.txt",
        "target_vocab.txt",
        "text_processor.json",
        "history.csv",
        "training.json",
    } <= names
    assert "backup" not in names  # deleted once training completed
    arguments = json.loads((out_dir / "training.json").read_text())
    assert arguments["units"] == 16 and arguments["epochs"] == 4
    sentences = pairs.validation.sources[:5]
    loaded = Translator.load(out_dir)
    assert loaded.translate(sentences) == translator.translate(sentences)
    assert loaded.max_length == 16


def test_vocabulary_comes_from_the_training_pairs_only(trained, pairs):
    _, translator, _ = trained
    expected = text.TextProcessor.from_sentences(
        pairs.train.sources, pairs.train.targets
    )
    assert translator.processor.source_vocabulary == expected.source_vocabulary


def test_keeps_the_weights_of_the_best_validation_loss(trained, pairs):
    out_dir, translator, record = trained
    assert len(record.val_losses) == 4
    ds = text.make_dataset(
        pairs.validation, translator.processor, batch_size=32, shuffle=False
    )
    model = Translator.load(out_dir).model
    from keras_attention.seq2seq import compile_seq2seq

    compile_seq2seq(model)
    loss = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(record.val_losses), rel=1e-4)
    history = _history(out_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2, 3]


def test_interrupted_run_resumes_where_it_stopped(pairs, tmp_path):
    out_dir = tmp_path / "run"
    interrupt = _Record(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        train_translator(
            pairs.train,
            pairs.validation,
            out_dir,
            epochs=3,
            callbacks=[interrupt],
            **TINY,
        )
    assert interrupt.begun == [0, 1]
    assert (out_dir / "backup").is_dir()

    with pytest.raises(ValueError, match=r"units=32 \(the run used 16\)"):
        train_translator(
            pairs.train,
            pairs.validation,
            out_dir,
            epochs=3,
            resume=True,
            **{**TINY, "units": 32},
        )

    resumed = _Record()
    translator = train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=3,
        resume=True,
        callbacks=[resumed],
        **TINY,
    )
    assert resumed.begun == [2]  # epochs 0 and 1 were not trained again
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0, 1, 2]
    assert not (out_dir / "backup").exists()
    assert isinstance(translator, Translator)


def test_resume_without_an_interrupted_run(pairs, tmp_path):
    with pytest.raises(FileNotFoundError, match="Nothing to resume in"):
        train_translator(
            pairs.train, pairs.validation, tmp_path, resume=True, **TINY
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train_pairs": "Hola.\tHello."}, "SentencePairs"),
        ({"train_pairs": ([], [])}, "is empty"),
        ({"epochs": 0}, "epochs=0"),
        ({"cell": "rnn"}, "cell"),
    ],
)
def test_invalid_arguments(pairs, tmp_path, kwargs, message):
    arguments = {
        "train_pairs": pairs.train,
        "validation_pairs": None,
        "out_dir": tmp_path,
        **TINY,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        train_translator(**arguments)
