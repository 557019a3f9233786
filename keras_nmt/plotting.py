"""Attention heatmaps with matplotlib.

matplotlib is imported on the first call of `plot_attention`, not when
`keras_nmt` is imported. The figure is built with matplotlib's
object-oriented API (`matplotlib.figure.Figure`), never through `pyplot`'s
global state, so it works on any backend, including the non-interactive
`"Agg"` of servers and CI, and nothing is ever shown: save it with
`figure.savefig(path)`, or let a notebook display it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _labels(tokens, name: str) -> list[str]:
    if isinstance(tokens, (str, bytes)):
        raise ValueError(
            f"plot_attention: `{name}` must be a list of token strings, one "
            f"per axis position; received the single string {tokens!r}. "
            "Split it, e.g. `sentence.split()`."
        )
    return [str(t) for t in tokens]


def plot_attention(
    weights,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    ax=None,
    title: str | None = None,
):
    """Plot attention weights as a labelled heatmap.

    Row `i` shows how the target token `target_tokens[i]` spread its
    attention over the source tokens: source tokens label the x axis (on
    top, rotated), target tokens the y axis, and a colorbar gives the
    scale: 0 to 1 (or to the largest weight, if one is larger).

    Args:
        weights: array-like `(T_target, T_source)`: the attention weights of
            one sentence, e.g. `Translation.attention` from
            `Translator.translate_with_attention`.
        source_tokens: `T_source` labels for the columns.
        target_tokens: `T_target` labels for the rows.
        ax: optional matplotlib `Axes` to draw into; by default a new
            `Figure` sized to the number of tokens is created.
        title: optional title of the axes.

    Returns:
        The matplotlib `Figure` that holds the heatmap.

    Raises:
        ValueError: if `weights` is not 2-D, or its shape does not match the
            number of source and target tokens.

    Example:

    >>> figure = plot_attention([[0.9, 0.1], [0.2, 0.8]],
    ...                         ["hola", "."], ["hello", "."])
    >>> [t.get_text() for t in figure.axes[0].get_xticklabels()]
    ['hola', '.']
    """
    weights = np.asarray(weights, dtype="float32")
    source_tokens = _labels(source_tokens, "source_tokens")
    target_tokens = _labels(target_tokens, "target_tokens")
    if weights.ndim != 2:
        raise ValueError(
            "plot_attention: `weights` must be 2-D (T_target, T_source), one "
            f"sentence; received shape {weights.shape}. For a batch, plot "
            "one row at a time, e.g. `weights[0]`."
        )
    expected = (len(target_tokens), len(source_tokens))
    if weights.shape != expected:
        raise ValueError(
            f"plot_attention: `weights` has shape {weights.shape} but there "
            f"are {len(target_tokens)} target tokens (rows) and "
            f"{len(source_tokens)} source tokens (columns), i.e. expected "
            f"shape {expected}. Pass one label per row and per column."
        )

    from matplotlib.figure import Figure

    if ax is None:
        width = 1.5 + 0.45 * max(len(source_tokens), 4)
        height = 1.5 + 0.4 * max(len(target_tokens), 4)
        figure = Figure(figsize=(width, height), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.get_figure()
    top = max(1.0, float(weights.max())) if weights.size else 1.0
    image = ax.imshow(
        weights, cmap="viridis", vmin=0.0, vmax=top, aspect="auto"
    )
    ax.set_xticks(range(len(source_tokens)), labels=source_tokens)
    ax.set_yticks(range(len(target_tokens)), labels=target_tokens)
    ax.xaxis.tick_top()
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    ax.xaxis.set_label_position("top")
    if title is not None:
        ax.set_title(title)
    figure.colorbar(image, ax=ax, label="attention weight")
    return figure
