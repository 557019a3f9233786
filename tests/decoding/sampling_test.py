import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import compile_decoding
from keras_nmt.decoding import greedy_search
from keras_nmt.decoding import sample
from tests.decoding import toy
from tests.decoding.toy import END
from tests.decoding.toy import PAD

# The 0.999 quantiles of the chi-square distribution with 1, 2 and 3
# degrees of freedom (scipy.stats.chi2.ppf(0.999, df)): a correct sampler
# fails a frequency test below with probability 0.001 for a given seed; the
# seeds are fixed, so the outcome does not change from run to run.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266}

# One row of logits, the same for every start token: a 6-token alphabet.
# The start token of these tests is 2, so PAD (0) and 2 are never sampled
# (although 2 is the second most probable): 4 tokens remain.
LOGITS = np.array([0.3, -1.0, 1.2, 0.0, 2.0, -0.4], "float32")
START = 2
ALLOWED = np.array([1, 3, 4, 5])


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _constant_step(tokens, state, constants):
    logits = ops.take(ops.convert_to_tensor(LOGITS[None]), tokens * 0, axis=0)
    return logits, ops.one_hot(tokens, 6), state


def _row_logits_step(tokens, state, constants):
    """Logits of each row from `constants`, whatever the token."""
    return constants, ops.one_hot(tokens, constants.shape[-1]), state


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(np.sum((counts - expected) ** 2 / expected))


def _first_tokens(out):
    return np.bincount(toy.numpy(out.tokens)[:, 0], minlength=6)


def _sample_first(rows, seed, **options):
    return toy.run(
        sample,
        _constant_step,
        np.full(rows, START),
        (),
        max_length=1,
        seed=seed,
        **options,
    )


def _nucleus(probs, top_p):
    """Brute force: the probabilities renormalised over the smallest set of
    most probable tokens whose probabilities add up to at least `top_p`
    (Holtzman et al. 2019), grown one token at a time, and the tokens tied
    with the last one taken."""
    order = sorted(range(len(probs)), key=lambda v: -probs[v])
    kept, mass = [], 0.0
    for v in order:
        if (mass >= top_p and probs[v] < probs[kept[-1]]) or probs[v] == 0:
            break
        kept.append(v)
        mass += probs[v]
    out = np.zeros(len(probs))
    out[kept] = probs[kept] / probs[kept].sum()
    return out


def _filtered(logits, banned, temperature=1.0, top_k=None, top_p=None):
    """Brute force: the distribution `sample` draws from, in float64."""
    logits = np.where(banned, -np.inf, logits.astype("float64"))
    logits = logits / temperature
    if top_k is not None:
        logits = np.where(logits >= np.sort(logits)[-top_k], logits, -np.inf)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p is not None:
        probs = _nucleus(probs, top_p)
    return probs


def test_frequencies_follow_the_tempered_softmax():
    temperature = 0.7
    counts = _first_tokens(_sample_first(4000, 11, temperature=temperature))
    assert counts[PAD] == counts[START] == 0
    probs = _softmax(LOGITS[ALLOWED] / temperature)
    assert _chi_square(counts[ALLOWED], probs) < CHI2_999[3]
    # The test has power: the untempered softmax is rejected.
    assert _chi_square(counts[ALLOWED], _softmax(LOGITS[ALLOWED])) > 100


def test_top_k_renormalises_over_the_k_most_probable():
    k = 3
    counts = _first_tokens(_sample_first(4000, 5, top_k=k))
    # The 3 most probable allowed tokens (2 is more probable, but banned).
    top = np.array([4, 3, 5])
    outside = np.setdiff1d(np.arange(6), top)
    assert counts[outside].sum() == 0
    assert _chi_square(counts[top], _softmax(LOGITS[top])) < CHI2_999[2]


@pytest.mark.parametrize(
    "options, kept",
    [
        # Allowed probabilities: 4: 0.784, 3: 0.106, 5: 0.071, 1: 0.039.
        ({"top_p": 0.5}, [4]),
        ({"top_p": 0.85}, [4, 3]),
        ({"top_p": 0.95}, [4, 3, 5]),
        ({"top_p": 0.95, "top_k": 2}, [4, 3]),
        # At temperature 3: 4: 0.429, 3: 0.220, 5: 0.193, 1: 0.158.
        ({"top_p": 0.8, "temperature": 3.0}, [4, 3, 5]),
    ],
)
def test_top_p_samples_the_nucleus(options, kept):
    out = _sample_first(4000, 8, **options)
    counts = _first_tokens(out)
    banned = np.isin(np.arange(6), [PAD, START])
    probs = _filtered(LOGITS, banned, **options)
    np.testing.assert_array_equal(np.flatnonzero(probs), sorted(kept))
    assert counts[probs == 0].sum() == 0
    if len(kept) > 1:
        chi2 = _chi_square(counts[kept], probs[kept])
        assert chi2 < CHI2_999[len(kept) - 1]
    # The score of a token is its log-probability under the filtered
    # distribution: the exact distribution, not just its samples.
    tokens = toy.numpy(out.tokens)[:, 0]
    np.testing.assert_allclose(
        toy.numpy(out.scores), np.log(probs[tokens]), rtol=1e-5, atol=1e-6
    )


def test_top_p_matches_brute_force_on_random_distributions(rng):
    # 300 rows, each with its own logits over 9 tokens, some of them tied;
    # every sampled token must lie in the brute-force nucleus, with the
    # brute-force probability as its score.
    rows, vocab = 300, 9
    logits = rng.normal(size=(rows, vocab)).astype("float32") * 2.0
    logits[::3, 5] = logits[::3, 6]
    start = rng.integers(2, vocab, size=rows)
    banned = np.zeros((rows, vocab), bool)
    banned[:, PAD] = True
    banned[np.arange(rows), start] = True
    for top_p, temperature, top_k in [(0.3, 1.0, None), (0.8, 0.7, 5)]:
        out = toy.run(
            sample,
            _row_logits_step,
            start,
            (),
            logits,
            max_length=1,
            top_p=top_p,
            temperature=temperature,
            top_k=top_k,
            seed=2,
        )
        tokens = toy.numpy(out.tokens)[:, 0]
        scores = toy.numpy(out.scores)
        for row in range(rows):
            probs = _filtered(
                logits[row], banned[row], temperature, top_k, top_p
            )
            assert probs[tokens[row]] > 0
            np.testing.assert_allclose(
                scores[row], np.log(probs[tokens[row]]), rtol=1e-4, atol=1e-5
            )


def test_top_p_one_keeps_every_token():
    default = toy.numpy(_sample_first(500, 3).tokens)
    np.testing.assert_array_equal(
        toy.numpy(_sample_first(500, 3, top_p=1.0).tokens), default
    )


def test_pad_and_start_are_never_sampled_even_when_most_likely():
    # PAD and the start token have by far the largest logits; a high
    # temperature flattens the rest.
    logits = np.array([[9.0, 0.0, 10.0, 0.5, -0.5, 0.2]], "float32")
    out = toy.run(
        sample,
        _row_logits_step,
        np.full(2000, START),
        (),
        np.repeat(logits, 2000, axis=0),
        max_length=1,
        temperature=5.0,
        seed=1,
    )
    counts = _first_tokens(out)
    assert counts[PAD] == counts[START] == 0
    assert np.all(counts[ALLOWED] > 0)


def test_top_k_never_samples_outside_the_top_k(rng):
    table, constants, start = toy.random_problem(rng, 64, 8, end_logit=-3.0)
    model = toy.Toy(table, penalty=0.0)
    k = 2
    out = toy.run(
        sample,
        model.step,
        start,
        model.initial_state(64),
        constants,
        max_length=6,
        end_token=END,
        top_k=k,
        temperature=3.0,
        seed=1,
    )
    tokens, lengths = toy.numpy(out.tokens), toy.numpy(out.lengths)
    for row in range(64):
        fed = np.concatenate([[start[row]], tokens[row]])
        for t in range(lengths[row]):
            logits = table[fed[t]] + constants["bias"][row]
            logits[[PAD, start[row]]] = -np.inf
            assert tokens[row, t] in np.argsort(logits)[::-1][:k]


def test_scores_and_log_probs(rng):
    table, constants, start = toy.random_problem(rng, 8, 7)
    model = toy.Toy(table)
    temperature, k = 1.5, 4
    out = toy.run(
        sample,
        model.step,
        start,
        model.initial_state(8),
        constants,
        max_length=5,
        end_token=END,
        temperature=temperature,
        top_k=k,
        seed=3,
    )
    tokens, lengths = toy.numpy(out.tokens), toy.numpy(out.lengths)
    banned = np.isin(np.arange(7), [PAD])
    for row in range(8):
        sequence = tokens[row, : lengths[row]]
        log_prob, _ = model.np_log_prob(start, constants, row, sequence)
        np.testing.assert_allclose(
            toy.numpy(out.log_probs)[row], log_prob, rtol=1e-4
        )
        # Scores: the same tokens under the distribution sampled from.
        token, bag, score = int(start[row]), np.zeros(7), 0.0
        row_banned = banned | (np.arange(7) == start[row])
        for next_token in sequence:
            log_probs, _, bag = model.np_step(token, bag, constants, row)
            probs = _filtered(log_probs, row_banned, temperature, k)
            score += np.log(probs[next_token])
            token = int(next_token)
        np.testing.assert_allclose(toy.numpy(out.scores)[row], score, rtol=1e-4)
        assert np.all(tokens[row, lengths[row] :] == 0)


def test_top_k_one_and_tiny_temperature_are_greedy(rng):
    table, constants, start = toy.random_problem(rng, 6, 7)
    model = toy.Toy(table)
    state = model.initial_state(6)
    kwargs = {"max_length": 6, "end_token": END}
    args = (model.step, start, state, constants)
    greedy = toy.run(greedy_search, *args, **kwargs)
    top_1 = toy.run(sample, *args, top_k=1, seed=1, **kwargs)
    cold = toy.run(sample, *args, temperature=1e-4, seed=2, **kwargs)
    for out in (top_1, cold):
        np.testing.assert_array_equal(
            toy.numpy(out.tokens), toy.numpy(greedy.tokens)
        )
        np.testing.assert_allclose(
            toy.numpy(out.log_probs), toy.numpy(greedy.log_probs), rtol=1e-5
        )
    # Sampling from a one-token distribution has probability 1.
    np.testing.assert_allclose(toy.numpy(top_1.scores), 0.0, atol=1e-6)


def test_same_seed_same_tokens_other_seed_other_tokens():
    # Through compile_decoding: keyword arguments are static, so the two
    # calls with seed 42 share one compiled function.
    decode = compile_decoding(
        lambda start, seed: sample(
            _constant_step, start, (), max_length=3, seed=seed
        )
    )
    start = ops.convert_to_tensor(np.full(64, 2, "int32"))
    first = toy.numpy(decode(start, seed=42).tokens)
    again = toy.numpy(decode(start, seed=42).tokens)
    other = toy.numpy(decode(start, seed=43).tokens)
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)
    # Every step draws new numbers: the columns are not copies.
    assert np.any(first[:, 0] != first[:, 1])


def test_bad_arguments():
    cases = [
        ({"temperature": 0.0}, r"temperature=0\.0.*use `greedy_search`"),
        ({"temperature": -1.0}, r"`temperature` must be > 0.*-1\.0"),
        ({"temperature": "hot"}, r"`temperature` must be a float.*'hot'"),
        ({"top_k": 0}, r"`top_k` must be an int >= 1.*top_k=0"),
        ({"top_k": 7}, r"at most the vocabulary size 6.*top_k=7"),
        ({"top_p": 0.0}, r"`top_p` must be None or a float in \(0, 1\]"),
        ({"top_p": 1.5}, r"`top_p`.*top_p=1\.5"),
        ({"top_p": True}, r"`top_p`.*top_p=True"),
        ({"max_length": 0}, r"`max_length`.*max_length=0"),
        ({"end_token": 6}, r"`end_token`.*vocabulary size 6.*end_token=6"),
    ]
    for kwargs, match in cases:
        kwargs = {"max_length": 2, **kwargs}
        with pytest.raises(ValueError, match=match):
            sample(_constant_step, [2, 3], (), **kwargs)
    with pytest.raises(ValueError, match=r"`sample`.*rank 1.*\(\)"):
        sample(_constant_step, 2, (), max_length=2, seed=1)
