import csv
import json
import math
import pathlib
import zipfile

import keras
import numpy as np
import pytest

from keras_nmt import text
from keras_nmt.files import TEMP_PREFIX
from keras_nmt.training.distribute import mixed_precision_policy
from keras_nmt.training.run_directory import RunDirectory
from keras_nmt.training.trainer import TrainingDivergedError
from keras_nmt.training.trainer import train_translator
from keras_nmt.translator import Translator
from keras_nmt.translator import TranslatorLoadError

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"
TINY = {
    "embedding_dim": 8,
    "units": 16,
    "batch_size": 32,
    "max_length": 16,
    "learning_rate": 1e-2,
    "dropout": 0.2,  # so that resuming must restore the dropout seeds
    # The selection of the first version: by validation loss, all epochs
    # (tests/training/selection_test.py covers BLEU, patience and decay).
    "select_by": "loss",
    "patience": 0,
    "lr_patience": 0,
    "tokenizer": "word",  # the vocabulary files these tests read
    "label_smoothing": 0.0,  # the loss they recompute
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
    # The state after the last step stays, so the run can be continued.
    state = json.loads((out_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (4, 0)
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
    from keras_nmt.seq2seq import compile_seq2seq

    compile_seq2seq(model)
    loss = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(record.val_losses), rel=1e-4)
    history = _history(out_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2, 3]


class _Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after step `step` of
    epoch `epoch` (0-based)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def _assert_same_run(out_dir, reference_dir):
    rows, expected = _history(out_dir), _history(reference_dir)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in expected]
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(
            [float(r[key]) for r in rows],
            [float(r[key]) for r in expected],
            rtol=1e-6,
            err_msg=key,
        )
    weights = Translator.load(out_dir).model.get_weights()
    reference = Translator.load(reference_dir).model.get_weights()
    for a, b in zip(weights, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    done = json.loads((out_dir / "training.json").read_text())
    expected_done = json.loads((reference_dir / "training.json").read_text())
    assert done["steps"] == expected_done["steps"]
    assert done["completed_epochs"] == expected_done["completed_epochs"]


def test_run_interrupted_mid_epoch_resumes_exactly(trained, pairs, tmp_path):
    reference_dir = trained[0]  # the same run, never interrupted
    out_dir = tmp_path / "run"
    arguments = (pairs.train, pairs.validation, out_dir)
    with pytest.raises(KeyboardInterrupt):
        train_translator(
            *arguments,
            epochs=4,
            backup_every=1,
            callbacks=[_Interrupt(epoch=2, step=2)],
            **TINY,
        )
    state = json.loads((out_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (2, 3)  # 3 steps of epoch 2
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0, 1]

    for changed, message in (
        ({"units": 32}, r"units=32 \(the run used 16\)"),
        ({"batch_size": 16}, r"batch_size=16 \(the run used 32\)"),
        ({"mixed_precision": True}, r"mixed_precision=True"),
    ):
        with pytest.raises(ValueError, match=message):
            train_translator(
                *arguments, epochs=4, resume=True, **{**TINY, **changed}
            )

    resumed = _Record()
    translator = train_translator(
        *arguments, epochs=4, resume=True, callbacks=[resumed], **TINY
    )
    # The rest of epoch 2 (one fit), then epoch 3; epochs 0-1 not again.
    assert resumed.begun == [2, 3]
    state = json.loads((out_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (4, 0)
    assert isinstance(translator, Translator)
    # Weights, optimizer, data position, dropout seeds and running metrics
    # were restored: the numbers are those of the uninterrupted run.
    _assert_same_run(out_dir, reference_dir)


def test_crash_while_saving_the_best_model_keeps_the_previous_one(
    pairs, tmp_path, monkeypatch
):
    out_dir = tmp_path / "run"
    save = keras.Model.save
    written = []

    def save_that_fails_the_third_time(self, filepath, *args, **kwargs):
        # 1, 2: the checkpoints of epochs 0, 1.
        written.append(pathlib.Path(filepath))
        if len(written) == 2:
            pathlib.Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")
        return save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_that_fails_the_third_time)
    with pytest.raises(OSError, match="No space left on device"):
        # Without validation pairs the best epoch is the lowest training
        # loss, which falls every epoch here.
        train_translator(pairs.train, None, out_dir, epochs=3, **TINY)
    assert len(written) == 2
    # Every model was written under a temporary name, then renamed.
    for path in written:
        assert path.parent == out_dir or path.parent.parent == out_dir
        assert TEMP_PREFIX in path.relative_to(out_dir).parts[0]
    names = {p.name for p in out_dir.iterdir()}
    assert not [n for n in names if n.startswith(TEMP_PREFIX)], names
    assert zipfile.is_zipfile(out_dir / "model.keras")
    epoch_0 = Translator.load(out_dir)  # the checkpoint of epoch 0
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0]

    monkeypatch.undo()
    translator = train_translator(
        pairs.train, None, out_dir, epochs=3, resume=True, **TINY
    )
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0, 1, 2]
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(
            translator.model.get_weights(),
            epoch_0.model.get_weights(),
            strict=True,
        )
    ]
    assert any(changed)


def test_mixed_precision_trains_like_float32_and_translates(tmp_path):
    train, validation, _ = text.split_pairs(
        text.load_demo_pairs(max_pairs=400), seed=0
    )
    kwargs = {**TINY, "dropout": 0.0, "epochs": 3}
    train_translator(train, validation, tmp_path / "float32", **kwargs)
    mixed = train_translator(
        train, validation, tmp_path / "mixed", mixed_precision=True, **kwargs
    )
    assert keras.config.dtype_policy().name == "float32"  # restored
    policy = mixed_precision_policy()  # mixed_bfloat16 on a CPU
    described = json.loads((tmp_path / "mixed" / "training.json").read_text())
    assert described["dtype_policy"] == policy
    assert mixed.model.get_layer("decoder").dtype_policy.name == policy
    # The same fixed number of steps from the same initial weights: 16-bit
    # computations (8 significant bits in bfloat16) move the final losses
    # by ~0.03% here. 1% still catches a run that does not train in 16 bits
    # (the training loss falls by 30%, the validation loss by 8%).
    full, half = _history(tmp_path / "float32"), _history(tmp_path / "mixed")
    for key in ("loss", "val_loss"):
        values = [float(r[key]) for r in half]
        assert all(math.isfinite(v) for v in values), values
        assert values[-1] == pytest.approx(float(full[-1][key]), rel=0.01)
    assert float(half[-1]["loss"]) < 0.8 * float(half[0]["loss"])

    loaded = Translator.load(tmp_path / "mixed")
    assert loaded.model.get_layer("decoder").dtype_policy.name == policy
    sentences = validation.sources[:6]
    out = loaded.translate(sentences, method="beam")
    assert len(out) == 6 and all(isinstance(s, str) for s in out)
    assert loaded.translate(sentences) == mixed.translate(sentences)
    result = loaded.translate_with_attention(sentences[0])
    assert np.isfinite(result.attention).all()
    # The weights come in the policy's compute dtype: bfloat16 has 8 bits of
    # mantissa, so a row sums to 1 within a few 2**-8.
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-2)


def test_jit_compile_trains_like_graph_mode(tmp_path):
    """`jit_compile=True`: XLA train steps on batches padded to a few
    lengths. Padding is masked, so from the same initial weights and batches
    the losses are those of graph mode up to float rounding."""
    train, validation, _ = text.split_pairs(
        text.load_demo_pairs(max_pairs=200), seed=0
    )
    kwargs = {**TINY, "dropout": 0.0, "epochs": 2}
    graph = train_translator(train, validation, tmp_path / "graph", **kwargs)
    xla = train_translator(
        train, validation, tmp_path / "xla", jit_compile=True, **kwargs
    )
    assert (graph.model.jit_compile, xla.model.jit_compile) == (False, True)
    described = json.loads((tmp_path / "xla" / "training.json").read_text())
    assert described["jit_compile"] is True
    full, compiled = _history(tmp_path / "graph"), _history(tmp_path / "xla")
    for key in ("loss", "val_loss"):
        for row, other in zip(compiled, full, strict=True):
            assert float(row[key]) == pytest.approx(float(other[key]), rel=1e-4)
    assert float(compiled[-1]["loss"]) < float(compiled[0]["loss"])


def test_the_dtype_policy_is_restored_after_an_error(
    pairs, tmp_path, monkeypatch
):
    import keras_nmt.training.trainer as trainer

    def build_under_the_policy_then_fail(*args, **kwargs):
        assert keras.config.dtype_policy().name.startswith("mixed_")
        raise ValueError("no model today")

    monkeypatch.setattr(
        trainer, "build_seq2seq", build_under_the_policy_then_fail
    )
    with pytest.raises(ValueError, match="no model today"):
        train_translator(
            pairs.train, None, tmp_path, mixed_precision=True, **TINY
        )
    assert keras.config.dtype_policy().name == "float32"


def test_resume_without_an_interrupted_run(pairs, tmp_path):
    with pytest.raises(ValueError, match="Nothing to resume in .*first backup"):
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
        ({"backup_every": -1}, "backup_every=-1"),
        ({"strategy": "mirrored"}, r"tf\.distribute\.Strategy.*received str"),
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


# ---- nothing is ever lost ----------------------------------------------------


def _weights(directory):
    return Translator.load(directory).model.get_weights()


def test_a_directory_we_did_not_write_is_refused_and_untouched(pairs, tmp_path):
    out_dir = tmp_path / "mine"
    (out_dir / "backup").mkdir(parents=True)
    files = {
        "history.csv": "my,own\n",
        "training.json": "{}\n",
        "source_vocab.txt": "mine\n",
        "backup/state.json": "{}\n",
    }
    for name, content in files.items():
        (out_dir / name).write_text(content)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"not empty and was not written"):
            train_translator(
                pairs.train, None, out_dir, overwrite=overwrite, **TINY
            )
    for name, content in files.items():
        assert (out_dir / name).read_text() == content
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        {"backup", "history.csv", "training.json", "source_vocab.txt"}
    )


def test_a_trained_model_is_replaced_only_with_overwrite(
    trained, pairs, tmp_path
):
    import shutil

    out_dir = tmp_path / "run"
    shutil.copytree(trained[0], out_dir)
    before = _weights(out_dir)
    with pytest.raises(ValueError, match=r"holds a trained model.*--overwrite"):
        train_translator(pairs.train, pairs.validation, out_dir, **TINY)
    # Interrupted before its first checkpoint: the old model stays, whole,
    # and the staging directory beside it is gone.
    with pytest.raises(KeyboardInterrupt):
        train_translator(
            pairs.train,
            pairs.validation,
            out_dir,
            overwrite=True,
            epochs=2,
            callbacks=[_Interrupt(epoch=0, step=1)],
            **TINY,
        )
    for a, b in zip(_weights(out_dir), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    # A completed run replaces it.
    record = _Record()
    train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        overwrite=True,
        epochs=1,
        callbacks=[record],
        **{**TINY, "units": 24},
    )
    assert json.loads((out_dir / "training.json").read_text())["units"] == 24
    assert Translator.load(out_dir).model.get_layer("decoder").units == 24
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_one_run_at_a_time(pairs, tmp_path):
    with RunDirectory(tmp_path / "run") as run:
        run.prepare(resume=False, overwrite=False)
        with pytest.raises(ValueError, match=r"in use by another"):
            train_translator(pairs.train, None, tmp_path / "run", **TINY)
    # Released on exit.
    with RunDirectory(tmp_path / "run") as run:
        run.prepare(resume=False, overwrite=False)


class _PoisonWeights(keras.callbacks.Callback):
    """Makes the loss NaN from the first step, as a diverged run would."""

    def on_train_batch_begin(self, batch, logs=None):
        embedding = self.model.get_layer("encoder").embedding.embeddings
        embedding.assign(np.full(embedding.shape, np.nan, "float32"))


def test_a_diverged_run_saves_no_model_and_says_so(pairs, tmp_path):
    out_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"no epoch produced a"):
        train_translator(
            pairs.train,
            pairs.validation,
            out_dir,
            epochs=3,
            callbacks=[_PoisonWeights()],
            **TINY,
        )
    assert not (out_dir / "model.keras").exists()
    assert not (out_dir / "backup").exists()
    with pytest.raises(TranslatorLoadError, match="not completed an epoch"):
        Translator.load(out_dir)
    with pytest.raises(ValueError, match=r"learning_rate=inf"):
        train_translator(
            pairs.train, None, out_dir, **{**TINY, "learning_rate": math.inf}
        )


def test_only_our_backup_files_are_deleted(pairs, tmp_path):
    out_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_translator(
            pairs.train,
            None,
            out_dir,
            backup_every=1,
            callbacks=[_Interrupt(epoch=0, step=1)],
            **TINY,
        )
    assert (out_dir / "backup" / "state.json").is_file()
    (out_dir / "backup" / "my-notes.txt").write_text("keep me")
    before = {p.name for p in (out_dir / "backup").iterdir()}
    train_translator(pairs.train, None, out_dir, epochs=1, **TINY)
    after = {p.name for p in (out_dir / "backup").iterdir()}
    # The interrupted run's files are gone (replaced by the new run's
    # final state); the user's file is still there.
    assert (out_dir / "backup" / "my-notes.txt").read_text() == "keep me"
    old_weights = {n for n in before if n.endswith(".weights.h5")}
    assert old_weights and not old_weights & after


# ---- checkpoint averaging ----------------------------------------------------


@pytest.fixture(scope="module")
def kept(pairs, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("kept")
    train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=3,
        keep_checkpoints=2,
        **TINY,
    )
    return out_dir


def test_the_last_epochs_are_kept(kept):
    names = sorted(p.name for p in (kept / "checkpoints").iterdir())
    assert names == ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]


def test_averaging_is_the_mean_of_the_checkpoints(kept):
    from keras_nmt.training import average_checkpoints

    model = Translator.load(kept).model
    arrays = []
    for name in ("epoch-0002.weights.h5", "epoch-0003.weights.h5"):
        model.load_weights(kept / "checkpoints" / name)
        arrays.append(model.get_weights())
    averaged = average_checkpoints(kept, last=2).model.get_weights()
    for a, b, mean in zip(*arrays, averaged, strict=True):
        if np.issubdtype(mean.dtype, np.floating):
            np.testing.assert_allclose(mean, (a + b) / 2, rtol=1e-6)
    # One checkpoint averaged with itself is that checkpoint.
    last = average_checkpoints(kept, last=1).model.get_weights()
    for a, b in zip(last, arrays[1], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"last 3 checkpoints.*kept 2"):
        average_checkpoints(kept, last=3)


def test_averaging_identical_checkpoints_is_the_checkpoint(kept, tmp_path):
    import shutil

    from keras_nmt.training import average_checkpoints

    run = tmp_path / "run"
    shutil.copytree(kept, run)
    only = run / "checkpoints" / "epoch-0003.weights.h5"
    shutil.copy(only, run / "checkpoints" / "epoch-0002.weights.h5")
    model = Translator.load(run).model
    model.load_weights(only)
    expected = model.get_weights()
    averaged = average_checkpoints(run, last=2)
    for a, b in zip(averaged.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    sentences = ["Hola.", "¿Dónde está Tom?"]
    assert averaged.translate(sentences) == Translator(
        model, averaged.processor, max_length=averaged.max_length
    ).translate(sentences)


def test_the_average_command_writes_a_new_model_only(kept, tmp_path, capsys):
    from keras_nmt.cli import main
    from keras_nmt.training import average_checkpoints

    out = tmp_path / "averaged"
    assert (
        main(
            ["average", "--model", str(kept), "--last", "2", "--out", str(out)]
        )
        == 0
    )
    expected = average_checkpoints(kept, last=2).model.get_weights()
    for a, b in zip(_weights(out), expected, strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert (
        main(
            [
                "average",
                "--model",
                str(kept),
                "--last",
                "2",
                "--out",
                str(tmp_path / "mine"),
            ]
        )
        == 1
    )
    assert "not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_run_of_an_older_version_resumes_with_its_settings_of_then(
    tmp_path,
):
    """A training.json written before `tokenizer`, `label_smoothing` and
    `attentional` existed: its run had word vocabularies, no smoothing and
    Luong's tanh (not today's defaults), so only those settings resume it."""
    from keras_nmt.training.settings import TrainingSettings
    from keras_nmt.training.trainer import _check_resumable

    recorded = TrainingSettings().to_dict()
    for name in ("tokenizer", "label_smoothing", "attentional"):
        del recorded[name]
    (tmp_path / "training.json").write_text(json.dumps(recorded))
    with pytest.raises(ValueError) as raised:
        _check_resumable(tmp_path, TrainingSettings(), {})
    message = str(raised.value)
    assert "tokenizer='subword' (the run used 'word')" in message
    assert "label_smoothing=0.1 (the run used 0.0)" in message
    assert "attentional='residual' (the run used 'tanh')" in message
    _check_resumable(
        tmp_path,
        TrainingSettings(
            tokenizer="word", label_smoothing=0.0, attentional="tanh"
        ),
        {},
    )
