"""The three attention layers on random shapes, masks and numbers.

`base_attention_test.py` draws values and masks for a few fixed shapes; here
the shapes are drawn too: batch, query and key lengths, the three depths,
rank-2 (one decoder step) and rank-3 queries, optional separate keys,
query, value and causal masks, all-masked rows included. The only error
allowed is the documented `ValueError` of a dot-product score whose query
and key depths differ.
"""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from tests.layers.backend_utils import to_numpy

# Every new shape compiles anew on JAX (and is slower on PyTorch).
MAX_EXAMPLES = 40 if keras.backend.backend() == "tensorflow" else 12
NAMES = ("bahdanau", "dot", "general", "scaled")


def make_layer(name, units):
    if name == "bahdanau":
        return BahdanauAttention(units=units)
    if name == "general":
        return DotProductAttention(score="general", use_scale=True)
    if name == "dot":
        return DotProductAttention()
    return ScaledDotProductAttention()


def _masks(batch, length):
    """Optional boolean masks `(batch, length)`, all-masked rows likely."""
    row = st.one_of(
        st.just([False] * length),
        st.lists(st.booleans(), min_size=length, max_size=length),
    )
    return st.one_of(
        st.none(), st.lists(row, min_size=batch, max_size=batch).map(np.array)
    )


@st.composite
def cases(draw):
    batch, tq, tk = (draw(st.integers(1, n)) for n in (4, 6, 7))
    dq, dv = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dk = draw(st.one_of(st.just(dq), st.integers(1, 5)))
    single_step = draw(st.booleans())
    case = {
        "name": draw(st.sampled_from(NAMES)),
        "units": draw(st.integers(1, 6)),
        "query": (batch, dq) if single_step else (batch, tq, dq),
        "value": (batch, tk, dv),
        "key": draw(st.sampled_from([None, (batch, tk, dk)])),
        "value_mask": draw(_masks(batch, tk)),
        "query_mask": None,
        "causal": not single_step and draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }
    query_mask = draw(_masks(batch, tq))
    if query_mask is not None:
        case["query_mask"] = query_mask[:, 0] if single_step else query_mask
    return case


def _expected_sums(case):
    """1 where a query has at least one key to attend to, else 0."""
    batch, tk = case["value"][:2]
    tq = 1 if len(case["query"]) == 2 else case["query"][1]
    allowed = np.ones((batch, tq, tk), bool)
    if case["value_mask"] is not None:
        allowed &= case["value_mask"][:, None, :]
    if case["causal"]:
        allowed &= np.tril(np.ones((tq, tk), bool))
    if case["query_mask"] is not None:
        query_mask = case["query_mask"].reshape(batch, -1)
        allowed &= query_mask[:, :, None]
    return allowed.any(-1).astype("float64")


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(case=cases())
def test_random_shapes_and_masks(case):
    rng = np.random.default_rng(case["seed"])

    def normal(shape):
        return (rng.normal(size=shape) * 3).astype("float32")

    query, value = normal(case["query"]), normal(case["value"])
    key = None if case["key"] is None else normal(case["key"])
    dq, dk = case["query"][-1], (case["key"] or case["value"])[-1]
    layer = make_layer(case["name"], case["units"])
    kwargs = {
        "key": key,
        "value_mask": case["value_mask"],
        "query_mask": case["query_mask"],
        "use_causal_mask": case["causal"],
        "return_attention_scores": True,
    }
    if case["name"] in ("dot", "scaled") and dq != dk:
        try:
            layer(query, value, **kwargs)
        except ValueError as error:
            assert "depth" in str(error), error
            return
        raise AssertionError(f"no ValueError for depths {dq} != {dk}")
    context, weights = to_numpy(layer(query, value, **kwargs))

    batch, tk, dv = case["value"]
    if len(case["query"]) == 2:
        assert context.shape == (batch, dv)
        assert weights.shape == (batch, tk)
        weights = weights[:, None]
    else:
        assert context.shape == (batch, case["query"][1], dv)
        assert weights.shape == (batch, case["query"][1], tk)
    assert np.isfinite(context).all() and np.isfinite(weights).all()
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(-1), _expected_sums(case), atol=1e-5)
    if case["value_mask"] is not None:
        masked = np.broadcast_to(~case["value_mask"][:, None], weights.shape)
        assert (weights[masked] == 0).all()
