"""The additive (Bahdanau) score, `s[b, i, j] = sum_u v[u] tanh(q[b, i, u] +
k[b, j, u])`.

Written by hand because autodiff of the obvious expression is slow: it keeps
the `(B, Tq, Tk, units)` tanh tensor alive between forward and backward and
reduces it along two non-minor axes, which XLA on CPU compiles to poorly
vectorised loops. That is why `keras.layers.AdditiveAttention` reaches only
a few percent of matmul throughput. Here:

- the gradient is a `keras.ops.custom_gradient` that *recomputes* the tanh
  instead of storing it (no 4-D tensor is kept for the backward pass);
- the sums over `units` are matrix-vector products (`t @ v`, `g @ t`),
  which go to the BLAS instead of a generic reduction;
- queries are processed in chunks sized so the 4-D intermediate of one chunk
  stays around 2**20 elements (a few MB, cache-sized), with a compiled
  `fori_loop`, which bounds memory and keeps the data in cache.

The measurements behind each choice are in `benchmarks/layers.py` and the
README.

`additive_coverage_scores` is the same kernel with the coverage term of See
et al. (2017), `s = sum_u v[u] tanh(q[u] + k[u] + c w[u])`: the coverage
`c[b, i, j]` enters the tanh through a learned vector `w`, so it is one more
`(B, Tq, Tk, units)` broadcast inside the tanh, recomputed in the backward
pass like the rest and chunked along the queries with them. Without a
coverage the kernel above runs, untouched.
"""

from keras import ops

# Elements of the (B, chunk, Tk, units) intermediate processed at once.
_CHUNK_ELEMENTS = 2**20


def _chunk_size(batch, query_length, key_length, units):
    """Queries per chunk, or None to process all queries at once."""
    if None in (query_length, key_length, units):
        return None  # a dynamic length: no static chunking possible
    batch = 64 if batch is None else batch
    per_query = batch * key_length * units
    if per_query == 0:
        return None  # no batch or no keys: an empty intermediate
    size = max(1, _CHUNK_ELEMENTS // per_query)
    return None if size >= query_length else size


def _tanh_terms(query, keys, coverage=None, w=None):
    # (B, Tq, 1, U) + (B, 1, Tk, U) [+ (B, Tq, Tk, 1) * (U,)] -> (B, Tq, Tk, U)
    pre = ops.expand_dims(query, 2) + ops.expand_dims(keys, 1)
    if coverage is not None:
        pre = pre + ops.expand_dims(coverage, -1) * w
    return ops.tanh(pre)


def _scores(query, keys, v, coverage=None, w=None):
    return ops.matmul(_tanh_terms(query, keys, coverage, w), v)


def _grads(query, keys, v, upstream, coverage=None, w=None):
    t = _tanh_terms(query, keys, coverage, w)
    h = ops.expand_dims(upstream, -1) * (1.0 - t * t)
    d_query = ops.sum(h, axis=2) * v
    d_keys = ops.sum(h, axis=1) * v
    units = ops.shape(t)[-1]
    d_v = ops.matmul(
        ops.reshape(upstream, (1, -1)), ops.reshape(t, (-1, units))
    )[0]
    if coverage is None:
        return d_query, d_keys, d_v
    # d s / d c = sum_u h[u] v[u] w[u]; d s / d w[u] = v[u] sum c h[u].
    d_coverage = ops.matmul(h, v * w)
    h_flat = ops.reshape(h, (-1, units))
    d_w = ops.matmul(ops.reshape(coverage, (1, -1)), h_flat)[0] * v
    return d_query, d_keys, d_v, d_coverage, d_w


def _to_chunks(x, size):
    """(B, T, ...) -> (T_pad // size, B, size, ...), zero-padding T."""
    length = x.shape[1]
    pad = -length % size
    if pad:
        widths = [(0, 0)] * len(x.shape)
        widths[1] = (0, pad)
        x = ops.pad(x, widths)
    n = (length + pad) // size
    x = ops.reshape(x, (-1, n, size, *x.shape[2:]))
    return ops.moveaxis(x, 1, 0)


def _from_chunks(x, length):
    """Inverse of `_to_chunks`."""
    x = ops.moveaxis(x, 0, 1)
    x = ops.reshape(x, (-1, x.shape[1] * x.shape[2], *x.shape[3:]))
    return x[:, :length]


@ops.custom_gradient
def additive_scores(query, keys, v):
    """Additive scores `(B, Tq, Tk)` from projected queries and keys.

    Args:
        query: float32 `(B, Tq, U)`, the projected queries `W_q q`.
        keys: float32 `(B, Tk, U)`, the projected keys `W_k k` (+ bias).
        v: float32 `(U,)`, the score vector.
    """
    size = _chunk_size(
        query.shape[0], query.shape[1], keys.shape[1], v.shape[0]
    )
    if size is None:
        scores = _scores(query, keys, v)
    else:
        chunks = _to_chunks(query, size)

        def forward_chunk(i, out):
            return ops.slice_update(
                out,
                (i, 0, 0, 0),
                ops.expand_dims(_scores(chunks[i], keys, v), 0),
            )

        out = ops.zeros(
            (chunks.shape[0], ops.shape(query)[0], size, ops.shape(keys)[1]),
            dtype=query.dtype,
        )
        out = ops.fori_loop(0, chunks.shape[0], forward_chunk, out)
        scores = _from_chunks(out, query.shape[1])

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        if size is None:
            return _grads(query, keys, v, upstream)
        g_chunks = _to_chunks(upstream, size)

        def backward_chunk(i, carry):
            d_query, d_keys, d_v = carry
            dq, dk, dv = _grads(chunks[i], keys, v, g_chunks[i])
            d_query = ops.slice_update(
                d_query, (i, 0, 0, 0), ops.expand_dims(dq, 0)
            )
            return d_query, d_keys + dk, d_v + dv

        d_query, d_keys, d_v = ops.fori_loop(
            0,
            chunks.shape[0],
            backward_chunk,
            (ops.zeros_like(chunks), ops.zeros_like(keys), ops.zeros_like(v)),
        )
        return _from_chunks(d_query, query.shape[1]), d_keys, d_v

    return scores, grad


@ops.custom_gradient
def additive_coverage_scores(query, keys, v, coverage, w):
    """Additive scores with a coverage term, `(B, Tq, Tk)`.

    `s[b, i, j] = sum_u v[u] tanh(q[b, i, u] + k[b, j, u] + c[b, i, j] w[u])`
    (See, Liu and Manning, 2017, eq. 11), with the gradient of
    `additive_scores`: recomputed, chunked along the queries.

    Args:
        query: float32 `(B, Tq, U)`, the projected queries `W_q q`.
        keys: float32 `(B, Tk, U)`, the projected keys `W_k k` (+ bias).
        v: float32 `(U,)`, the score vector.
        coverage: float32 `(B, Tq, Tk)`, the coverage of every key for
            every query (the sum of the attention weights so far).
        w: float32 `(U,)`, the coverage's weight vector `w_c`.
    """
    size = _chunk_size(
        query.shape[0], query.shape[1], keys.shape[1], v.shape[0]
    )
    if size is None:
        scores = _scores(query, keys, v, coverage, w)
    else:
        chunks = _to_chunks(query, size)
        c_chunks = _to_chunks(coverage, size)

        def forward_chunk(i, out):
            return ops.slice_update(
                out,
                (i, 0, 0, 0),
                ops.expand_dims(_scores(chunks[i], keys, v, c_chunks[i], w), 0),
            )

        out = ops.zeros(
            (chunks.shape[0], ops.shape(query)[0], size, ops.shape(keys)[1]),
            dtype=query.dtype,
        )
        out = ops.fori_loop(0, chunks.shape[0], forward_chunk, out)
        scores = _from_chunks(out, query.shape[1])

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        if size is None:
            return _grads(query, keys, v, upstream, coverage, w)
        g_chunks = _to_chunks(upstream, size)

        def backward_chunk(i, carry):
            d_query, d_keys, d_v, d_coverage, d_w = carry
            dq, dk, dv, dc, dw = _grads(
                chunks[i], keys, v, g_chunks[i], c_chunks[i], w
            )
            d_query = ops.slice_update(
                d_query, (i, 0, 0, 0), ops.expand_dims(dq, 0)
            )
            d_coverage = ops.slice_update(
                d_coverage, (i, 0, 0, 0), ops.expand_dims(dc, 0)
            )
            return d_query, d_keys + dk, d_v + dv, d_coverage, d_w + dw

        d_query, d_keys, d_v, d_coverage, d_w = ops.fori_loop(
            0,
            chunks.shape[0],
            backward_chunk,
            (
                ops.zeros_like(chunks),
                ops.zeros_like(keys),
                ops.zeros_like(v),
                ops.zeros_like(c_chunks),
                ops.zeros_like(w),
            ),
        )
        return (
            _from_chunks(d_query, query.shape[1]),
            d_keys,
            d_v,
            _from_chunks(d_coverage, query.shape[1]),
            d_w,
        )

    return scores, grad
