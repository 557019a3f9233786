"""Decoding methods by name, and their options, checked once.

Every caller that decodes a trained model (the `Translator`, the command
line, the SavedModel export) names a method and its options through one
`DecodingOptions` and runs it with `decode`. This module imports no Keras,
so the command line can offer the choices without loading TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable

from keras_nmt.options import Check
from keras_nmt.options import Options
from keras_nmt.options import choice
from keras_nmt.options import flag
from keras_nmt.options import integer
from keras_nmt.options import number
from keras_nmt.options import option


@dataclasses.dataclass(frozen=True)
class Method:
    """A decoding method of `Seq2SeqInference`.

    Attributes:
        name: the name users pass (`"greedy"`, `"sample"`, `"beam"`).
        run: `(inference, source_tokens, options) -> Decoded`.
        uses: the `DecodingOptions` fields it reads.
        beams: whether its `Decoded` has a beam axis.
    """

    name: str
    run: Callable
    uses: tuple[str, ...] = ()
    beams: bool = False


# The options every method reads (`keras_nmt.decoding.constraints`).
RULES = ("min_length", "no_repeat_ngram_size", "max_length_ratio")


def _rules(options) -> dict:
    return {name: getattr(options, name) for name in RULES}


METHODS = {
    method.name: method
    for method in (
        Method(
            "greedy",
            lambda inference, source, o: inference.greedy(source, **_rules(o)),
            uses=RULES,
        ),
        Method(
            "sample",
            lambda inference, source, o: inference.sample(
                source,
                temperature=o.temperature,
                top_k=o.top_k,
                top_p=o.top_p,
                **_rules(o),
            ),
            uses=("temperature", "top_k", "top_p", *RULES),
        ),
        Method(
            "beam",
            lambda inference, source, o: inference.beam_search(
                source,
                beam_width=o.beam_width,
                length_penalty=o.length_penalty,
                coverage_penalty=o.coverage_penalty,
                n_best=o.n_best,
                **_rules(o),
            ),
            uses=(
                "beam_width",
                "length_penalty",
                "coverage_penalty",
                "n_best",
                *RULES,
            ),
            beams=True,
        ),
    )
}


def _optional_number(expected: str, accepts) -> Check:
    """`None` or a number that `accepts` (from the command line: a float)."""
    return Check(
        expected=f"None or {expected}",
        accepts=lambda v: (
            v is None
            or (
                isinstance(v, numbers.Real)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and accepts(v)
            )
        ),
        parse=float,
        normalize=lambda v: None if v is None else float(v),
    )


@dataclasses.dataclass(frozen=True)
class DecodingOptions(Options):
    """How to decode: a method of `METHODS` and its options.

    The defaults decode as before these options existed: no coverage
    penalty, no minimum length, no n-gram ban, no length ratio, no nucleus.

    Example:

    >>> DecodingOptions(method="beam", beam_width=4).n_best
    1
    """

    method: str = option("greedy", "decoding method", choice(METHODS))
    beam_width: int = option(5, "hypotheses kept by beam search", integer())
    length_penalty: float = option(
        0.6, "GNMT length penalty alpha of beam search (0: none)", number()
    )
    coverage_penalty: float = option(
        0.0,
        "GNMT coverage penalty beta of beam search: penalises finished "
        "hypotheses whose attention leaves source words uncovered (0: none)",
        number(),
    )
    temperature: float = option(
        1.0, "sampling temperature", number(0.0, above=True)
    )
    top_k: int | None = option(
        None,
        "sample among the K most probable tokens (default: all)",
        integer(optional=True),
        metavar="K",
    )
    top_p: float | None = option(
        None,
        "sample among the most probable tokens whose probabilities add up "
        "to P, after top-k (nucleus sampling; default: all)",
        _optional_number("a number in (0, 1]", lambda v: 0 < v <= 1),
        metavar="P",
    )
    min_length: int = option(
        0,
        "tokens generated before the end token is allowed",
        integer(minimum=0),
        metavar="N",
    )
    no_repeat_ngram_size: int = option(
        0,
        "never generate an n-gram of N tokens twice in a sentence (0: allowed)",
        integer(minimum=0),
        metavar="N",
    )
    max_length_ratio: float | None = option(
        None,
        "generate at most ceil(RATIO * source tokens) tokens per sentence "
        "(default: the model's max_length only)",
        _optional_number("a number > 0", lambda v: v > 0),
        metavar="RATIO",
    )
    n_best: int = option(
        1, "hypotheses returned per sentence (beam search)", integer()
    )
    replace_unknown: bool = option(
        False,
        "replace each [UNK] of a translation by the source word it attended "
        "to most (Luong et al. 2015)",
        flag(),
    )

    def check_together(self) -> None:
        if self.n_best > 1 and self.method != "beam":
            raise ValueError(
                f"Invalid n_best={self.n_best} with method={self.method!r}; "
                "several hypotheses per sentence come from beam search: use "
                "method='beam'."
            )
        if self.n_best > self.beam_width:
            raise ValueError(
                f"Invalid n_best={self.n_best} with beam_width="
                f"{self.beam_width}; beam search keeps beam_width "
                "hypotheses, so n_best must be <= beam_width."
            )

    @property
    def beams(self) -> bool:
        return METHODS[self.method].beams


def decode(inference, source_tokens, options: DecodingOptions):
    """Run `options.method` of a `Seq2SeqInference` on int sources
    `(B, Ts)`; returns its `Decoded` (with a beam axis for beam search)."""
    return METHODS[options.method].run(inference, source_tokens, options)
