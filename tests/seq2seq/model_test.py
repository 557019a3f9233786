import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauMonotonicAttention
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from keras_nmt.seq2seq.model import ScheduledSampling


def _data(rng, batch=4, source_length=6, target_length=5, vocab=16):
    source = rng.integers(1, vocab, size=(batch, source_length))
    source[0, 3:] = 0
    target = rng.integers(1, vocab, size=(batch, target_length + 1))
    target[1, 4:] = 0
    target_in, target_out = target[:, :-1], target[:, 1:]
    return (
        (source.astype("int32"), target_in.astype("int32")),
        target_out.astype("int32"),
    )


def _model(**options):
    return build_seq2seq(16, 16, embedding_dim=8, units=8, **options)


def _cross_entropy(logits, target_out):
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )
    return float(ops.convert_to_numpy(loss(target_out, logits)))


def _frozen_fit(model, inputs, target_out, **kwargs):
    """`fit` one batch per epoch with a zero learning rate: the weights stay,
    the reported losses are those of the current weights."""
    compile_seq2seq(model, optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(
        inputs,
        target_out,
        batch_size=len(target_out),
        shuffle=False,
        verbose=0,
        **kwargs,
    )
    return history.history["loss"]


def test_build_seq2seq_passes_the_options_to_the_decoder():
    model = _model(
        style="luong",
        attention="general",
        input_feeding=True,
        extra_attention=("dot",),
        attention_layer_size=6,
        output_attention=False,
        layers=2,
        scheduled_sampling=0.25,
        seed=4,
    )
    decoder = model.get_layer("decoder")
    assert [a.name for a in decoder._attentions()] == [
        "attention",
        "attention_2",
    ]
    assert decoder.attention_layer_size == 6
    assert decoder.output_attention is False
    assert decoder.num_layers == 2 and len(decoder.upper_cells) == 1
    assert decoder.scheduled_sampling == 0.25 and decoder.seed == 4
    assert float(ops.convert_to_numpy(decoder.sampling_probability)) == 0.25
    coverage = _model(coverage=True, coverage_loss_weight=1.5)
    decoder = coverage.get_layer("decoder")
    assert decoder.coverage and decoder.coverage_loss_weight == 1.5
    assert decoder.attention.use_coverage


def test_coverage_loss_joins_the_training_loss(rng):
    inputs, target_out = _data(rng)
    model = _model(coverage=True, coverage_loss_weight=2.0)
    logits = model(inputs, training=True)
    expected = _cross_entropy(logits, target_out)
    (coverage_loss,) = [float(ops.convert_to_numpy(x)) for x in model.losses]
    assert coverage_loss > 0
    (loss,) = _frozen_fit(model, inputs, target_out)
    np.testing.assert_allclose(loss, expected + coverage_loss, rtol=1e-5)
    # Evaluation (inference) leaves it out.
    evaluated = model.evaluate(inputs, target_out, verbose=0)[0]
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)


def test_scheduled_sampling_callback_sets_the_probability_per_epoch(rng):
    inputs, target_out = _data(rng)
    model = _model(scheduled_sampling=1.0, seed=3)
    decoder = model.get_layer("decoder")
    schedule = [0.0, 1.0, 0.0]
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            float(ops.convert_to_numpy(decoder.sampling_probability))
        )
    )
    losses = _frozen_fit(
        model,
        inputs,
        target_out,
        epochs=3,
        callbacks=[ScheduledSampling(lambda epoch: schedule[epoch]), record],
    )
    assert seen == schedule
    # The compiled training step read the probability of its epoch: 0 is
    # teacher forcing, 1 feeds every prediction.
    decoder.sampling_probability.assign(0.0)
    teacher_forced = _cross_entropy(model(inputs, training=True), target_out)
    decoder.sampling_probability.assign(1.0)
    fed = _cross_entropy(model(inputs, training=True), target_out)
    assert abs(fed - teacher_forced) > 1e-4
    np.testing.assert_allclose(
        losses, [teacher_forced, fed, teacher_forced], rtol=1e-5
    )


def test_scheduled_sampling_callback_needs_the_mode(rng):
    inputs, target_out = _data(rng)
    with pytest.raises(ValueError, match=r"scheduled_sampling` > 0"):
        _frozen_fit(
            _model(),
            inputs,
            target_out,
            callbacks=[ScheduledSampling(lambda epoch: 0.1)],
        )
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        _frozen_fit(
            _model(scheduled_sampling=0.5),
            inputs,
            target_out,
            callbacks=[ScheduledSampling(lambda epoch: 2.0)],
        )


def test_every_option_at_once_trains(rng, tmp_path):
    """One model with all options, trained a few steps (gradients through
    the coverage, the monotonic recurrence with drawn-ahead noise, the
    sampled tokens' loop), saved and loaded."""
    inputs, target_out = _data(rng)
    model = _model(
        style="luong",
        attention="bahdanau",
        input_feeding=True,
        dropout=0.1,
        extra_attention=(
            BahdanauMonotonicAttention(
                8, sigmoid_noise=1.0, seed=1, name="monotonic"
            ),
        ),
        attention_layer_size=6,
        layers=2,
        coverage=True,
        coverage_loss_weight=0.5,
        scheduled_sampling=0.3,
        seed=2,
    )
    before = [np.copy(w) for w in model.get_weights()]
    compile_seq2seq(model, learning_rate=0.01)
    history = model.fit(inputs, target_out, batch_size=2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(before, model.get_weights(), strict=True)
    ]
    assert sum(changed) > len(changed) // 2
    model.save(tmp_path / "all.keras")
    loaded = keras.saving.load_model(tmp_path / "all.keras")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded(inputs)),
        ops.convert_to_numpy(model(inputs)),
    )
