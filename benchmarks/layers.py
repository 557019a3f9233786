"""Speed of the attention layers next to their Keras built-in counterparts.

    python -m benchmarks.layers [--repeats 15] [--modes xla,graph] [--quick]

One process, TensorFlow backend. For each shape (with a padding mask on the
keys) and each layer, forward and forward+backward (gradients of a scalar
loss with respect to the inputs and all weights) are timed next to the
built-in, alternating the two so that both see the same machine load. It
prints the median times, the ratio ours / built-in (< 1: ours is faster),
the achieved GFLOP/s and its fraction of a float32 matmul's GFLOP/s measured
in the same process and mode.

Modes: `xla` is `tf.function(jit_compile=True)`, what `model.fit` uses on the
TensorFlow backend by default (`jit_compile="auto"`); `graph` is a plain
`tf.function`.

Pairs:
- BahdanauAttention(units=d) vs keras.layers.AdditiveAttention (which has no
  W_q / W_k projections: ours does more work);
- DotProductAttention() vs keras.layers.Attention();
- ScaledDotProductAttention() vs keras.layers.Attention() on queries scaled
  by 1/sqrt(d), and vs keras.ops.dot_product_attention.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_nmt  # noqa: E402

SHAPES = [(64, 30, 256), (32, 128, 256), (8, 512, 64)]


def _flops(kind, batch, length, depth):
    """Forward FLOPs, counted the same way for ours and the built-in."""
    scores = batch * length * length
    softmax = 5 * scores
    context = 2 * scores * depth
    if kind == "additive":
        # add, multiply by v, accumulate per unit (tanh not counted)
        score = 3 * scores * depth
        projections = 2 * 2 * batch * length * depth * depth
        return score + softmax + context, projections
    return 2 * scores * depth + softmax + context, 0


def _median_pair(fn_a, fn_b, args, repeats):
    """Median seconds of two functions, alternated run by run."""
    for fn in (fn_a, fn_b):
        for _ in range(2):  # compile + warm up
            _block(fn(*args))
    times = ([], [])
    for _ in range(repeats):
        for fn, out in zip((fn_a, fn_b), times, strict=True):
            start = time.perf_counter()
            _block(fn(*args))
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _block(result):
    for x in tf.nest.flatten(result):
        x.numpy()


def _forward(call):
    return lambda q, v, mask: call(q, v, mask)


def _forward_backward(call, weights):
    def run(q, v, mask):
        with tf.GradientTape() as tape:
            tape.watch([q, v])
            out = call(q, v, mask)
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, [q, v, *weights])

    return run


def _matmul_gflops(jit, repeats):
    n = 1024
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    fn = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=jit)
    seconds, _ = _median_pair(fn, fn, (a, b), repeats)
    return 2 * n**3 / seconds / 1e9


def _pairs(depth):
    """(name, kind, ours (layer, call), built-in (layer, call), baseline)."""
    scale = 1.0 / np.sqrt(depth)

    bahdanau = keras_nmt.BahdanauAttention(units=depth)
    additive = keras.layers.AdditiveAttention()
    dot = keras_nmt.DotProductAttention()
    attention = keras.layers.Attention()
    scaled = keras_nmt.ScaledDotProductAttention()
    attention_scaled = keras.layers.Attention()

    def ours(layer):
        return lambda q, v, m: layer(q, v, value_mask=m)

    def keras_layer(layer, query_scale=1.0):
        return lambda q, v, m: layer([q * query_scale, v], mask=[None, m])

    def keras_op(q, v, m):
        out = keras.ops.dot_product_attention(
            q[:, :, None, :],
            v[:, :, None, :],
            v[:, :, None, :],
            mask=m[:, None, None, :],
        )
        return out[:, :, 0, :]

    return [
        (
            "Bahdanau",
            "additive",
            bahdanau,
            ours(bahdanau),
            "AdditiveAttention",
            additive,
            keras_layer(additive),
        ),
        (
            "DotProduct",
            "dot",
            dot,
            ours(dot),
            "Attention",
            attention,
            keras_layer(attention),
        ),
        (
            "ScaledDotProduct",
            "dot",
            scaled,
            ours(scaled),
            "Attention(q/sqrt(d))",
            attention_scaled,
            keras_layer(attention_scaled, scale),
        ),
        (
            "ScaledDotProduct",
            "dot",
            scaled,
            ours(scaled),
            "ops.dot_product_attention",
            None,
            keras_op,
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--modes", default="xla,graph")
    parser.add_argument(
        "--quick", action="store_true", help="first shape only, 5 repeats"
    )
    args = parser.parse_args(argv)
    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 5 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    print(
        f"keras-nmt {keras_nmt.__version__}, keras "
        f"{keras.__version__}, tensorflow {tf.__version__}, "
        f"{os.cpu_count()} CPUs; median of {repeats} runs"
    )
    for mode in args.modes.split(","):
        jit = {"xla": True, "graph": False}[mode]
        peak = _matmul_gflops(jit, repeats)
        print(f"\n## mode={mode}: float32 matmul 1024^3 = {peak:.0f} GFLOP/s")
        print(
            "| shape B,T,d | layer | vs | pass | ours ms | built-in ms "
            "| ratio | ours GFLOP/s | % of matmul |"
        )
        print("|---|---|---|---|---:|---:|---:|---:|---:|")
        for batch, length, depth in shapes:
            q = tf.constant(rng.normal(size=(batch, length, depth)), "float32")
            v = tf.constant(rng.normal(size=(batch, length, depth)), "float32")
            lengths = rng.integers(length // 2, length + 1, size=(batch, 1))
            mask = tf.constant(np.arange(length)[None, :] < lengths)
            for (
                name,
                kind,
                layer,
                call,
                other,
                other_layer,
                other_call,
            ) in _pairs(depth):
                # Build both, so weights exist before tracing.
                call(q, v, mask)
                other_call(q, v, mask)
                core, projections = _flops(kind, batch, length, depth)
                for pass_name, factor in (("fwd", 1), ("fwd+bwd", 3)):
                    if pass_name == "fwd":
                        fa, fb = _forward(call), _forward(other_call)
                    else:
                        fa = _forward_backward(call, layer.trainable_weights)
                        other_weights = (
                            other_layer.trainable_weights if other_layer else []
                        )
                        fb = _forward_backward(other_call, other_weights)
                    fa = tf.function(fa, jit_compile=jit)
                    fb = tf.function(fb, jit_compile=jit)
                    ta, tb = _median_pair(fa, fb, (q, v, mask), repeats)
                    gflops = factor * (core + projections) / ta / 1e9
                    print(
                        f"| {batch},{length},{depth} | {name} | {other} | "
                        f"{pass_name} | {ta * 1e3:.2f} | {tb * 1e3:.2f} | "
                        f"{ta / tb:.2f} | {gflops:.1f} | "
                        f"{100 * gflops / peak:.1f}% |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
