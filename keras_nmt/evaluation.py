"""Scoring translations: corpus BLEU (sacrebleu) and exact match, and the
evaluation of a `Translator` on parallel sentences.

Translations are scored exactly as they are printed: no re-tokenisation of
either side before sacrebleu (whose own 13a tokenisation is the standard
way to compare BLEU across toolkits), case kept unless asked otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from keras_nmt.sentences import check_sentences

_WHITESPACE = re.compile(r"\s+")


def normalize_for_scoring(texts: Sequence[str]) -> list[str]:
    """The form in which translations and references are compared.

    Only what cannot be seen on the page is normalised: Unicode NFC (the
    same letters in composed or decomposed form), runs of whitespace as one
    space, and no space at either end. Case, punctuation and the spacing
    around them count: `"est - ce"` does not match `"est-ce"` and
    `"2024 - 08 - 02"` does not match `"2024-08-02"`.

    Args:
        texts: a list of strings.

    Returns:
        The normalised strings, in order.

    Example:

    >>> normalize_for_scoring(["  Hello,   Tom! "])
    ['Hello, Tom!']
    """
    texts = check_sentences(texts, "normalize_for_scoring")
    return [
        _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
        for text in texts
    ]


def corpus_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    lowercase: bool = False,
) -> dict[str, Any]:
    """Corpus BLEU and exact match of translations against references.

    Both sides are scored as printed (see `normalize_for_scoring`: NFC and
    whitespace only). BLEU is sacrebleu's `corpus_bleu` with its defaults
    (13a tokenisation, no smoothing), cased unless `lowercase`; both the
    cased and the lowercased BLEU are returned. A sentence may have several
    references. A translation is an exact match when it equals one of its
    references (ignoring case only with `lowercase`).

    Args:
        hypotheses: one translation per sentence.
        references: for each sentence, a non-empty list of its reference
            translations.
        lowercase: score `"bleu"` and `"exact_match"` case-insensitively
            (the tutorial's shortcut; off by default, as in every NMT
            toolkit).

    Returns:
        A dict: `"bleu"` (0-100: `"bleu_lowercase"` if `lowercase` else
        `"bleu_cased"`), `"bleu_cased"`, `"bleu_lowercase"`, `"exact_match"`
        (percent of sentences, 0-100), `"sentences"` (number of hypotheses),
        `"references"` (total number of references), `"lowercase"` and
        `"bleu_signature"` (sacrebleu's signature of `"bleu"`, for
        reproducibility).

    Raises:
        ValueError: if the lengths differ, a sentence has no reference, or
            the inputs are not strings.

    Example:

    >>> scores = corpus_scores(["Hello, Tom!"], [["Hello, Tom!", "Hi Tom."]])
    >>> round(scores["bleu"], 6), scores["exact_match"]
    (100.0, 100.0)
    >>> corpus_scores(["hello, tom!"], [["Hello, Tom!"]])["exact_match"]
    0.0
    """
    import sacrebleu

    hypotheses = check_sentences(hypotheses, "corpus_scores (hypotheses)")
    if isinstance(references, (str, bytes)) or len(references) != len(
        hypotheses
    ):
        raise ValueError(
            "corpus_scores needs one list of references per hypothesis; "
            f"received {len(hypotheses)} hypotheses and "
            f"{'a string' if isinstance(references, str) else len(references)}"
            " reference lists."
        )
    groups = []
    for i, refs in enumerate(references):
        refs = check_sentences(refs, f"corpus_scores (references[{i}])")
        if not refs:
            raise ValueError(
                f"corpus_scores: sentence {i} has no reference; every "
                "hypothesis needs at least one."
            )
        groups.append(normalize_for_scoring(refs))
    if not hypotheses:
        raise ValueError("corpus_scores received no sentences to score.")
    hyps = normalize_for_scoring(hypotheses)
    width = max(len(refs) for refs in groups)
    # sacrebleu takes reference *streams*; None fills the missing ones.
    streams = [
        [refs[k] if k < len(refs) else None for refs in groups]
        for k in range(width)
    ]
    bleu = {}
    for name, lower in (("cased", False), ("lowercase", True)):
        metric = sacrebleu.metrics.BLEU(lowercase=lower)
        bleu[name] = float(metric.corpus_score(hyps, streams).score)
        if lower == lowercase:
            signature = str(metric.get_signature())

    def key(text):
        return text.lower() if lowercase else text

    exact = sum(
        key(h) in {key(r) for r in refs}
        for h, refs in zip(hyps, groups, strict=True)
    )
    return {
        "bleu": bleu["lowercase" if lowercase else "cased"],
        "bleu_cased": bleu["cased"],
        "bleu_lowercase": bleu["lowercase"],
        "exact_match": 100.0 * exact / len(hyps),
        "sentences": len(hyps),
        "references": sum(len(refs) for refs in groups),
        "lowercase": lowercase,
        "bleu_signature": signature,
    }


def evaluate(
    translator,
    sources: Sequence[str],
    references: Sequence[str],
    *,
    lowercase: bool = False,
    **options,
) -> dict[str, Any]:
    """Corpus BLEU and exact match of a `Translator` on parallel sentences.

    Pairs that share a source sentence (spa.txt has several translations
    of many sentences) are grouped: the source is translated once and
    scored against all its references, with `corpus_scores`, on the
    translations exactly as `translator.translate` returns them.

    Args:
        translator: a `keras_nmt.Translator`.
        sources: source sentences, one per pair.
        references: the reference translation of each pair.
        lowercase: score case-insensitively (see `corpus_scores`).
        **options: decoding options (`keras_nmt.DecodingOptions` fields:
            `method`, `beam_width`, ...) over the translator's defaults;
            `n_best` must stay 1.

    Returns:
        The dict of `corpus_scores` (`"bleu"`, `"bleu_cased"`,
        `"bleu_lowercase"`, `"exact_match"`, `"sentences"` = distinct
        sources, `"references"`, `"bleu_signature"`), plus `"method"`.

    Raises:
        ValueError: on lists of different lengths, no pairs, or invalid
            options.
    """
    sources = check_sentences(sources, "evaluate (sources)")
    references = check_sentences(references, "evaluate (references)")
    if len(sources) != len(references) or not sources:
        raise ValueError(
            "evaluate needs one reference per source and at least one pair; "
            f"received {len(sources)} sources and {len(references)} "
            "references."
        )
    grouped: dict[str, list[str]] = {}
    for source, reference in zip(sources, references, strict=True):
        grouped.setdefault(source, []).append(reference)
    options = translator.options.replace(**options)
    hypotheses = translator.translate(list(grouped), **options.to_dict())
    scores = corpus_scores(
        hypotheses, list(grouped.values()), lowercase=lowercase
    )
    scores["method"] = options.method
    return scores
