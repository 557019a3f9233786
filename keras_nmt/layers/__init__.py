"""Attention layers: Bahdanau (additive), Luong (dot / general), scaled dot."""

from keras_nmt.layers.bahdanau_attention import BahdanauAttention
from keras_nmt.layers.base_attention import BaseAttention
from keras_nmt.layers.base_attention import masked_softmax
from keras_nmt.layers.dot_product_attention import DotProductAttention
from keras_nmt.layers.scaled_dot_product_attention import (
    ScaledDotProductAttention,
)

__all__ = [
    "BahdanauAttention",
    "BaseAttention",
    "DotProductAttention",
    "ScaledDotProductAttention",
    "masked_softmax",
]
