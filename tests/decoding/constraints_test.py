"""The rules every strategy shares: banned tokens and length limits."""

import math
from fractions import Fraction

import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import beam_search
from keras_nmt.decoding import greedy_search
from keras_nmt.decoding import sample
from keras_nmt.decoding.constraints import repeated_ngrams
from tests.decoding import toy
from tests.decoding.toy import END
from tests.decoding.toy import PAD

STRATEGIES = {
    "greedy": (greedy_search, {}),
    "sample": (sample, {"seed": 7, "temperature": 1.5}),
    "beam": (beam_search, {"beam_width": 3, "length_penalty": 0.6}),
}


def _problem(rng, batch=6, vocab=7, end_logit=-1.0, source_length=4):
    table, constants, start = toy.random_problem(
        rng, batch, vocab, source_length=source_length, end_logit=end_logit
    )
    model = toy.Toy(table, penalty=0.3)
    return model, (start, model.initial_state(batch), constants)


def _source_lengths(constants):
    return constants["mask"].sum(axis=1).astype("int32")


def _limits(lengths, ratio, max_length):
    """`ceil(ratio * length)` with the ratio read as the decimal it is
    written as, clipped to `[1, max_length]`."""
    ratio = Fraction(str(ratio))
    return [max(1, min(max_length, math.ceil(ratio * n))) for n in lengths]


def _hypotheses(out, beams):
    """Every generated sequence (with a finite score) as a list."""
    tokens, lengths = toy.numpy(out.tokens), toy.numpy(out.lengths)
    scores = toy.numpy(out.scores)
    if not beams:
        tokens, lengths, scores = tokens[:, None], lengths[:, None], scores
        scores = scores[:, None]
    return [
        (b, [int(t) for t in tokens[b, k, : lengths[b, k]]])
        for b in range(tokens.shape[0])
        for k in range(tokens.shape[1])
        if np.isfinite(scores[b, k])
    ]


def _decode(name, model, inputs, **options):
    strategy, defaults = STRATEGIES[name]
    return toy.run(
        strategy,
        model.step,
        *inputs,
        max_length=8,
        end_token=END,
        **defaults,
        **options,
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_min_length(rng, name):
    # END is likely, so sequences end early unless kept from it.
    model, inputs = _problem(rng, end_logit=2.0)
    plain = _hypotheses(_decode(name, model, inputs), name == "beam")
    assert min(len(seq) for _, seq in plain) <= 2
    out = _decode(name, model, inputs, min_length=3)
    for b, sequence in _hypotheses(out, name == "beam"):
        assert toy.allowed(sequence, inputs[0][b], END, min_length=3)
        assert len(sequence) >= 4 or END not in sequence


@pytest.mark.parametrize("ngram", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_repeat_ngram(rng, name, ngram):
    # The toy's repetition penalty is off and END is unlikely: sequences
    # repeat themselves unless kept from it.
    model, inputs = _problem(rng, vocab=8, end_logit=-3.0)
    model.penalty = 0.0
    out = _decode(name, model, inputs, no_repeat_ngram_size=ngram)
    for b, sequence in _hypotheses(out, name == "beam"):
        assert toy.allowed(sequence, inputs[0][b], END, ngram=ngram)
    plain = _decode(name, model, inputs)
    assert any(
        not toy.allowed(sequence, inputs[0][b], END, ngram=ngram)
        for b, sequence in _hypotheses(plain, name == "beam")
    ), "the plain search repeats"
    # An n-gram longer than the sequences can never repeat.
    long = _decode(name, model, inputs, no_repeat_ngram_size=9)
    for got, want in zip(long, plain, strict=True):
        np.testing.assert_array_equal(toy.numpy(got), toy.numpy(want))


@pytest.mark.parametrize("ratio", [0.5, 1.1, 1.75])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_max_length_ratio(rng, name, ratio):
    # Sources of 10, 9, 8 and 7 tokens, 12 steps at most; END never comes.
    model, inputs = _problem(rng, batch=4, end_logit=-1e4, source_length=10)
    lengths = _source_lengths(inputs[2])
    np.testing.assert_array_equal(lengths, [10, 9, 8, 7])
    strategy, defaults = STRATEGIES[name]
    out = toy.run(
        strategy,
        model.step,
        *inputs,
        max_length=12,
        end_token=END,
        max_length_ratio=ratio,
        source_lengths=lengths,
        **defaults,
    )
    expected = np.array(_limits(lengths, ratio, 12))
    if ratio == 1.1:
        np.testing.assert_array_equal(expected, [11, 10, 9, 8])
    got = toy.numpy(out.lengths)
    if name == "beam":
        got = got[:, 0]
    np.testing.assert_array_equal(got, expected)
    tokens = toy.numpy(out.tokens)
    if name == "beam":
        tokens = tokens[:, 0]
    for b in range(4):
        assert np.all(tokens[b, expected[b] :] == PAD)
        assert np.all(tokens[b, : expected[b]] != PAD)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_large_ratio_and_default_options_change_nothing(rng, name):
    model, inputs = _problem(rng)
    plain = _decode(name, model, inputs)
    for options in (
        {"max_length_ratio": 8.0, "source_lengths": [4, 3, 2, 1, 4, 3]},
        {"min_length": 0, "no_repeat_ngram_size": 0},
    ):
        out = _decode(name, model, inputs, **options)
        for got, want in zip(out, plain, strict=True):
            np.testing.assert_array_equal(toy.numpy(got), toy.numpy(want))


@pytest.mark.parametrize(
    "options",
    [
        {"min_length": 3},
        {"no_repeat_ngram_size": 2},
        {"no_repeat_ngram_size": 1, "min_length": 2},
        {"max_length_ratio": 1.5, "source_lengths": [4, 3, 2, 1, 4, 3]},
    ],
)
def test_greedy_equals_numpy_reference_and_width_one_beam(rng, options):
    model, inputs = _problem(rng, end_logit=0.5)
    start, _, constants = inputs
    greedy = _decode("greedy", model, inputs, **options)
    limits = None
    if "max_length_ratio" in options:
        limits = _limits(options["source_lengths"], 1.5, 8)
    tokens, scores, attention, lengths = model.np_greedy(
        start,
        constants,
        8,
        min_length=options.get("min_length", 0),
        ngram=options.get("no_repeat_ngram_size", 0),
        limits=limits,
    )
    np.testing.assert_array_equal(toy.numpy(greedy.tokens), tokens)
    np.testing.assert_array_equal(toy.numpy(greedy.lengths), lengths)
    np.testing.assert_allclose(toy.numpy(greedy.scores), scores, rtol=1e-5)
    np.testing.assert_allclose(
        toy.numpy(greedy.attention), attention, rtol=1e-5, atol=1e-6
    )
    beam = toy.run(
        beam_search,
        model.step,
        *inputs,
        max_length=8,
        end_token=END,
        beam_width=1,
        length_penalty=0.7,
        **options,
    )
    for field in ("tokens", "lengths", "log_probs"):
        np.testing.assert_allclose(
            toy.numpy(getattr(beam, field))[:, 0],
            toy.numpy(getattr(greedy, field)),
            rtol=1e-5,
        )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_row_with_no_allowed_token_stops(name):
    # Vocabulary PAD, END, 2, 3, 4; start 4; END is never allowed
    # (min_length) and no token may come twice: after 2 and 3 nothing is
    # left, so every row stops after 2 tokens, without END.
    table = np.log(np.full((5, 5), 0.2, "float32"))
    table[:, 2] += 1.0
    strategy, defaults = STRATEGIES[name]
    out = toy.run(
        strategy,
        toy.markov_step(table),
        [4, 4],
        (),
        max_length=6,
        end_token=END,
        min_length=10,
        no_repeat_ngram_size=1,
        **defaults,
    )
    lengths = toy.numpy(out.lengths)
    tokens = toy.numpy(out.tokens)
    if name == "beam":
        # Two hypotheses per source, 2 3 and 3 2; the third is missing.
        np.testing.assert_array_equal(lengths, [[2, 2, 0]] * 2)
        np.testing.assert_array_equal(tokens[:, 0, :3], [[2, 3, PAD]] * 2)
        np.testing.assert_array_equal(tokens[:, 1, :3], [[3, 2, PAD]] * 2)
        assert np.all(np.isneginf(toy.numpy(out.scores)[:, 2]))
    else:
        np.testing.assert_array_equal(lengths, [2, 2])
        assert np.all(np.sort(tokens[:, :2], axis=1) == [2, 3])
        assert np.all(tokens[:, 2:] == PAD)
        assert np.all(np.isfinite(toy.numpy(out.scores)))


def _banned_by_brute_force(generated, n):
    """The tokens `v` such that `generated + [v]` ends with an n-gram that
    `generated` already contains."""
    prefix = generated[len(generated) - n + 1 :] if n > 1 else []
    if len(prefix) < n - 1:
        return set()
    return {
        generated[p + n - 1]
        for p in range(len(generated) - n + 1)
        if generated[p : p + n - 1] == prefix
    }


def test_repeated_ngrams_against_brute_force(rng):
    vocab, total = 4, 9
    history = rng.integers(0, vocab, size=(40, total)).astype("int32")
    for n in (1, 2, 3):
        for index in range(total + 1):
            got = toy.numpy(
                repeated_ngrams(ops.convert_to_tensor(history), index, n, vocab)
            )
            for row in range(len(history)):
                generated = [int(t) for t in history[row, :index]]
                expected = _banned_by_brute_force(generated, n)
                assert set(np.flatnonzero(got[row])) == expected, (
                    n,
                    index,
                    generated,
                )
    assert repeated_ngrams(history, 3, total + 1, vocab) is None


def _step(tokens, state, constants):
    return ops.one_hot(tokens, 5), ops.one_hot(tokens, 5), state


@pytest.mark.parametrize("strategy", [greedy_search, sample, beam_search])
def test_bad_arguments(strategy):
    cases = [
        ({"min_length": -1}, r"`min_length` must be an int >= 0.*=-1"),
        ({"min_length": 1.5}, r"`min_length`.*min_length=1\.5"),
        (
            {"no_repeat_ngram_size": -2},
            r"`no_repeat_ngram_size` must be an int >= 0.*=-2",
        ),
        (
            {"max_length_ratio": 0, "source_lengths": [3, 3]},
            r"`max_length_ratio` must be None or a finite float > 0.*=0",
        ),
        (
            {"max_length_ratio": "1.5", "source_lengths": [3, 3]},
            r"`max_length_ratio`.*'1\.5'",
        ),
        (
            {"max_length_ratio": 1.5},
            r"`max_length_ratio=1\.5` needs the length of every source: "
            r"pass `source_lengths`",
        ),
        (
            {"max_length_ratio": 1.5, "source_lengths": [3, 3, 3]},
            r"`source_lengths` must be int token counts of shape \(2,\).*"
            r"\(3\)",
        ),
        (
            {"max_length_ratio": 1.5, "source_lengths": [3.0, 2.0]},
            r"`source_lengths`.*float",
        ),
    ]
    name = strategy.__name__
    seed = {"seed": 1} if strategy is sample else {}
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=f"`{name}`: " + match):
            strategy(_step, [2, 3], None, max_length=3, **seed, **kwargs)
