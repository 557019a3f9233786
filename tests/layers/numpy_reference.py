"""Float64 NumPy references of the attention layers, written from the formulas.

Nothing here calls the package: each function is the textbook definition,
with loops or `einsum` where that keeps the formula readable.
"""

import numpy as np


def masked_softmax(scores, mask=None):
    """Softmax over the last axis; masked entries 0; an all-masked row is 0."""
    scores = np.asarray(scores, np.float64)
    if mask is None:
        mask = np.ones(scores.shape, bool)
    mask = np.broadcast_to(np.asarray(mask, bool), scores.shape)
    # exp(s - max) over the unmasked entries of each row, 0 elsewhere.
    top = np.max(np.where(mask, scores, -np.inf), axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(np.where(mask, scores - top, -np.inf))
    total = e.sum(axis=-1, keepdims=True)
    # A row with nothing to attend to keeps all-zero weights.
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def sparsemax(scores, mask=None):
    """Projection of each row's unmasked scores onto the simplex.

    Found by bisection on `tau` in `sum_i max(z_i - tau, 0) = 1` (the sum
    falls from >= 1 at `tau = max(z) - 1` to 0 at `tau = max(z)`), not by
    the sort formula the layer uses. Masked entries and all-masked rows 0.
    """
    scores = np.asarray(scores, np.float64)
    if mask is None:
        mask = np.ones(scores.shape, bool)
    mask = np.broadcast_to(np.asarray(mask, bool), scores.shape)
    flat_scores = scores.reshape(-1, scores.shape[-1])
    flat_mask = mask.reshape(-1, scores.shape[-1])
    out = np.zeros_like(flat_scores)
    for row, (z, keep) in enumerate(zip(flat_scores, flat_mask, strict=True)):
        if not keep.any():
            continue
        z = z[keep]
        low, high = z.max() - 1.0, z.max()
        for _ in range(200):
            tau = (low + high) / 2
            if np.maximum(z - tau, 0.0).sum() >= 1.0:
                low = tau
            else:
                high = tau
        out[row, keep] = np.maximum(z - low, 0.0)
    return out.reshape(scores.shape)


def hardmax(scores, mask=None):
    """One-hot of `np.argmax` of each row's unmasked scores (first on ties)."""
    scores = np.asarray(scores, np.float64)
    if mask is None:
        mask = np.ones(scores.shape, bool)
    mask = np.broadcast_to(np.asarray(mask, bool), scores.shape)
    best = np.argmax(np.where(mask, scores, -np.inf), axis=-1)
    out = np.zeros_like(scores)
    np.put_along_axis(out, best[..., None], 1.0, axis=-1)
    # An all-masked row has nothing to pick.
    return out * mask.any(axis=-1, keepdims=True)


PROBABILITY_FNS = {
    "softmax": masked_softmax,
    "sparsemax": sparsemax,
    "hardmax": hardmax,
}


def bahdanau_scores(query, key, w_q, w_k, v, g=None, b=None):
    """`v . tanh(W_q q + W_k k (+ b))`, with `v = g v / ||v||` if `g` is given.

    query `(B, Tq, dq)`, key `(B, Tk, dk)` -> scores `(B, Tq, Tk)`.
    """
    query = np.asarray(query, np.float64)
    key = np.asarray(key, np.float64)
    pq = query @ np.asarray(w_q, np.float64)  # (B, Tq, U)
    pk = key @ np.asarray(w_k, np.float64)  # (B, Tk, U)
    v = np.asarray(v, np.float64)
    if b is not None:
        pk = pk + np.asarray(b, np.float64)
    if g is not None:
        v = float(g) * v / np.sqrt(np.sum(v * v))
    hidden = np.tanh(pq[:, :, None, :] + pk[:, None, :, :])  # (B, Tq, Tk, U)
    return np.einsum("bqku,u->bqk", hidden, v)


def dot_scores(query, key, w=None, scale=None):
    """`q . k`, or Luong "general" `q . (W k)` with `W (dk, dq)`; times `scale`.

    `W` is stored the Keras way, as the kernel `(dk, dq)` of `k @ W`.
    """
    query = np.asarray(query, np.float64)
    key = np.asarray(key, np.float64)
    if w is not None:
        key = key @ np.asarray(w, np.float64)
    scores = np.einsum("bqd,bkd->bqk", query, key)
    if scale is not None:
        scores = scores * float(scale)
    return scores


def scaled_dot_scores(query, key):
    """`q . k / sqrt(d_k)`."""
    key = np.asarray(key, np.float64)
    return dot_scores(query, key) / np.sqrt(key.shape[-1])


def attention(
    scores,
    value,
    value_mask=None,
    query_mask=None,
    use_causal_mask=False,
    probability_fn="softmax",
):
    """Masked weights of `scores (B, Tq, Tk)` and the context `(B, Tq, dv)`.

    `probability_fn`: a name in `PROBABILITY_FNS`, or a NumPy function
    `fn(scores, mask)`.
    """
    batch, tq, tk = scores.shape
    mask = np.ones((batch, tq, tk), bool)
    if value_mask is not None:
        mask &= np.asarray(value_mask, bool)[:, None, :]
    if use_causal_mask:
        mask &= np.tril(np.ones((tq, tk), bool))[None]
    if isinstance(probability_fn, str):
        probability_fn = PROBABILITY_FNS[probability_fn]
    weights = probability_fn(scores, mask)
    if query_mask is not None:
        weights = weights * np.asarray(query_mask, bool)[:, :, None]
    context = weights @ np.asarray(value, np.float64)
    return context, weights


def layer_scores(layer, query, key):
    """Reference scores of an attention layer, reading its own weights."""
    name = type(layer).__name__
    if name == "BahdanauAttention":
        extra = {}
        if layer.normalize:
            extra = {"g": _np(layer.g), "b": _np(layer.b)}
        return bahdanau_scores(
            query,
            key,
            _np(layer.query_dense.kernel),
            _np(layer.key_dense.kernel),
            _np(layer.v),
            **extra,
        )
    if name == "DotProductAttention":
        w = (
            _np(layer.key_dense.kernel)
            if layer.score_mode == "general"
            else None
        )
        scale = _np(layer.scale) if layer.use_scale else None
        return dot_scores(query, key, w=w, scale=scale)
    if name == "ScaledDotProductAttention":
        return scaled_dot_scores(query, key)
    raise TypeError(f"no reference for {name}")


def layer_attention(
    layer,
    query,
    value,
    key=None,
    query_mask=None,
    value_mask=None,
    use_causal_mask=False,
    probability_fn="softmax",
):
    """Reference `(context, weights)` of `layer(query, value, key, ...)`.

    Handles the single-step form: a rank-2 query (and a `(B,)` query mask).
    """
    key = value if key is None else key
    query = np.asarray(query, np.float64)
    single_step = query.ndim == 2
    if single_step:
        query = query[:, None, :]
        if query_mask is not None:
            query_mask = np.asarray(query_mask)[:, None]
    context, weights = attention(
        layer_scores(layer, query, key),
        value,
        value_mask=value_mask,
        query_mask=query_mask,
        use_causal_mask=use_causal_mask,
        probability_fn=probability_fn,
    )
    if single_step:
        return context[:, 0], weights[:, 0]
    return context, weights


def _np(variable):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)
