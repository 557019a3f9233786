"""A toy decoder over a small alphabet, in keras.ops and in NumPy.

No model, no training: the logits of the next token are a fixed row of a
`(V, V)` table indexed by the last token, plus a per-source bias, minus a
penalty on tokens already emitted (so the state matters and must follow its
beam). The attention is a masked softmax over per-source keys that depends on
the last token, so the attention history encodes the token history and the
source (sources of different lengths differ in their masks).
"""

import itertools

import keras
import numpy as np
from keras import ops

from keras_nmt.decoding import compile_decoding

PAD = 0
END = 1


def random_problem(
    rng, batch, vocab, source_length=4, scale=2.0, end_logit=-2.0
):
    """Table, per-source constants and start tokens of a random problem."""
    table = rng.normal(size=(vocab, vocab)).astype("float32") * scale
    table[:, END] += end_logit  # sequences of various lengths
    table[:, PAD] = -1e4  # never generated: sequences only end at END
    bias = rng.normal(size=(batch, vocab)).astype("float32")
    keys = rng.normal(size=(batch, source_length)).astype("float32")
    # Row b attends to its first `source_length - b % source_length` keys.
    lengths = source_length - np.arange(batch) % source_length
    mask = np.arange(source_length)[None, :] < lengths[:, None]
    start = rng.integers(2, vocab, size=batch).astype("int32")
    constants = {"bias": bias, "keys": keys, "mask": mask}
    return table, constants, start


class Toy:
    """The toy decoder: `step` in keras.ops, `np_step` its NumPy twin."""

    def __init__(self, table, penalty=0.5):
        self.table = np.asarray(table, "float32")
        self.vocab = self.table.shape[0]
        self.penalty = penalty
        self.calls = 0

    def initial_state(self, batch):
        return {
            "bag": np.zeros((batch, self.vocab), "float32"),
            "extra": (np.zeros((batch, 2), "float32"),),
        }

    def step(self, tokens, state, constants):
        self.calls += 1
        bag = state["bag"]
        logits = (
            ops.take(ops.convert_to_tensor(self.table), tokens, axis=0)
            + constants["bias"]
            - self.penalty * bag
        )
        scores = constants["keys"] * ops.expand_dims(
            ops.cast(tokens, "float32") + 1.0, -1
        )
        scores = ops.where(constants["mask"], scores, -1e9)
        attention = ops.where(
            constants["mask"], ops.softmax(scores, axis=-1), 0.0
        )
        new_state = {
            "bag": bag + ops.one_hot(tokens, self.vocab),
            "extra": (state["extra"][0] + 1.0,),
        }
        return logits, attention, new_state

    def np_step(self, token, bag, constants, row):
        """One step of one row: `(log_probs, attention, new_bag)`."""
        logits = (
            self.table[token] + constants["bias"][row] - self.penalty * bag
        ).astype("float64")
        log_probs = logits - logits.max()
        log_probs -= np.log(np.exp(log_probs).sum())
        mask = constants["mask"][row]
        scores = constants["keys"][row].astype("float64") * (token + 1.0)
        scores = np.where(mask, scores, -np.inf)
        attention = np.exp(scores - scores[mask].max())
        attention = np.where(mask, attention / attention[mask].sum(), 0.0)
        new_bag = bag.copy()
        new_bag[token] += 1
        return log_probs, attention, new_bag

    def np_greedy(
        self,
        start,
        constants,
        max_length,
        end_token=END,
        min_length=0,
        ngram=0,
        limits=None,
    ):
        """Greedy search, one row at a time, in NumPy: the most probable
        token that keeps the sequence `allowed`; a row stops at the end
        token, at its limit, or when no token is allowed."""
        batch = len(start)
        source_length = constants["keys"].shape[1]
        tokens = np.full((batch, max_length), PAD)
        attention = np.zeros((batch, max_length, source_length))
        scores = np.zeros(batch)
        lengths = np.zeros(batch, int)
        for row in range(batch):
            token, bag, sequence = int(start[row]), np.zeros(self.vocab), []
            limit = max_length if limits is None else limits[row]
            for t in range(limit):
                log_probs, att, new_bag = self.np_step(
                    token, bag, constants, row
                )
                ranked = np.argsort(-log_probs, kind="stable")
                ok = [
                    int(v)
                    for v in ranked
                    if allowed(
                        [*sequence, int(v)],
                        start[row],
                        end_token,
                        min_length,
                        ngram,
                    )
                ]
                if not ok:
                    break
                token, bag = ok[0], new_bag
                sequence.append(token)
                tokens[row, t] = token
                attention[row, t] = att
                scores[row] += log_probs[token]
                lengths[row] += 1
                if token == end_token:
                    break
        return tokens, scores, attention, lengths

    def np_log_prob(self, start, constants, row, sequence):
        """Log-probability and attention history of one generated sequence."""
        token, bag = int(start[row]), np.zeros(self.vocab)
        total, history = 0.0, []
        for next_token in sequence:
            log_probs, att, bag = self.np_step(token, bag, constants, row)
            total += log_probs[next_token]
            history.append(att)
            token = int(next_token)
        return total, np.array(history)

    def np_all_hypotheses(
        self,
        start,
        constants,
        row,
        max_length,
        end_token,
        min_length=0,
        ngram=0,
    ):
        """Every complete `allowed` hypothesis (ending at `end_token`, or
        of `max_length` tokens) with its log-probability and attention
        history, by enumeration."""
        others = [t for t in range(self.vocab) if t != end_token]
        hypotheses = []
        for length in range(1, max_length + 1):
            for body in itertools.product(others, repeat=length - 1):
                ends = [(*body, end_token)]
                if length == max_length:
                    ends += [(*body, w) for w in others]
                for sequence in ends:
                    if not allowed(
                        sequence, start[row], end_token, min_length, ngram
                    ):
                        continue
                    log_prob, history = self.np_log_prob(
                        start, constants, row, sequence
                    )
                    hypotheses.append((sequence, log_prob, history))
        return hypotheses


def allowed(sequence, start, end_token=END, min_length=0, ngram=0):
    """Whether a generated sequence (or prefix) keeps the decoding rules,
    checked directly on its tokens: no PAD, no start token, the end token
    only last and after at least `min_length` tokens, no n-gram twice."""
    sequence = [int(t) for t in sequence]
    special = {PAD, int(start)} - {end_token}
    if special & set(sequence):
        return False
    if end_token in sequence[:-1]:
        return False
    if sequence and sequence[-1] == end_token and len(sequence) <= min_length:
        return False
    if ngram:
        grams = [
            tuple(sequence[i : i + ngram])
            for i in range(len(sequence) - ngram + 1)
        ]
        if len(set(grams)) != len(grams):
            return False
    return True


def table_from_probabilities(rows, vocab, floor=1e-6):
    """A `(V, V)` log-probability table from `{token: {next: prob}}`."""
    table = np.full((vocab, vocab), floor)
    for token, nexts in rows.items():
        for next_token, prob in nexts.items():
            table[token, next_token] = prob
    table /= table.sum(axis=1, keepdims=True)
    return np.log(table).astype("float32")


def markov_step(table, calls=None):
    """A step function with no state use: logits = table[last token].

    Attention is the one-hot of the last token (`(N, V)`), so the attention
    history of a sequence spells the tokens it was fed.
    """
    table = np.asarray(table, "float32")
    vocab = table.shape[0]

    def step(tokens, state, constants):
        if calls is not None:
            calls.append(1)
        logits = ops.take(ops.convert_to_tensor(table), tokens, axis=0)
        return logits, ops.one_hot(tokens, vocab), state

    return step


def numpy(x):
    return ops.convert_to_numpy(x)


def run(strategy, step_fn, *tensors, **options):
    """`strategy(step_fn, *tensors, **options)`, under `jax.jit` on JAX.

    Eager JAX compiles every operation of a new shape separately (seconds
    per decoding call on a small CPU); one `jax.jit` compiles the whole
    decoding once. TensorFlow and PyTorch run eagerly. The eager JAX path
    is covered by a few direct calls in the tests.
    """
    tensors = [np.asarray(t) if isinstance(t, list) else t for t in tensors]
    if keras.config.backend() != "jax":
        return strategy(step_fn, *tensors, **options)
    compiled = compile_decoding(
        lambda *tensors: strategy(step_fn, *tensors, **options)
    )
    return compiled(*tensors)
