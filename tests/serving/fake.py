"""A fake translator for the serving tests: fast, deterministic, and able
to hold the batcher's worker inside a call."""

import threading
from typing import NamedTuple

import numpy as np

from keras_nmt.decoding.methods import DecodingOptions

GREEDY = DecodingOptions()
TIMEOUT = 30


class FakeTranslation(NamedTuple):
    text: str
    source_tokens: list
    target_tokens: list
    attention: np.ndarray
    score: float


def fake_text(sentence, options, k=0):
    """What the fake translates `sentence` into (hypothesis `k`)."""
    return f"{sentence}|{options['method']}|{k}"


class FakeTranslator:
    """Translates `s` into `"s|method|k"` (hypothesis k); records its calls
    and, while `gate` is cleared, waits inside each call."""

    batch_size = 8
    options = GREEDY

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_with = None

    def translate(self, sentences, **options):
        options = self.options.replace(**options)
        if options.beam_width > 10:
            raise ValueError("beam_width too large for this model")
        return [fake_text(s, options.to_dict()) for s in sentences]

    def _call(self, kind, sentences, options):
        self.calls.append((kind, list(sentences), options))
        self.entered.set()
        assert self.gate.wait(TIMEOUT)
        if self.fail_with is not None:
            raise self.fail_with

    def translate_n_best(self, sentences, **options):
        self._call("n_best", sentences, options)
        return [
            [
                (fake_text(s, options, k), -float(len(s) + k))
                for k in range(options["n_best"])
            ]
            for s in sentences
        ]

    def translate_with_attention(self, sentence, **options):
        self._call("attention", [sentence], options)
        weights = np.full((2, 3), 1 / 3, dtype="float32")
        return FakeTranslation(
            fake_text(sentence, options),
            ["a", "b", "c"],
            ["x", "y"],
            weights,
            -1.0,
        )
