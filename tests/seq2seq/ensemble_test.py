import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import EnsembleInference
from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.seq2seq import build_seq2seq

START, END, VOCAB = 1, 2, 20


def _model(seed, style="bahdanau", attention="bahdanau"):
    keras.utils.set_random_seed(seed)
    return build_seq2seq(
        VOCAB,
        VOCAB,
        embedding_dim=8,
        units=16,
        style=style,
        attention=attention,
    )


def _sources(batch=3, length=6):
    rng = np.random.default_rng(0)
    source = rng.integers(3, VOCAB, size=(batch, length)).astype("int32")
    source[1, 3:] = 0
    return source


def _numpy(decoded):
    return [ops.convert_to_numpy(x) for x in decoded]


@pytest.mark.parametrize("method", ["greedy", "beam_search"])
def test_an_ensemble_of_one_model_decodes_as_that_model(method):
    model = _model(0)
    options = {"start_token": START, "end_token": END, "max_length": 7}
    single = getattr(Seq2SeqInference(model, **options), method)(_sources())
    ensemble = getattr(EnsembleInference([model], **options), method)(
        _sources()
    )
    for a, b in zip(_numpy(single), _numpy(ensemble), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_ensemble_averages_the_models_log_probabilities():
    models = [_model(0), _model(1, style="luong", attention="dot")]
    options = {"start_token": START, "end_token": END, "max_length": 5}
    source = _sources()
    decoded = _numpy(EnsembleInference(models, **options).greedy(source))
    tokens, log_probs = decoded[0], decoded[2]
    # Reference: each model stepped on the ensemble's own tokens, the
    # log-softmax of each model averaged, renormalised, argmax in NumPy.
    inferences = [Seq2SeqInference(m, **options) for m in models]
    encoded = [i.encode(source) for i in inferences]
    previous = np.full((source.shape[0],), START, "int32")
    total = np.zeros(source.shape[0])
    for t in range(tokens.shape[1]):
        mean = 0.0
        for k, inference in enumerate(inferences):
            state, constants = encoded[k]
            logits, _, state = inference.step(previous, state, constants)
            encoded[k] = (state, constants)
            logits = ops.convert_to_numpy(logits).astype("float64")
            shifted = logits - logits.max(-1, keepdims=True)
            mean = (
                mean + shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            )
        mean = mean / len(models)
        mean = mean - np.log(np.exp(mean).sum(-1, keepdims=True))
        # Padding (0) and the start token are never generated.
        allowed = mean.copy()
        allowed[:, [0, START]] = -np.inf
        expected = allowed.argmax(-1)
        ended = (tokens[:, :t] == END).any(-1)
        np.testing.assert_array_equal(tokens[~ended, t], expected[~ended])
        chosen = mean[np.arange(len(expected)), expected]
        total = total + np.where(ended, 0.0, chosen)
        previous = tokens[:, t].astype("int32")
    np.testing.assert_allclose(log_probs, total, rtol=1e-4, atol=1e-4)


def test_models_with_other_vocabularies_are_refused():
    other = build_seq2seq(VOCAB + 1, VOCAB, embedding_dim=8, units=16)
    with pytest.raises(ValueError, match=r"vocabulary sizes differ"):
        EnsembleInference([_model(0), other], start_token=START, end_token=END)
    with pytest.raises(ValueError, match=r"at least one model"):
        EnsembleInference([], start_token=START, end_token=END)
