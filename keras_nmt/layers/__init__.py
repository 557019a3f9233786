"""Attention layers: Bahdanau (additive), Luong (dot / general), scaled dot.

`probability` holds the functions that turn their scores into weights
(`softmax`, `sparsemax`, `hardmax`), chosen by the layers' `probability_fn`.
"""

from keras_nmt.layers import probability
from keras_nmt.layers.bahdanau_attention import BahdanauAttention
from keras_nmt.layers.bahdanau_monotonic_attention import (
    BahdanauMonotonicAttention,
)
from keras_nmt.layers.base_attention import BaseAttention
from keras_nmt.layers.base_attention import masked_softmax
from keras_nmt.layers.dot_product_attention import DotProductAttention
from keras_nmt.layers.luong_monotonic_attention import LuongMonotonicAttention
from keras_nmt.layers.scaled_dot_product_attention import (
    ScaledDotProductAttention,
)

__all__ = [
    "BahdanauAttention",
    "BahdanauMonotonicAttention",
    "BaseAttention",
    "DotProductAttention",
    "LuongMonotonicAttention",
    "ScaledDotProductAttention",
    "masked_softmax",
    "probability",
]
