import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import beam_search
from keras_nmt.decoding import greedy_search
from tests.decoding import toy
from tests.decoding.toy import END
from tests.decoding.toy import PAD


def _penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


# Vocabulary of the hand-built problems: PAD, END, a, b, START.
A, B, START = 2, 3, 4


def _hand_built_step(rows):
    return toy.markov_step(toy.table_from_probabilities(rows, vocab=5))


def test_width_one_is_greedy(rng):
    table, constants, start = toy.random_problem(rng, batch=4, vocab=6)
    model = toy.Toy(table)
    state = model.initial_state(4)
    greedy = toy.run(
        greedy_search,
        model.step,
        start,
        state,
        constants,
        max_length=7,
        end_token=END,
    )
    beam = toy.run(
        beam_search,
        model.step,
        start,
        state,
        constants,
        max_length=7,
        end_token=END,
        beam_width=1,
    )
    assert tuple(beam.tokens.shape) == (4, 1, 7)
    assert len(set(toy.numpy(greedy.lengths))) > 1, "rows end apart"
    for field in ("tokens", "lengths"):
        np.testing.assert_array_equal(
            toy.numpy(getattr(beam, field))[:, 0],
            toy.numpy(getattr(greedy, field)),
        )
    for field in ("scores", "log_probs", "attention"):
        np.testing.assert_allclose(
            toy.numpy(getattr(beam, field))[:, 0],
            toy.numpy(getattr(greedy, field)),
            rtol=1e-5,
            atol=1e-6,
        )


def test_beam_finds_the_sequence_greedy_misses():
    # Greedy takes `a` (0.5) and ends: p(a END) = 0.5 * 0.4 = 0.2. The best
    # sequence starts with the locally worse `b`: p(b END) = 0.4 * 0.9.
    step = _hand_built_step(
        {
            START: {A: 0.5, B: 0.4, END: 0.1},
            A: {END: 0.4, A: 0.3, B: 0.3},
            B: {END: 0.9, A: 0.05, B: 0.05},
        }
    )
    greedy = toy.run(
        greedy_search, step, [START], (), max_length=4, end_token=END
    )
    np.testing.assert_array_equal(toy.numpy(greedy.tokens), [[A, END, 0, 0]])
    beam = toy.run(
        beam_search,
        step,
        [START],
        (),
        max_length=4,
        end_token=END,
        beam_width=2,
    )
    np.testing.assert_array_equal(toy.numpy(beam.tokens)[0, 0], [B, END, 0, 0])
    np.testing.assert_allclose(
        toy.numpy(beam.log_probs)[0, 0], np.log(0.4 * 0.9), rtol=1e-4
    )
    assert toy.numpy(beam.log_probs)[0, 0] > toy.numpy(greedy.log_probs)[0]


def _coverage(history, beta):
    """GNMT coverage penalty of an attention history `(T, Tk)`, positions
    never attended (padding) left out."""
    total = history.sum(axis=0)
    total = total[total > 0]
    return beta * np.sum(np.log(np.minimum(total, 1.0)))


def _gnmt_score(sequence, log_prob, history, alpha, beta):
    score = log_prob / _penalty(len(sequence), alpha)
    if sequence[-1] == END:
        score += _coverage(history, beta)
    return score


@pytest.mark.parametrize(
    "alpha, beta, rules",
    [
        (0.8, 0.0, {}),
        (0.6, 0.4, {}),
        (0.0, 0.0, {"min_length": 1, "no_repeat_ngram_size": 1}),
        (1.0, 0.3, {"min_length": 2, "no_repeat_ngram_size": 2}),
    ],
)
def test_exhaustive_beam_equals_brute_force(rng, alpha, beta, rules):
    # Vocabulary 6 (3 words besides PAD, END and the start token of the
    # row), 3 steps: 40 complete hypotheses per source without rules. A
    # beam as wide as the number of hypotheses prunes nothing, so it must
    # return every hypothesis the rules allow, ranked exactly as the
    # brute-force enumeration (which checks the rules on every sequence)
    # ranks them with the GNMT formula. The toy's state penalises repeated
    # tokens, so the state must follow its beam; the two sources differ in
    # bias, keys and mask (source 1 has a padded position).
    max_length = 3
    table, constants, start = toy.random_problem(
        rng, batch=2, vocab=6, end_logit=0.0
    )
    model = toy.Toy(table, penalty=1.0)
    brute = [
        model.np_all_hypotheses(
            start,
            constants,
            row,
            max_length,
            END,
            rules.get("min_length", 0),
            rules.get("no_repeat_ngram_size", 0),
        )
        for row in range(2)
    ]
    width = max(len(b) for b in brute)
    if not rules:
        assert width == 40
    out = toy.run(
        beam_search,
        model.step,
        start,
        model.initial_state(2),
        constants,
        max_length=max_length,
        end_token=END,
        beam_width=width,
        length_penalty=alpha,
        coverage_penalty=beta,
        **rules,
    )
    tokens, scores = toy.numpy(out.tokens), toy.numpy(out.scores)
    log_probs, lengths = toy.numpy(out.log_probs), toy.numpy(out.lengths)
    attention = toy.numpy(out.attention)
    for row in range(2):
        ranked = sorted(brute[row], key=lambda h: -_gnmt_score(*h, alpha, beta))
        found = np.isfinite(scores[row])
        assert np.sum(found) == len(ranked)
        assert np.all(np.diff(scores[row, found]) <= 0), "best first"
        for k, (sequence, log_prob, history) in enumerate(ranked):
            n = len(sequence)
            np.testing.assert_array_equal(tokens[row, k, :n], sequence)
            assert np.all(tokens[row, k, n:] == PAD)
            assert lengths[row, k] == n
            np.testing.assert_allclose(log_probs[row, k], log_prob, rtol=1e-4)
            np.testing.assert_allclose(
                scores[row, k],
                _gnmt_score(sequence, log_prob, history, alpha, beta),
                rtol=1e-4,
            )
            np.testing.assert_allclose(
                attention[row, k, :n], history, rtol=1e-4, atol=1e-6
            )
            assert np.all(attention[row, k, n:] == 0)
        assert np.all(tokens[row, ~found] == PAD)
        assert np.all(lengths[row, ~found] == 0)


def test_length_penalty_prefers_longer_hypotheses():
    # `END` alone: p = 0.5, length 1. `a b END`: p = 0.45 * 0.95 * 0.95,
    # length 3. Everything else is far less probable.
    step = _hand_built_step(
        {
            START: {END: 0.5, A: 0.45, B: 0.05},
            A: {B: 0.95, END: 0.05},
            B: {END: 0.95, B: 0.05},
        }
    )
    short, long = (END,), (A, B, END)
    log_p = {short: np.log(0.5), long: np.log(0.45 * 0.95 * 0.95)}
    winners = {}
    for alpha in (0.0, 1.0):
        expected = max(log_p, key=lambda y: log_p[y] / _penalty(len(y), alpha))
        out = toy.run(
            beam_search,
            step,
            [START],
            (),
            max_length=5,
            end_token=END,
            beam_width=2,
            length_penalty=alpha,
        )
        best = toy.numpy(out.tokens)[0, 0]
        length = toy.numpy(out.lengths)[0, 0]
        winners[alpha] = tuple(int(t) for t in best[:length])
        assert winners[alpha] == expected
        np.testing.assert_allclose(
            toy.numpy(out.scores)[0, 0],
            log_p[expected] / _penalty(len(expected), alpha),
            rtol=1e-4,
        )
    assert winners == {0.0: short, 1.0: long}


def test_finished_beams_are_frozen():
    # `END` finishes at step 1 while the other beam decodes to step 6: its
    # log-prob, length and score stay those at its end token.
    calls = []
    step = toy.markov_step(
        toy.table_from_probabilities(
            {START: {END: 0.6, A: 0.4}, A: {A: 0.97, END: 0.01}}, vocab=5
        ),
        calls,
    )
    alpha = 1.0
    out = toy.run(
        beam_search,
        step,
        [START],
        (),
        max_length=6,
        end_token=END,
        beam_width=2,
        length_penalty=alpha,
    )
    tokens, lengths = toy.numpy(out.tokens)[0], toy.numpy(out.lengths)[0]
    finished = [k for k in range(2) if tokens[k, 0] == END]
    assert len(finished) == 1, tokens
    k = finished[0]
    np.testing.assert_array_equal(tokens[k], [END] + [PAD] * 5)
    assert lengths[k] == 1
    np.testing.assert_allclose(
        toy.numpy(out.log_probs)[0, k], np.log(0.6), rtol=1e-4
    )
    np.testing.assert_allclose(
        toy.numpy(out.scores)[0, k], np.log(0.6) / _penalty(1, alpha), rtol=1e-4
    )
    # The other beam went on for all 6 steps without ending.
    np.testing.assert_array_equal(tokens[1 - k], [A] * 6)
    assert lengths[1 - k] == 6
    if keras.config.backend() != "jax":
        assert len(calls) == 6


def test_attention_history_follows_the_beams():
    # The attention of a step is the one-hot of the token fed to it, times a
    # per-source scale: the history of every hypothesis must spell its own
    # tokens (start token first) and belong to its own source.
    rng = np.random.default_rng(7)
    table = rng.normal(size=(6, 6)).astype("float32") * 2
    table[:, PAD] = -1e4
    markov = toy.markov_step(table)
    scale = np.array([[1.0], [2.0], [3.0]], "float32")

    def step(tokens, state, constants):
        logits, attention, state = markov(tokens, state, constants)
        return logits, attention * constants, state

    start = np.array([2, 3, 4])
    out = toy.run(
        beam_search,
        step,
        start,
        (),
        scale,
        max_length=5,
        end_token=END,
        beam_width=3,
    )
    tokens, lengths = toy.numpy(out.tokens), toy.numpy(out.lengths)
    attention = toy.numpy(out.attention)
    assert attention.shape == (3, 3, 5, 6)
    reordered = False
    for b in range(3):
        for k in range(3):
            n = lengths[b, k]
            fed = np.concatenate([[start[b]], tokens[b, k, : n - 1]])
            expected = np.eye(6)[fed] * scale[b]
            np.testing.assert_allclose(attention[b, k, :n], expected)
            assert np.all(attention[b, k, n:] == 0)
        reordered |= len({tuple(tokens[b, k, :2]) for k in range(3)}) < 3
    # Some beams share a prefix, so the beams were reordered on the way.
    assert reordered


def test_first_step_expands_one_beam_and_pads_missing_hypotheses():
    # With one step and no end token, the hypotheses are the best distinct
    # allowed first tokens: PAD (0) and the start token (2) are never
    # generated, even though the start token is the most probable. With a
    # width above the number of allowed tokens, the missing hypotheses are
    # -inf, length 0, all pad.
    log_probs = np.log(np.array([0.05, 0.1, 0.5, 0.35]))
    table = np.tile(log_probs, (4, 1)).astype("float32")
    out = toy.run(
        beam_search, toy.markov_step(table), [2], (), max_length=1, beam_width=6
    )
    np.testing.assert_array_equal(
        toy.numpy(out.tokens)[0, :, 0], [3, 1, PAD, PAD, PAD, PAD]
    )
    np.testing.assert_allclose(
        toy.numpy(out.scores)[0, :2], np.log([0.35, 0.1]), rtol=1e-5
    )
    assert np.all(np.isneginf(toy.numpy(out.scores)[0, 2:]))
    np.testing.assert_array_equal(toy.numpy(out.lengths)[0], [1] * 2 + [0] * 4)


def test_early_stop_once_every_beam_has_ended():
    calls = []
    step = toy.markov_step(
        toy.table_from_probabilities(
            {START: {A: 0.6, B: 0.4}, A: {END: 1.0}, B: {END: 1.0}}, vocab=5
        ),
        calls,
    )
    out = toy.run(
        beam_search,
        step,
        [START, START],
        (),
        max_length=8,
        end_token=END,
        beam_width=2,
    )
    np.testing.assert_array_equal(toy.numpy(out.lengths), [[2, 2], [2, 2]])
    np.testing.assert_array_equal(
        toy.numpy(out.tokens)[0], [[A, END] + [PAD] * 6, [B, END] + [PAD] * 6]
    )
    if keras.config.backend() != "jax":
        assert len(calls) == 2  # eager loops: one Python call per step


def test_bad_arguments():
    def step(tokens, state, constants):
        return ops.one_hot(tokens, 5), ops.one_hot(tokens, 5), state

    cases = [
        ({"beam_width": 0}, r"`beam_width` must be an int >= 1.*beam_width=0"),
        ({"beam_width": 2.0}, r"beam_width=2\.0"),
        ({"max_length": 0}, r"`max_length`.*max_length=0"),
        ({"length_penalty": -0.5}, r"`length_penalty`.*length_penalty=-0\.5"),
        ({"length_penalty": None}, r"`length_penalty`.*length_penalty=None"),
        (
            {"coverage_penalty": -1.0},
            r"`coverage_penalty` must be a float >= 0.*=-1\.0",
        ),
        ({"n_best": 0}, r"`n_best` must be an int >= 1.*n_best=0"),
        (
            {"n_best": 3, "beam_width": 2},
            r"`n_best` must be at most `beam_width` \(2\).*n_best=3",
        ),
        ({"end_token": 7}, r"`end_token`.*vocabulary size 5.*end_token=7"),
        ({"pad_token": -2}, r"`pad_token`.*pad_token=-2"),
    ]
    for kwargs, match in cases:
        kwargs = {"max_length": 3, **kwargs}
        with pytest.raises(ValueError, match=match):
            beam_search(step, [1, 2], None, **kwargs)
    with pytest.raises(ValueError, match=r"`beam_search`.*rank 1.*\(2, 1\)"):
        beam_search(step, [[1], [2]], None, max_length=3)

    def multi_head_step(tokens, state, constants):
        attention = ops.zeros((ops.shape(tokens)[0], 2, 3))
        return ops.one_hot(tokens, 5), attention, state

    with pytest.raises(
        ValueError,
        match=r"`coverage_penalty` needs `step_fn` to return attention of "
        r"shape \(N, source_length\).*\(8, 2, 3\)",
    ):
        beam_search(
            multi_head_step, [1, 2], None, max_length=3, coverage_penalty=0.2
        )


def test_logits_must_keep_the_folded_batch():
    def step(tokens, state, constants):
        # Wrong: drops the beams, returns one row per source.
        return ops.zeros((2, 5)), ops.zeros((2, 3)), state

    with pytest.raises(ValueError, match=r"\(6, vocab_size\).*\(2, 5\)"):
        beam_search(step, [1, 2], None, max_length=3, beam_width=3)


# Attention of a step by the token fed to it, over 3 source positions and
# one padded position (always 0).
_ATTENTION = np.array(
    [
        [0.25, 0.25, 0.5, 0.0],  # PAD
        [0.25, 0.25, 0.5, 0.0],  # END
        [0.98, 0.01, 0.01, 0.0],  # A: the first position again
        [0.02, 0.49, 0.49, 0.0],  # B: the other two
        [0.98, 0.01, 0.01, 0.0],  # START
    ],
    "float32",
)


def _attending_step(rows, attention=_ATTENTION):
    markov = _hand_built_step(rows)

    def step(tokens, state, constants):
        logits, _, state = markov(tokens, state, constants)
        return logits, ops.take(attention, tokens, axis=0), state

    return step


def _hand_coverage(fed):
    """GNMT coverage sum of the attention of the fed tokens, by hand."""
    return _ATTENTION[list(fed)].sum(axis=0)[:3]


def test_coverage_penalty_ranks_by_the_gnmt_formula():
    # `A END` is more probable, but attends the first source position twice
    # and leaves the other two almost uncovered; `B END` covers all three.
    step = _attending_step(
        {
            START: {A: 0.55, B: 0.45},
            A: {END: 0.9, A: 0.05, B: 0.05},
            B: {END: 0.9, A: 0.05, B: 0.05},
        }
    )
    alpha = 0.6
    candidates = {
        (A, END): (np.log(0.55 * 0.9), _hand_coverage([START, A])),
        (B, END): (np.log(0.45 * 0.9), _hand_coverage([START, B])),
    }
    winners = {}
    for beta in (0.0, 0.2):
        expected = {
            y: log_p / _penalty(2, alpha)
            + beta * np.sum(np.log(np.minimum(coverage, 1.0)))
            for y, (log_p, coverage) in candidates.items()
        }
        ranking = sorted(expected, key=lambda y: -expected[y])
        out = toy.run(
            beam_search,
            step,
            [START],
            (),
            max_length=3,
            end_token=END,
            beam_width=2,
            length_penalty=alpha,
            coverage_penalty=beta,
        )
        tokens = toy.numpy(out.tokens)[0]
        for k, y in enumerate(ranking):
            np.testing.assert_array_equal(tokens[k], [*y, PAD])
            np.testing.assert_allclose(
                toy.numpy(out.scores)[0, k], expected[y], rtol=1e-5
            )
        winners[beta] = ranking[0]
    assert winners == {0.0: (A, END), 0.2: (B, END)}


def test_coverage_penalty_can_push_the_end_token_below_the_beam():
    # One beam. END is the most probable first token, but ending there
    # leaves two source positions almost uncovered: with the penalty the
    # beam must take the runner-up `A` (which covers them) instead, so the
    # beam must look beyond its `beam_width` most probable tokens.
    attention = _ATTENTION.copy()
    attention[A] = [0.02, 0.99, 0.99, 0.0]
    step = _attending_step(
        {START: {END: 0.6, A: 0.4}, A: {END: 0.95}}, attention
    )
    results = {}
    for beta in (0.0, 0.5):
        out = toy.run(
            beam_search,
            step,
            [START],
            (),
            max_length=3,
            end_token=END,
            beam_width=1,
            coverage_penalty=beta,
        )
        length = toy.numpy(out.lengths)[0, 0]
        results[beta] = tuple(toy.numpy(out.tokens)[0, 0, :length])
    assert results == {0.0: (END,), 0.5: (A, END)}


@pytest.mark.parametrize(
    "alpha, beta, ratio",
    [(0.0, 0.0, None), (0.6, 0.0, None), (1.5, 0.3, None), (1.0, 0.2, 0.9)],
)
def test_stopping_early_keeps_the_n_best_exact(alpha, beta, ratio):
    # Random problems, 16 sources each: with `n_best=n` every source stops
    # as soon as its n best hypotheses are settled; they must be exactly
    # those of the search run until every hypothesis has finished.
    width, max_length = 4, 9
    stopped_early = False
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model, inputs = _random_beam_problem(rng)
        options = {
            "max_length": max_length,
            "end_token": END,
            "beam_width": width,
            "length_penalty": alpha,
            "coverage_penalty": beta,
        }
        if ratio is not None:
            options["max_length_ratio"] = ratio
            options["source_lengths"] = inputs[2]["mask"].sum(1)
        full = toy.run(beam_search, model.step, *inputs, **options)
        full_calls = model.calls
        for n in (1, 2, 3):
            model.calls = 0
            early = toy.run(
                beam_search, model.step, *inputs, n_best=n, **options
            )
            for field in ("tokens", "lengths", "log_probs", "scores"):
                np.testing.assert_allclose(
                    toy.numpy(getattr(early, field))[:, :n],
                    toy.numpy(getattr(full, field))[:, :n],
                    rtol=1e-6,
                    err_msg=f"seed {seed}, n_best {n}, {field}",
                )
            stopped_early |= not np.array_equal(
                toy.numpy(early.tokens), toy.numpy(full.tokens)
            )
            if keras.config.backend() != "jax":
                assert model.calls <= full_calls
        model.calls = 0
    assert stopped_early, "some source stopped before the full search"


def _random_beam_problem(rng, batch=16):
    table, constants, start = toy.random_problem(
        rng, batch, vocab=7, source_length=5, end_logit=-0.5
    )
    model = toy.Toy(table, penalty=0.2)
    return model, (start, model.initial_state(batch), constants)


def test_stopping_early_saves_steps():
    # The hypothesis `END` (p = 0.6) is settled after one step; the other
    # beam could only decode `A A A ...` (each step p = 0.97) to the end.
    calls = []
    step = toy.markov_step(
        toy.table_from_probabilities(
            {START: {END: 0.6, A: 0.4}, A: {A: 0.97, END: 0.01}}, vocab=5
        ),
        calls,
    )
    options = {"max_length": 30, "end_token": END, "beam_width": 2}
    full = toy.run(beam_search, step, [START], (), **options)
    full_calls = len(calls)
    calls.clear()
    early = toy.run(beam_search, step, [START], (), n_best=1, **options)
    np.testing.assert_array_equal(
        toy.numpy(early.tokens)[0, 0], toy.numpy(full.tokens)[0, 0]
    )
    # log p(A A ...) <= log 0.4 < log 0.6 from the first step on (alpha 0).
    np.testing.assert_array_equal(toy.numpy(early.lengths)[0], [1, 1])
    np.testing.assert_array_equal(toy.numpy(full.lengths)[0], [1, 30])
    if keras.config.backend() != "jax":
        assert (full_calls, len(calls)) == (30, 1)
