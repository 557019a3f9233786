import numpy as np
import pytest
from keras import ops

from keras_nmt.decoding import compile_decoding
from keras_nmt.decoding import greedy_search
from keras_nmt.decoding import sample
from tests.decoding import toy
from tests.decoding.toy import END

# The 0.999 quantile of the chi-square distribution with 5 degrees of
# freedom (scipy.stats.chi2.ppf(0.999, 5)): a correct sampler fails the
# frequency test below with probability 0.001 for a given seed; the seeds
# are fixed, so the outcome does not change from run to run.
CHI2_999_DF5 = 20.515

# One row of logits, the same for every start token: a 6-token alphabet.
LOGITS = np.array([0.3, -1.0, 1.2, 0.0, 2.0, -0.4], "float32")


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _constant_step(tokens, state, constants):
    logits = ops.take(ops.convert_to_tensor(LOGITS[None]), tokens * 0, axis=0)
    return logits, ops.one_hot(tokens, 6), state


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(np.sum((counts - expected) ** 2 / expected))


def _first_tokens(out):
    return np.bincount(toy.numpy(out.tokens)[:, 0], minlength=6)


def test_frequencies_follow_the_tempered_softmax():
    rows, temperature = 4000, 0.7
    out = toy.run(
        sample,
        _constant_step,
        np.full(rows, 2),
        (),
        max_length=1,
        temperature=temperature,
        seed=11,
    )
    counts = _first_tokens(out)
    assert _chi_square(counts, _softmax(LOGITS / temperature)) < CHI2_999_DF5
    # The test has power: the untempered softmax is rejected.
    assert _chi_square(counts, _softmax(LOGITS)) > 10 * CHI2_999_DF5


def test_top_k_renormalises_over_the_k_most_probable():
    rows, k = 4000, 3
    out = toy.run(
        sample,
        _constant_step,
        np.full(rows, 2),
        (),
        max_length=1,
        top_k=k,
        seed=5,
    )
    counts = _first_tokens(out)
    top = np.argsort(LOGITS)[::-1][:k]
    outside = np.setdiff1d(np.arange(6), top)
    assert counts[outside].sum() == 0
    probs = _softmax(LOGITS[top])
    # Two degrees of freedom: chi2.ppf(0.999, 2) = 13.816.
    assert _chi_square(counts[top], probs) < 13.816


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
    for row in range(8):
        sequence = tokens[row, : lengths[row]]
        log_prob, _ = model.np_log_prob(start, constants, row, sequence)
        np.testing.assert_allclose(
            toy.numpy(out.log_probs)[row], log_prob, rtol=1e-4
        )
        # Scores: the same tokens under the distribution sampled from.
        token, bag, score = int(start[row]), np.zeros(7), 0.0
        for next_token in sequence:
            log_probs, _, bag = model.np_step(token, bag, constants, row)
            scaled = log_probs / temperature
            kept = scaled >= np.sort(scaled)[-k]
            scaled = np.where(kept, scaled, -np.inf)
            score += scaled[next_token] - np.log(np.exp(scaled).sum())
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
        ({"max_length": 0}, r"`max_length`.*max_length=0"),
        ({"end_token": 6}, r"`end_token`.*vocabulary size 6.*end_token=6"),
    ]
    for kwargs, match in cases:
        kwargs = {"max_length": 2, **kwargs}
        with pytest.raises(ValueError, match=match):
            sample(_constant_step, [2, 3], (), **kwargs)
    with pytest.raises(ValueError, match=r"`sample`.*rank 1.*\(\)"):
        sample(_constant_step, 2, (), max_length=2, seed=1)
