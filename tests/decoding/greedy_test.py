import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import Decoded
from keras_nmt.decoding import greedy_search
from tests.decoding import toy
from tests.decoding.toy import END
from tests.decoding.toy import PAD


def _call(strategy, *args, **kwargs):
    return strategy(*args, **kwargs)


def _run_toy(rng, batch=5, vocab=7, max_length=6, run=toy.run):
    table, constants, start = toy.random_problem(rng, batch, vocab)
    model = toy.Toy(table)
    out = run(
        greedy_search,
        model.step,
        start,
        model.initial_state(batch),
        constants,
        max_length=max_length,
        end_token=END,
    )
    return model, constants, start, out


def test_matches_numpy_argmax_loop(rng):
    # Eager on every backend (the other tests run under jax.jit on JAX).
    model, constants, start, out = _run_toy(
        rng, batch=6, max_length=8, run=_call
    )
    tokens, scores, attention, lengths = model.np_greedy(
        start, constants, max_length=8
    )
    assert isinstance(out, Decoded)
    assert tuple(out.tokens.shape) == (6, 8)
    assert tuple(out.attention.shape) == (6, 8, 4)
    assert tuple(out.lengths.shape) == tuple(out.scores.shape) == (6,)
    dtypes = ["int32", "float32", "float32", "float32", "int32"]
    for field, dtype in zip(out, dtypes, strict=True):
        assert keras.backend.standardize_dtype(field.dtype) == dtype
    np.testing.assert_array_equal(toy.numpy(out.tokens), tokens)
    np.testing.assert_allclose(toy.numpy(out.scores), scores, rtol=1e-5)
    np.testing.assert_allclose(toy.numpy(out.log_probs), scores, rtol=1e-5)
    np.testing.assert_array_equal(toy.numpy(out.lengths), lengths)
    np.testing.assert_allclose(
        toy.numpy(out.attention), attention, rtol=1e-5, atol=1e-6
    )
    # The rows of the problem differ: different sources give different
    # sequences, and some but not all rows ended early.
    assert len({tuple(row) for row in tokens}) > 1
    assert 0 < np.sum(lengths < 8) < 6


def _countdown_table(vocab=6):
    # 2 -> 3 -> 4 -> END, 5 -> END; END -> 5 (never used once ended).
    rows = {2: {3: 0.9}, 3: {4: 0.9}, 4: {END: 0.9}, 5: {END: 0.9}}
    rows[END] = {5: 0.9}
    return toy.table_from_probabilities(rows, vocab)


def test_early_stop_pads_after_end_and_counts_lengths():
    calls = []
    step = toy.markov_step(_countdown_table(), calls)
    out = toy.run(
        greedy_search,
        step,
        [2, 5, 4],
        (),
        max_length=10,
        end_token=END,
        pad_token=PAD,
    )
    np.testing.assert_array_equal(
        toy.numpy(out.tokens),
        [
            [3, 4, END] + [PAD] * 7,
            [END] + [PAD] * 9,
            [END] + [PAD] * 9,
        ],
    )
    np.testing.assert_array_equal(toy.numpy(out.lengths), [3, 1, 1])
    # Attention is the one-hot of the fed token until the end, then zeros.
    attention = toy.numpy(out.attention)
    np.testing.assert_array_equal(np.argmax(attention[0, :3], -1), [2, 3, 4])
    assert np.all(attention[0, 3:] == 0) and np.all(attention[1:, 1:] == 0)
    if keras.config.backend() != "jax":
        # Eager loops run the Python step once per step: 3 steps, not 10.
        assert len(calls) == 3


def test_early_stop_inside_a_compiled_loop():
    if keras.config.backend() != "jax":
        pytest.skip("the eager loop is counted in the test above")
    import jax

    counter = []
    step = toy.markov_step(_countdown_table())

    def counted_step(tokens, state, constants):
        jax.debug.callback(lambda: counter.append(1))
        return step(tokens, state, constants)

    out = jax.jit(
        lambda start: greedy_search(
            counted_step, start, (), max_length=10, end_token=END
        )
    )(ops.array([2, 5, 4]))
    jax.effects_barrier()
    np.testing.assert_array_equal(toy.numpy(out.lengths), [3, 1, 1])
    assert len(counter) == 3


def test_without_end_token_generates_max_length():
    out = toy.run(
        greedy_search,
        toy.markov_step(_countdown_table()),
        [2, 4],
        None,
        max_length=4,
    )
    np.testing.assert_array_equal(
        toy.numpy(out.tokens), [[3, 4, END, 5], [END, 5, END, 5]]
    )
    np.testing.assert_array_equal(toy.numpy(out.lengths), [4, 4])


def test_pad_and_start_token_are_never_chosen():
    # After 2, PAD and then 2 are the most probable tokens; after 3, 3 is.
    # A row never generates PAD nor its own start token, but may generate
    # another row's start token.
    rows = {2: {PAD: 0.6, 2: 0.25, 3: 0.1, END: 0.05}, 3: {3: 0.7, END: 0.3}}
    step = toy.markov_step(toy.table_from_probabilities(rows, vocab=5))
    out = toy.run(greedy_search, step, [2, 3], (), max_length=3, end_token=END)
    np.testing.assert_array_equal(
        toy.numpy(out.tokens), [[3, 3, 3], [END, PAD, PAD]]
    )
    # Log-probabilities are the model's: the banned tokens keep their mass.
    np.testing.assert_allclose(
        toy.numpy(out.log_probs), np.log([0.1 * 0.7 * 0.7, 0.3]), rtol=1e-4
    )


def test_custom_pad_token():
    out = toy.run(
        greedy_search,
        toy.markov_step(_countdown_table()),
        [5],
        (),
        max_length=3,
        end_token=END,
        pad_token=4,
    )
    np.testing.assert_array_equal(toy.numpy(out.tokens), [[END, 4, 4]])


def test_state_may_be_none_or_a_plain_tensor():
    for state in (None, ops.zeros((2, 3))):
        out = toy.run(
            greedy_search,
            toy.markov_step(_countdown_table()),
            [2, 5],
            state,
            max_length=4,
            end_token=END,
        )
        np.testing.assert_array_equal(
            toy.numpy(out.tokens), [[3, 4, END, PAD], [END, PAD, PAD, PAD]]
        )


def _good_step(tokens, state, constants):
    logits = ops.one_hot(tokens, 5)
    return logits, ops.zeros((ops.shape(tokens)[0], 3)), state


def test_bad_arguments():
    cases = [
        ({"max_length": 0}, r"`max_length` must be an int >= 1.*max_length=0"),
        ({"max_length": 2.5}, r"max_length=2\.5"),
        ({"end_token": -1}, r"`end_token`.*None or an int >= 0.*end_token=-1"),
        ({"pad_token": None}, r"`pad_token` must be an int >= 0.*None"),
        ({"end_token": 5}, r"`end_token`.*vocabulary size 5.*end_token=5"),
        ({"pad_token": 9}, r"`pad_token`.*vocabulary size 5.*pad_token=9"),
    ]
    for kwargs, match in cases:
        kwargs = {"max_length": 3, **kwargs}
        with pytest.raises(ValueError, match=match):
            greedy_search(_good_step, [1, 2], (), **kwargs)


def test_bad_inputs():
    cases = [
        ([[1, 2]], (), r"`greedy_search`: `start_tokens` must have rank 1"),
        ([1.0, 2.0], (), r"integer token ids.*float"),
        ([1, 2], ops.zeros((3, 4)), r"`state`.*\(2\).*\(3, 4\)"),
    ]
    for start, state, match in cases:
        with pytest.raises(ValueError, match=match):
            greedy_search(_good_step, start, state, max_length=3)


def _bad_step(kind):
    def step(tokens, state, constants):
        n = ops.shape(tokens)[0]
        logits, attention = ops.zeros((n, 5)), ops.zeros((n, 3))
        if kind == "logits_rank":
            logits = ops.zeros((n, 1, 5))
        if kind == "logits_batch":
            logits = ops.zeros((n + 1, 5))
        if kind == "attention_batch":
            attention = ops.zeros((1, 3))
        if kind == "state_structure":
            state = (state, state)
        if kind == "state_shape":
            state = ops.zeros((n, 7))
        if kind == "state_dtype":
            state = ops.zeros((n, 4), "int32")
        if kind == "two_outputs":
            return logits, state
        return logits, attention, state

    return step


def test_bad_step_outputs():
    cases = {
        "logits_rank": r"logits of shape \(2, vocab_size\).*\(2, 1, 5\)",
        "logits_batch": r"logits of shape \(2, vocab_size\).*\(3, 5\)",
        "attention_batch": r"attention of shape \(2, \.\.\.\).*\(1, 3\)",
        "state_structure": r"structure of the `state`",
        "state_shape": r"keep the shape and dtype.*\(2, 7\).*\(2, 4\)",
        "state_dtype": r"keep the shape and dtype.*int32.*float32",
        "two_outputs": r"\(logits, attention, new_state\).*tuple of length 2",
    }
    for kind, match in cases.items():
        with pytest.raises(ValueError, match=match):
            greedy_search(
                _bad_step(kind), [1, 2], ops.zeros((2, 4)), max_length=3
            )
