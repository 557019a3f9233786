"""Lists of sentences as the public functions take them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_sentences(sentences, where: str) -> list[str]:
    """`sentences` as a list of `str` (bytes decoded as UTF-8), or a
    `ValueError` naming `where` and what was wrong."""
    if isinstance(sentences, (str, bytes)):
        raise ValueError(
            f"{where} expects a list of sentences; received a single string "
            f"{sentences!r:.80}. Pass a list: [sentence]."
        )
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    if not isinstance(sentences, Sequence):
        raise ValueError(
            f"{where} expects a list of strings; received "
            f"{type(sentences).__name__}."
        )
    out = []
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, bytes):
            sentence = sentence.decode("utf-8")
        if not isinstance(sentence, str):
            raise ValueError(
                f"{where} expects a list of strings; element {i} is a "
                f"{type(sentence).__name__}: {sentence!r:.60}."
            )
        out.append(sentence)
    return out
