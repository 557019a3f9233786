import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from keras_nmt.seq2seq.scan import time_scan
from tests.layers.backend_utils import function_gradients
from tests.layers.backend_utils import to_numpy

tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the XLA train step is TensorFlow's (JAX always compiles)",
)


def _step(w):
    """A step on a nested carry `(h, (c, count))` and inputs `(x, (g,))`,
    reading `w` from its closure."""

    def step(carry, inputs):
        h, (c, count) = carry
        x, (g,) = inputs
        c = ops.sigmoid(g) * c + ops.tanh(ops.matmul(h, w) + x)
        h = ops.tanh(c) * ops.sigmoid(x)
        carry = (h, (c, count + ops.sum(h, axis=-1)))
        return carry, carry

    return step


def _numpy_scan(w, h, c, count, xs, gs):
    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    history = []
    for x, g in zip(xs, gs, strict=True):
        c = sigmoid(g) * c + np.tanh(h @ w + x)
        h = np.tanh(c) * sigmoid(x)
        count = count + h.sum(-1)
        history.append((h, c, count))
    return (h, c, count), tuple(np.stack(s) for s in zip(*history, strict=True))


def _inputs(rng, steps=6, batch=3, dim=4):
    return [
        rng.normal(size=(dim, dim)).astype("float32"),  # w
        rng.normal(size=(batch, dim)).astype("float32"),  # h
        rng.normal(size=(batch, dim)).astype("float32"),  # c
        rng.normal(size=(batch,)).astype("float32"),  # count
        rng.normal(size=(steps, batch, dim)).astype("float32"),  # xs
        rng.normal(size=(steps, batch, dim)).astype("float32"),  # gs
    ]


def test_values_equal_ops_scan_and_numpy(rng):
    w, h, c, count, xs, gs = _inputs(rng)
    init = (ops.array(h), (ops.array(c), ops.array(count)))
    steps = (ops.array(xs), (ops.array(gs),))
    expected_carry, expected_ys = _numpy_scan(w, h, c, count, xs, gs)
    for scan in (time_scan, ops.scan):
        (h_n, (c_n, count_n)), (hs, (cs, counts)) = scan(
            _step(ops.array(w)), init, steps
        )
        for got, want in zip(
            (h_n, c_n, count_n, hs, cs, counts),
            (*expected_carry, *expected_ys),
            strict=True,
        ):
            np.testing.assert_allclose(to_numpy(got), want, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 6])
def test_gradients_equal_ops_scan(steps, rng):
    inputs = _inputs(rng, steps=steps)

    def loss(scan):
        def fn(w, h, c, count, xs, gs):
            (h_n, (_, count_n)), (hs, (cs, counts)) = scan(
                _step(w), (h, (c, count)), (xs, (gs,))
            )
            # Every output, weighted unevenly so no gradient cancels out.
            return (
                ops.sum(h_n * 1.5)
                + ops.sum(count_n)
                + ops.sum(ops.square(hs))
                + ops.sum(cs * ops.arange(cs.shape[-1], dtype="float32"))
                + ops.sum(ops.sin(counts))
            )

        return fn

    value, grads = function_gradients(loss(time_scan), inputs)
    expected_value, expected_grads = function_gradients(loss(ops.scan), inputs)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    for got, want in zip(grads, expected_grads, strict=True):
        assert np.abs(want).max() > 0  # every input reaches the loss
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@tensorflow_only
def test_compiles_with_xla_and_its_gradient_for_any_length(rng):
    import tensorflow as tf

    w, h, c, count, xs, gs = _inputs(rng, steps=5)
    variable = tf.Variable(w)

    def value_and_grads(xs, gs):
        with tf.GradientTape() as tape:
            tape.watch([xs, gs])
            _, (hs, (cs, _)) = time_scan(
                _step(variable), (h, (c, count)), (xs, (gs,))
            )
            loss = tf.reduce_sum(tf.square(hs)) + tf.reduce_sum(cs)
        return loss, tape.gradient(loss, [variable, xs, gs])

    signature = [tf.TensorSpec((None, None, 4), "float32")] * 2
    graph = tf.function(value_and_grads, input_signature=signature)
    xla = tf.function(
        value_and_grads, input_signature=signature, jit_compile=True
    )
    for length in (5, 2):  # one trace, a compilation per length
        expected = graph(xs[:length], gs[:length])
        got = xla(xs[:length], gs[:length])
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
        for a, b in zip(got[1], expected[1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@tensorflow_only
def test_a_step_that_changes_the_carry_raises():
    init = (ops.zeros((2, 3)),)
    xs = ops.zeros((4, 2, 3))
    with pytest.raises(ValueError, match="shapes and dtypes of `init`"):
        time_scan(lambda c, x: ((c[0][:, :2],), c), init, xs)
    with pytest.raises(ValueError, match="structure of `init`"):
        time_scan(lambda c, x: (c, (c[0], c[0])), init, xs)


def _data(rng, batch=4, source_length=7, target_length=6, vocab=30):
    source = rng.integers(1, vocab, size=(batch, source_length))
    source[0, 3:] = 0
    target = rng.integers(1, vocab, size=(batch, target_length + 1))
    target[1, 4:] = 0
    return (
        source.astype("int32"),
        target[:, :-1].astype("int32"),
        target[:, 1:].astype("int32"),
    )


# (style, attention, cell, input_feeding)
XLA_CONFIGS = [
    ("bahdanau", "bahdanau", "lstm", False),
    ("bahdanau", "dot", "gru", False),
    ("bahdanau", "general", "lstm", False),
    ("luong", "bahdanau", "gru", False),
    ("luong", "dot", "lstm", False),
    ("luong", "general", "lstm", True),
    ("luong", "scaled_dot", "gru", True),
    ("luong", "bahdanau", "gru", True),
]


@tensorflow_only
@pytest.mark.parametrize("style,attention,cell,input_feeding", XLA_CONFIGS)
def test_xla_train_step_matches_graph_mode(
    style, attention, cell, input_feeding, rng
):
    import tensorflow as tf

    model = build_seq2seq(
        30,
        30,
        embedding_dim=8,
        units=12,
        attention=attention,
        style=style,
        cell=cell,
        input_feeding=input_feeding,
    )
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )

    def loss_and_grads(source, target_in, target_out):
        with tf.GradientTape() as tape:
            logits = model((source, target_in), training=True)
            loss = loss_fn(target_out, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        return loss, [tf.convert_to_tensor(g) for g in grads]

    signature = [tf.TensorSpec((None, None), "int32")] * 3
    graph = tf.function(loss_and_grads, input_signature=signature)
    xla = tf.function(
        loss_and_grads, input_signature=signature, jit_compile=True
    )
    for target_length in (6, 3):
        batch = _data(rng, target_length=target_length)
        expected_loss, expected = graph(*batch)
        loss, grads = xla(*batch)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        for got, want in zip(grads, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@tensorflow_only
def test_fit_with_jit_compile_trains_as_without(rng):
    """`model.compile(jit_compile=True)`: fit on batches of two target
    lengths reaches the weights of graph-mode fit (and moves them)."""
    import tensorflow as tf

    batches = [_data(rng, target_length=n) for n in (6, 3, 6)]

    def dataset():
        return tf.data.Dataset.from_generator(
            lambda: (((s, t), o) for s, t, o in batches),
            output_signature=(
                (
                    tf.TensorSpec((None, None), "int32"),
                    tf.TensorSpec((None, None), "int32"),
                ),
                tf.TensorSpec((None, None), "int32"),
            ),
        )

    weights = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(7)
        model = build_seq2seq(
            30, 30, embedding_dim=8, units=12, style="luong", cell="gru"
        )
        initial = [to_numpy(v) for v in model.trainable_variables]
        # SGD: Adam's normalised steps would magnify rounding differences.
        compile_seq2seq(
            model,
            optimizer=keras.optimizers.SGD(0.5),
            jit_compile=jit_compile,
        )
        assert model.jit_compile is jit_compile
        history = model.fit(
            dataset().repeat(), steps_per_epoch=3, epochs=2, verbose=0
        )
        assert np.isfinite(history.history["loss"]).all()
        weights.append([to_numpy(v) for v in model.trainable_variables])
    moved = [
        np.abs(w - s).max() for w, s in zip(weights[0], initial, strict=True)
    ]
    assert max(moved) > 1e-2
    for got, want in zip(weights[1], weights[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
