"""Model selection while training: validation BLEU, the best-by-BLEU
checkpoint, early stopping, learning-rate decay, the time budget, continuing
a finished run, TensorBoard and the label-smoothed loss."""

import csv
import json
import pathlib
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt import text
from keras_nmt.seq2seq.losses import SmoothedCrossEntropy
from keras_nmt.training.selection import Patience
from keras_nmt.training.selection import PlateauDecay
from keras_nmt.training.selection import validation_subset
from keras_nmt.training.trainer import train_translator
from keras_nmt.translator import Translator

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"
TINY = {
    "embedding_dim": 8,
    "units": 16,
    "batch_size": 16,
    "max_length": 16,
    "learning_rate": 1e-2,
    "verbose": 0,
    "backup_every": 0,
}


@pytest.fixture(scope="module")
def pairs():
    return text.split_pairs(text.read_pairs(FIXTURE, reverse=True), seed=0)


def _history(out_dir):
    with open(out_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _training(out_dir):
    return json.loads((out_dir / "training.json").read_text())


# ---- the loss ----------------------------------------------------------------


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_smoothed_loss_matches_the_formula(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    targets = rng.integers(1, 7, size=(3, 5))
    targets[0, 3:] = 0  # padding
    targets[2, 1:] = 0
    log_p = _log_softmax(logits.astype("float64"))
    nll = -np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    per_token = (1 - eps) * nll + eps * -log_p.mean(-1)
    real = targets != 0
    expected = per_token[real].mean()
    loss = SmoothedCrossEntropy(eps)(targets, logits)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    if eps == 0.0:  # Keras' own masked loss
        keras_loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        )(targets, logits)
        assert float(loss) == pytest.approx(float(keras_loss), rel=1e-5)


def test_smoothed_loss_refuses_a_bad_rate():
    with pytest.raises(ValueError, match=r"label_smoothing=1.0.*\[0, 1\)"):
        SmoothedCrossEntropy(1.0)


# ---- the rules, on hand-made histories ---------------------------------------


def _attach(callback, learning_rate=1.0):
    optimizer = keras.optimizers.SGD(learning_rate)
    callback.set_model(types.SimpleNamespace(stop_training=False))
    callback.model.optimizer = optimizer
    return callback


def test_patience_stops_after_n_epochs_without_a_better_bleu():
    rule = _attach(Patience("val_bleu", patience=2))
    stopped_after = None
    for epoch, bleu in enumerate([1.0, 3.0, 2.0, 3.0, 2.5, 9.0]):
        rule.on_epoch_end(epoch, {"val_bleu": bleu})
        if rule.model.stop_training:
            stopped_after = epoch
            break
    # Best 3.0 at epoch 1; epochs 2 and 3 are not better (equal is not).
    assert stopped_after == 3


def test_patience_counts_the_epochs_before_a_resume():
    previous = [{"val_loss": "2.0"}, {"val_loss": "1.0"}, {"val_loss": "1.5"}]
    rule = _attach(Patience("val_loss", patience=2, previous=previous))
    rule.on_epoch_end(3, {"val_loss": 1.2})
    assert rule.model.stop_training


def test_plateau_decay_halves_the_rate_every_n_epochs_without_progress():
    rule = _attach(PlateauDecay("val_bleu", patience=2), learning_rate=0.8)
    rates = []
    for epoch, bleu in enumerate([5.0, 4.0, 4.0, 4.0, 4.0, 6.0, 6.0]):
        rate = float(rule.model.optimizer.learning_rate.numpy())
        rule.on_epoch_end(epoch, {"val_bleu": bleu, "learning_rate": rate})
        rates.append(float(rule.model.optimizer.learning_rate.numpy()))
    # After epoch 2 (two without progress), again two epochs after the
    # change (epoch 4); epoch 5 improves; epoch 6 is one without.
    assert rates == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.2])


def test_validation_subset_is_a_seeded_sample_of_whole_groups():
    sources = ["a", "b", "a", "c", "d", "e"]
    refs = ["A1", "B", "A2", "C", "D", "E"]
    chosen = validation_subset(sources, refs, 3, seed=4)
    assert chosen == validation_subset(sources, refs, 3, seed=4)
    picked_sources, picked_refs = chosen
    assert len(set(picked_sources)) == 3
    if "a" in picked_sources:  # all references of a group come along
        assert {"A1", "A2"} <= set(picked_refs)
    # Every group when there are few: a group's pairs come together.
    assert validation_subset(sources, refs, 10, seed=4) == (
        ["a", "a", "b", "c", "d", "e"],
        ["A1", "A2", "B", "C", "D", "E"],
    )


# ---- in a training run -------------------------------------------------------


@pytest.fixture(scope="module")
def bleu_run(pairs, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bleu-run")
    board = tmp_path_factory.mktemp("board")
    translator = train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=4,
        select_by="bleu",
        validation_sentences=12,
        patience=0,
        lr_patience=0,
        tensorboard=board,
        **TINY,
    )
    return out_dir, board, translator


def test_the_checkpoint_kept_is_the_best_validation_bleu(bleu_run, pairs):
    out_dir, _, translator = bleu_run
    rows = _history(out_dir)
    bleus = [float(row["val_bleu"]) for row in rows]
    assert len(bleus) == 4
    subset = validation_subset(
        pairs.validation.sources, pairs.validation.targets, 12, seed=0
    )
    # The callback's number is Translator.evaluate's on the same subset,
    # and the model kept is the one of the best epoch.
    kept = Translator.load(out_dir).evaluate(*subset, method="greedy")
    assert kept["bleu"] == pytest.approx(max(bleus), abs=1e-9)
    described = _training(out_dir)
    assert described["selected_by"] == "val_bleu"
    assert described["best_epoch"] == 1 + int(np.argmax(bleus))
    assert described["stopped_by"] == "epochs"


def test_tensorboard_gets_scalars_and_attention_images(bleu_run):
    _, board, _ = bleu_run
    tags = {}
    for path in board.rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(path.parent.name, set()).add(value.tag)
    assert {"epoch_loss", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_loss", "epoch_bleu"} <= tags["validation"]
    assert "attention/sentence_1" in tags["attention"]


def test_a_finished_run_continues_for_more_epochs(bleu_run, pairs):
    out_dir, _, _ = bleu_run
    steps = _training(out_dir)["steps"]
    train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        resume=True,
        epochs=5,
        select_by="bleu",
        validation_sentences=12,
        patience=0,
        lr_patience=0,
        **TINY,
    )
    assert [int(r["epoch"]) for r in _history(out_dir)] == [0, 1, 2, 3, 4]
    assert _training(out_dir)["steps"] == steps * 5 // 4


def test_early_stopping_stops(pairs, tmp_path):
    # With a learning rate this small the translations never change, so
    # the BLEU of the first epoch is never beaten.
    out_dir = tmp_path / "run"
    train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=10,
        patience=2,
        lr_patience=0,
        validation_sentences=8,
        **{**TINY, "learning_rate": 1e-12},
    )
    assert len(_history(out_dir)) == 3
    assert _training(out_dir)["stopped_by"] == "patience"


def test_a_time_budget_stops_mid_epoch_and_keeps_a_model(pairs, tmp_path):
    out_dir = tmp_path / "run"
    translator = train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        epochs=3,
        max_minutes=1e-6,
        validation_sentences=8,
        **TINY,
    )
    assert isinstance(translator, Translator)
    assert len(_history(out_dir)) == 1
    described = _training(out_dir)
    assert described["stopped_by"] == "max_minutes"
    assert described["steps"] == 1  # stopped after its first batch
    state = json.loads((out_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (0, 1)
    # Resumed without the budget: the rest of the epoch, then the others.
    train_translator(
        pairs.train,
        pairs.validation,
        out_dir,
        resume=True,
        epochs=3,
        validation_sentences=8,
        **TINY,
    )
    assert _training(out_dir)["steps"] == 3 * state["steps_per_epoch"]
