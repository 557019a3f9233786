"""Scoring translations: corpus BLEU (sacrebleu) and exact match, and the
evaluation of a `Translator` on parallel sentences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_nmt.sentences import check_sentences
from keras_nmt.text import join_tokens
from keras_nmt.text import standardize


def normalize_for_scoring(texts: Sequence[str]) -> list[str]:
    """The form in which translations and references are compared.

    Both sides go through the same steps as a model's output: the package's
    `standardize` (Unicode case folding, NFKD, spaces around punctuation,
    symbols dropped, whitespace collapsed), then `join_tokens` (punctuation
    re-attached, NFC). So `"Hello, Tom!"` and `"hello ,  tom !"` both become
    `"hello, tom!"`: case and spacing do not count, words and punctuation
    do.

    Args:
        texts: a list of strings.

    Returns:
        The normalised strings, in order.
    """
    texts = check_sentences(texts, "normalize_for_scoring")
    if not texts:
        return []
    words = tf.strings.split(standardize(tf.constant(texts, tf.string)))
    return [s.decode("utf-8") for s in join_tokens(words).numpy()]


def corpus_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Corpus BLEU and exact match of translations against references.

    Both sides are first normalised with `normalize_for_scoring` (lowercase,
    NFC, canonical spacing: the form the translator outputs). BLEU is
    sacrebleu's `corpus_bleu` with its defaults (13a tokenisation, exponential
    smoothing off, case-sensitive on the already lowercased text); a sentence
    may have several references. A translation is an exact match when its
    normalised form equals the normalised form of any of its references.

    Args:
        hypotheses: one translation per sentence.
        references: for each sentence, a non-empty list of its reference
            translations.

    Returns:
        A dict: `"bleu"` (0-100), `"exact_match"` (percent of sentences,
        0-100), `"sentences"` (number of hypotheses), `"references"` (total
        number of references) and `"bleu_signature"` (sacrebleu's
        signature, for reproducibility).

    Raises:
        ValueError: if the lengths differ, a sentence has no reference, or
            the inputs are not strings.

    Example:

    >>> scores = corpus_scores(["Hello, Tom!"], [["hello, tom!", "Hi Tom."]])
    >>> round(scores["bleu"], 6), scores["exact_match"]
    (100.0, 100.0)
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
        groups.append(refs)
    if not hypotheses:
        raise ValueError("corpus_scores received no sentences to score.")
    flat = normalize_for_scoring([r for refs in groups for r in refs])
    hyps = normalize_for_scoring(hypotheses)
    normalized, start = [], 0
    for refs in groups:
        normalized.append(flat[start : start + len(refs)])
        start += len(refs)
    width = max(len(refs) for refs in normalized)
    # sacrebleu takes reference *streams*; None fills the missing ones.
    streams = [
        [refs[k] if k < len(refs) else None for refs in normalized]
        for k in range(width)
    ]
    metric = sacrebleu.metrics.BLEU()
    bleu = metric.corpus_score(hyps, streams)
    exact = sum(h in refs for h, refs in zip(hyps, normalized, strict=True))
    return {
        "bleu": float(bleu.score),
        "exact_match": 100.0 * exact / len(hyps),
        "sentences": len(hyps),
        "references": len(flat),
        "bleu_signature": str(metric.get_signature()),
    }


def evaluate(
    translator, sources: Sequence[str], references: Sequence[str], **options
) -> dict[str, Any]:
    """Corpus BLEU and exact match of a `Translator` on parallel sentences.

    Pairs that share a source sentence (spa.txt has several translations
    of many sentences) are grouped: the source is translated once and
    scored against all its references, with `corpus_scores`.

    Args:
        translator: a `keras_nmt.Translator`.
        sources: source sentences, one per pair.
        references: the reference translation of each pair.
        **options: decoding options (`keras_nmt.DecodingOptions` fields:
            `method`, `beam_width`, ...) over the translator's defaults;
            `n_best` must stay 1.

    Returns:
        The dict of `corpus_scores` (`"bleu"`, `"exact_match"`,
        `"sentences"` = distinct sources, `"references"`,
        `"bleu_signature"`), plus `"method"`.

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
    scores = corpus_scores(hypotheses, list(grouped.values()))
    scores["method"] = options.method
    return scores
