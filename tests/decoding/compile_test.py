import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import beam_search
from keras_nmt.decoding import compile_decoding
from keras_nmt.decoding import greedy_search
from keras_nmt.decoding import sample
from tests.decoding import toy
from tests.decoding.toy import END

BACKEND = keras.config.backend()
TRACED = BACKEND in ("tensorflow", "jax")


def _problem(rng, batch):
    table, constants, start = toy.random_problem(rng, batch, vocab=6)
    return toy.Toy(table), (
        start,
        toy.Toy(table).initial_state(batch),
        constants,
    )


@pytest.mark.skipif(not TRACED, reason="PyTorch decodes eagerly")
@pytest.mark.parametrize(
    "strategy, options",
    [
        (greedy_search, {}),
        (sample, {"seed": 3, "top_k": 3}),
        (beam_search, {"beam_width": 3, "length_penalty": 0.6}),
        (greedy_search, {"min_length": 2, "no_repeat_ngram_size": 2}),
        (sample, {"seed": 3, "top_k": 4, "top_p": 0.8, "min_length": 1}),
        (
            beam_search,
            {
                "beam_width": 3,
                "length_penalty": 0.6,
                "coverage_penalty": 0.3,
                "no_repeat_ngram_size": 1,
                "n_best": 1,
            },
        ),
    ],
)
def test_repeated_calls_do_not_retrace(rng, strategy, options):
    model, first = _problem(rng, batch=4)
    _, second = _problem(rng, batch=4)
    decode = compile_decoding(
        lambda *tensors: strategy(
            model.step, *tensors, max_length=5, end_token=END, **options
        )
    )
    out = decode(*first)
    traced = model.calls
    assert traced >= 1
    again = decode(*first)
    new_values = decode(*second)
    assert model.calls == traced, "same shapes must not retrace"
    np.testing.assert_array_equal(
        toy.numpy(again.tokens), toy.numpy(out.tokens)
    )
    if strategy is greedy_search:
        # The second call used its own inputs, not constants of the first.
        tokens, scores, _, _ = model.np_greedy(
            second[0],
            second[2],
            5,
            min_length=options.get("min_length", 0),
            ngram=options.get("no_repeat_ngram_size", 0),
        )
        np.testing.assert_array_equal(toy.numpy(new_values.tokens), tokens)
        np.testing.assert_allclose(
            toy.numpy(new_values.scores), scores, rtol=1e-5
        )
        # The counter does count: a new batch size traces again.
        _, third = _problem(rng, batch=3)
        decode(*third)
        assert model.calls > traced


ALL_OPTIONS = {
    greedy_search: {"min_length": 1, "no_repeat_ngram_size": 2},
    sample: {"seed": 5, "top_k": 5, "top_p": 0.9, "min_length": 1},
    beam_search: {
        "beam_width": 3,
        "length_penalty": 0.6,
        "coverage_penalty": 0.3,
        "min_length": 1,
        "no_repeat_ngram_size": 2,
        "n_best": 2,
    },
}


@pytest.mark.parametrize(
    "strategy", [greedy_search, sample, beam_search], ids=lambda s: s.__name__
)
def test_source_lengths_are_traced(rng, strategy):
    # `source_lengths` is a tensor argument of the compiled function: new
    # lengths reuse it and give new limits.
    model, (start, state, constants) = _problem(rng, batch=4)

    def run(start, state, constants, lengths):
        return strategy(
            model.step,
            start,
            state,
            constants,
            max_length=6,
            end_token=END,
            max_length_ratio=0.5,
            source_lengths=lengths,
            **ALL_OPTIONS[strategy],
        )

    decode = compile_decoding(run)
    for lengths in ([8, 6, 4, 2], [2, 4, 6, 12]):
        lengths = np.array(lengths, "int32")
        out = decode(start, state, constants, ops.convert_to_tensor(lengths))
        got = toy.numpy(out.lengths)
        if strategy is beam_search:
            got = got.max(axis=1)
        assert np.all(got <= np.minimum(np.ceil(0.5 * lengths), 6))
        expected = toy.run(
            strategy,
            model.step,
            start,
            state,
            constants,
            max_length=6,
            end_token=END,
            max_length_ratio=0.5,
            source_lengths=lengths,
            **ALL_OPTIONS[strategy],
        )
        for field in ("tokens", "lengths"):
            np.testing.assert_array_equal(
                toy.numpy(getattr(out, field)),
                toy.numpy(getattr(expected, field)),
            )
    if TRACED:
        traced = model.calls
        decode(start, state, constants, ops.convert_to_tensor(lengths + 1))
        assert model.calls == traced


def test_variables_are_read_at_every_call():
    # The step function adds a Keras variable to the logits; after an
    # assignment the compiled function must see the new value (on JAX via
    # `variables`), without retracing.
    bias = keras.Variable(np.zeros(5, "float32"), trainable=True)
    table = np.log(np.full((5, 5), 0.2, "float32"))
    table[:, 2] += 1.0
    calls = []

    def step(tokens, state, constants):
        calls.append(1)
        logits = ops.take(ops.convert_to_tensor(table), tokens, axis=0) + bias
        return logits, ops.one_hot(tokens, 5), state

    decode = compile_decoding(
        lambda start: greedy_search(step, start, (), max_length=3),
        variables=[bias],
    )
    start = ops.convert_to_tensor(np.array([1, 3], "int32"))
    np.testing.assert_array_equal(toy.numpy(decode(start).tokens), 2)
    traced = len(calls)
    bias.assign(np.array([0, 0, 0, 0, 5], "float32"))
    out = decode(start)
    np.testing.assert_array_equal(toy.numpy(out.tokens), 4)
    if TRACED:
        assert len(calls) == traced
    if BACKEND == "torch":
        assert not out.scores.requires_grad, "decoding runs under no_grad"


def test_seed_generator_gives_new_tokens_on_every_call():
    step = toy.markov_step(np.zeros((6, 6), "float32"))  # uniform
    generator = keras.random.SeedGenerator(7)
    decode = compile_decoding(
        lambda start: sample(step, start, (), max_length=2, seed=generator),
        variables=[generator.state],
    )
    start = ops.convert_to_tensor(np.full(64, 2, "int32"))
    first, second = decode(start), decode(start)
    assert np.any(toy.numpy(first.tokens) != toy.numpy(second.tokens))
    # The generator's state advanced by one draw per call.
    generator.state.assign(keras.random.SeedGenerator(7).state.value)
    np.testing.assert_array_equal(
        toy.numpy(decode(start).tokens), toy.numpy(first.tokens)
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA option of TF")
def test_tensorflow_jit_compile(rng):
    model, inputs = _problem(rng, batch=3)
    for strategy, options in [
        (greedy_search, {}),
        (beam_search, {"beam_width": 3, "length_penalty": 1.0}),
        (greedy_search, ALL_OPTIONS[greedy_search]),
        (beam_search, ALL_OPTIONS[beam_search]),
    ]:
        expected = strategy(
            model.step, *inputs, max_length=6, end_token=END, **options
        )
        decode = compile_decoding(
            lambda *t, strategy=strategy, options=options: strategy(
                model.step, *t, max_length=6, end_token=END, **options
            ),
            jit_compile=True,
        )
        out = decode(*inputs)
        for field in ("tokens", "lengths"):
            np.testing.assert_array_equal(
                toy.numpy(getattr(out, field)),
                toy.numpy(getattr(expected, field)),
            )
        np.testing.assert_allclose(
            toy.numpy(out.scores), toy.numpy(expected.scores), rtol=1e-5
        )
    decode = compile_decoding(
        lambda *t: sample(
            model.step, *t, max_length=6, seed=4, top_k=3, top_p=0.8
        ),
        jit_compile=True,
    )
    np.testing.assert_array_equal(
        toy.numpy(decode(*inputs).tokens), toy.numpy(decode(*inputs).tokens)
    )


UNKNOWN_BATCH_OPTIONS = {
    "coverage_penalty": 0.2,
    "min_length": 1,
    "no_repeat_ngram_size": 2,
    "max_length_ratio": 1.2,
    "n_best": 1,
}


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function signature")
def test_tensorflow_unknown_batch_size(rng):
    # What a SavedModel export does: a signature with batch size None.
    import tensorflow as tf

    model, _ = _problem(rng, batch=1)
    spec = tf.TensorSpec([None, 4])
    decode = tf.function(
        lambda start, bag, extra, bias, keys, mask: beam_search(
            model.step,
            start,
            {"bag": bag, "extra": (extra,)},
            {"bias": bias, "keys": keys, "mask": mask},
            max_length=5,
            end_token=END,
            beam_width=2,
            source_lengths=tf.reduce_sum(tf.cast(mask, "int32"), 1),
            **UNKNOWN_BATCH_OPTIONS,
        ),
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 6]),
            tf.TensorSpec([None, 2]),
            tf.TensorSpec([None, 6]),
            spec,
            tf.TensorSpec([None, 4], tf.bool),
        ],
    )
    for batch in (2, 5):
        _, (start, state, constants) = _problem(rng, batch)
        out = decode(
            start,
            state["bag"],
            state["extra"][0],
            constants["bias"],
            constants["keys"],
            constants["mask"],
        )
        expected = beam_search(
            model.step,
            start,
            state,
            constants,
            max_length=5,
            end_token=END,
            beam_width=2,
            source_lengths=constants["mask"].sum(1),
            **UNKNOWN_BATCH_OPTIONS,
        )
        for got, want in zip(out, expected, strict=True):
            np.testing.assert_allclose(
                toy.numpy(got), toy.numpy(want), rtol=1e-5, atol=1e-6
            )


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit only")
def test_jax_errors():
    step = toy.markov_step(np.zeros((6, 6), "float32"))
    start = ops.convert_to_tensor(np.array([2, 3], "int32"))
    decode = compile_decoding(
        lambda start: sample(step, start, (), max_length=2, seed=None)
    )
    with pytest.raises(ValueError, match=r"`seed=None`.*int seed"):
        decode(start)
    decode = compile_decoding(
        lambda start, end: greedy_search(step, start, (), max_length=2)
    )
    with pytest.raises(ValueError, match=r"hashable.*\['end'\]"):
        decode(start, end=[1])


def test_variables_must_be_keras_variables():
    with pytest.raises(ValueError, match=r"`variables`.*keras.Variable.*3"):
        compile_decoding(lambda: None, variables=[3])
