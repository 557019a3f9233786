"""BahdanauMonotonicAttention and LuongMonotonicAttention.

Every number is checked against float64 NumPy: the parent layer's score
(`numpy_reference`), the score bias, the sigmoid (or the hard threshold) and
the paper's recurrence written as loops over queries and keys.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import BahdanauMonotonicAttention
from keras_nmt.layers import LuongMonotonicAttention
from tests.layers import numpy_reference as ref
from tests.layers.backend_utils import layer_gradients
from tests.layers.backend_utils import to_numpy

LAYERS = {
    "bahdanau": lambda **kw: BahdanauMonotonicAttention(units=5, **kw),
    "bahdanau_normalize": lambda **kw: BahdanauMonotonicAttention(
        units=5, normalize=True, **kw
    ),
    "luong_dot": lambda **kw: LuongMonotonicAttention(**kw),
    "luong_general": lambda **kw: LuongMonotonicAttention(
        score="general", use_scale=True, **kw
    ),
}
NAMES = list(LAYERS)


def make_layer(kind, **kwargs):
    return LAYERS[kind](**kwargs)


def _np(variable):
    return to_numpy(variable)


def perturb(layer, rng, bias=0.3):
    """Moves the bias (and g, b, scale) off their initial values."""
    layer.score_bias.assign(bias)
    if getattr(layer, "normalize", False):
        layer.g.assign(1.3)
        layer.b.assign(rng.normal(size=layer.units).astype("float32") * 0.5)
    if getattr(layer, "use_scale", False):
        layer.scale.assign(0.7)


# ---- the NumPy reference -----------------------------------------------


def step_alignment(p, previous):
    """alpha[j] = p[j] sum_{k <= j} previous[k] prod_{l=k}^{j-1} (1 - p[l])."""
    alpha = np.zeros_like(p)
    for b in range(p.shape[0]):
        for j in range(p.shape[1]):
            total = 0.0
            for k in range(j + 1):
                total += previous[b, k] * np.prod(1.0 - p[b, k:j])
            alpha[b, j] = p[b, j] * total
    return alpha


def energies(layer, query, key):
    """Score of the parent layer plus the score bias, float64."""
    if isinstance(layer, BahdanauAttention):
        extra = {}
        if layer.normalize:
            extra = {"g": _np(layer.g), "b": _np(layer.b)}
        scores = ref.bahdanau_scores(
            query,
            key,
            _np(layer.query_dense.kernel),
            _np(layer.key_dense.kernel),
            _np(layer.v),
            **extra,
        )
    else:
        general = layer.score_mode == "general"
        scores = ref.dot_scores(
            query,
            key,
            w=_np(layer.key_dense.kernel) if general else None,
            scale=_np(layer.scale) if layer.use_scale else None,
        )
    return scores + _np(layer.score_bias)


def reference(
    layer,
    query,
    value,
    key=None,
    value_mask=None,
    query_mask=None,
    training=False,
    previous=None,
):
    """`(context, alignments)` of the layer without noise, float64."""
    key = value if key is None else key
    query = np.asarray(query, np.float64)
    single_step = query.ndim == 2
    if single_step:
        query = query[:, None]
        if query_mask is not None:
            query_mask = np.asarray(query_mask)[:, None]
    batch, tq = query.shape[:2]
    tk = key.shape[1]
    e = energies(layer, query, key)
    if training and layer.mode != "hard":
        p = 1.0 / (1.0 + np.exp(-e))
    else:
        p = (e > 0).astype(np.float64)
    keys = np.ones((batch, tk), bool)
    if value_mask is not None:
        keys &= np.asarray(value_mask, bool)
    p = p * keys[:, None, :]
    if query_mask is None:
        query_mask = np.ones((batch, tq), bool)
    if previous is None:
        previous = np.zeros((batch, tk))
        previous[:, 0] = 1.0
    alignments = np.zeros((batch, tq, tk))
    for i in range(tq):
        alpha = step_alignment(p[:, i], previous)
        keep = np.asarray(query_mask, bool)[:, i, None]
        alignments[:, i] = np.where(keep, alpha, 0.0)
        previous = np.where(keep, alpha, previous)
    value = np.where(keys[..., None], np.asarray(value, np.float64), 0.0)
    context = alignments @ value
    if single_step:
        return context[:, 0], alignments[:, 0]
    return context, alignments


def random_inputs(rng, batch=3, tq=4, tk=6, dq=4, dk=4, dv=3):
    query = rng.normal(size=(batch, tq, dq)).astype("float32")
    key = rng.normal(size=(batch, tk, dk)).astype("float32")
    value = rng.normal(size=(batch, tk, dv)).astype("float32")
    value_mask = rng.random((batch, tk)) < 0.7
    value_mask[0] = [True, True, False, True, True, False]
    value_mask[1] = False  # nothing to attend to
    query_mask = np.ones((batch, tq), bool)
    query_mask[0, 1] = False  # in the middle: the next query goes on
    query_mask[2, -1] = False
    return query, key, value, value_mask, query_mask


def call(layer, query, value, **kwargs):
    context, alignments = layer(
        query, value, return_attention_scores=True, **kwargs
    )
    return to_numpy(context), to_numpy(alignments)


# ---- numbers -------------------------------------------------------------

SETTINGS = [
    pytest.param("parallel", True, id="parallel_training"),
    pytest.param("recursive", True, id="recursive_training"),
    pytest.param("hard", True, id="hard_training"),
    pytest.param("parallel", False, id="inference"),
]


@pytest.mark.parametrize("mode, training", SETTINGS)
@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy_reference_with_masks(name, mode, training, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer(name, mode=mode)
    layer(query, value, key=key)
    perturb(layer, rng)
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, alignments = call(
        layer, query, value, key=key, training=training, **masks
    )
    ref_context, ref_alignments = reference(
        layer, query, value, key=key, training=training, **masks
    )
    np.testing.assert_allclose(alignments, ref_alignments, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    if not training or mode == "hard":
        # Hard decisions: each alignment one-hot or all zero.
        assert set(np.unique(alignments)) <= {0.0, 1.0}
        assert np.all(alignments.sum(-1) <= 1.0)
        assert np.any(alignments == 1.0)


@pytest.mark.parametrize("training", [True, False])
def test_previous_alignment_and_single_step_match_numpy(training, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer("luong_general")
    layer(query, value, key=key)
    perturb(layer, rng, bias=0.1)
    previous = np.zeros((3, 6), "float32")
    previous[[0, 1, 2], [3, 0, 1]] = 1.0
    if training:
        previous[2] = [0.1, 0.2, 0.3, 0.0, 0.2, 0.1]
    for q, qm in ((query, query_mask), (query[:, 2], query_mask[:, 2])):
        kwargs = {"value_mask": value_mask, "query_mask": qm}
        got = call(
            layer,
            q,
            value,
            key=key,
            training=training,
            previous_alignment=previous,
            **kwargs,
        )
        expected = reference(
            layer,
            q,
            value,
            key=key,
            training=training,
            previous=previous,
            **kwargs,
        )
        np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
        np.testing.assert_allclose(got[0], expected[0], atol=1e-5)


def test_inference_path_by_hand():
    # Luong dot with keys e_0..e_3, bias 0: energy[i, j] = query[i, j], so a
    # query says directly where the alignment may stop (> 0).
    #   from key 0 (initial), q0 = (-1,  1,  1, -1): stops at key 1
    #   from key 1,           q1 = ( 1,  1, -1,  1): stays at key 1
    #   from key 1,           q2 = ( 1, -1, -1,  1): moves on to key 3
    #   from key 3,           q3 = ( 1,  1,  1, -1): no stop: off the end
    #   from nowhere,         q4 = ( 1,  1,  1,  1): stays nowhere
    # Values (j + 1, 10 (j + 1)) at key j.
    query = np.array(
        [
            [
                [-1, 1, 1, -1],
                [1, 1, -1, 1],
                [1, -1, -1, 1],
                [1, 1, 1, -1],
                [1, 1, 1, 1],
            ]
        ],
        "float32",
    )
    key = np.eye(4, dtype="float32")[None]
    value = np.array([[[1, 10], [2, 20], [3, 30], [4, 40]]], "float32")
    expected_alignments = np.zeros((1, 5, 4))
    expected_alignments[0, [0, 1, 2], [1, 1, 3]] = 1.0
    expected_context = [[[2, 20], [2, 20], [4, 40], [0, 0], [0, 0]]]
    layer = LuongMonotonicAttention(sigmoid_noise=2.0, seed=1)
    for training in (None, False):
        context, alignments = call(
            layer, query, value, key=key, training=training
        )
        np.testing.assert_array_equal(alignments, expected_alignments)
        np.testing.assert_array_equal(context, expected_context)
    # Nearly saturated probabilities (1 - p = 6e-6; the parallel form needs
    # prod (1 - p) above 1e-10): the expected alignment of training is
    # nearly the same walk, in every mode.
    for mode in ("parallel", "recursive", "hard"):
        layer = LuongMonotonicAttention(mode=mode)
        context, alignments = call(
            layer, query * 12, value, key=key, training=True
        )
        np.testing.assert_allclose(alignments, expected_alignments, atol=1e-4)
        np.testing.assert_allclose(context, expected_context, atol=1e-3)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", ["bahdanau", "luong_general"])
def test_teacher_forcing_equals_a_loop_of_single_steps(name, training, rng):
    """A rank-3 call equals a decoder that attends one step at a time and
    carries the alignment (keeping it over masked steps, as a Keras RNN
    keeps its state)."""
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb(layer, rng, bias=0.2)
    masks = {"value_mask": value_mask}
    context, alignments = call(
        layer,
        query,
        value,
        key=key,
        query_mask=query_mask,
        training=training,
        **masks,
    )
    projected = layer.project_keys(key)
    state = layer.initial_alignment(3, 6)
    for i in range(query.shape[1]):
        step_context, step_alignment = layer.attend(
            query[:, i],
            value,
            projected,
            training=training,
            previous_alignment=state,
            **masks,
        )
        assert keras.backend.standardize_dtype(step_alignment.dtype) == (
            "float32"
        )
        keep = query_mask[:, i]
        np.testing.assert_allclose(
            alignments[keep, i], to_numpy(step_alignment)[keep], atol=1e-6
        )
        np.testing.assert_allclose(
            context[keep, i], to_numpy(step_context)[keep], atol=1e-6
        )
        np.testing.assert_array_equal(alignments[~keep, i], 0.0)
        np.testing.assert_array_equal(context[~keep, i], 0.0)
        # The layer's own single-step call agrees with `attend`.
        single = call(
            layer,
            query[:, i],
            value,
            key=key,
            training=training,
            previous_alignment=state,
            **masks,
        )
        np.testing.assert_allclose(single[0], to_numpy(step_context), atol=1e-6)
        np.testing.assert_allclose(
            single[1], to_numpy(step_alignment), atol=1e-6
        )
        state = ops.where(keep[:, None], step_alignment, state)


def test_attend_defaults_to_the_initial_alignment(rng):
    query, key, value, _, _ = random_inputs(rng)
    layer = make_layer("bahdanau")
    layer(query, value, key=key)
    projected = layer.project_keys(key)
    initial = layer.initial_alignment(3, 6)
    np.testing.assert_array_equal(to_numpy(initial), np.eye(6)[[0, 0, 0]])
    assert keras.backend.standardize_dtype(initial.dtype) == "float32"
    for training in (True, False):
        default = layer.attend(query, value, projected, training=training)
        given = layer.attend(
            query,
            value,
            projected,
            training=training,
            previous_alignment=initial,
        )
        for a, b in zip(default, given, strict=True):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert BahdanauMonotonicAttention.requires_previous_alignment is True
    assert LuongMonotonicAttention.requires_previous_alignment is True


# ---- masks ---------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", ["bahdanau", "luong_dot"])
def test_a_masked_key_is_passed_over_as_if_deleted(name, training, rng):
    """Padding anywhere (even at key 0) acts as if the key were not there:
    alignment exactly 0 on it, the rest as without it."""
    query, key, value, _, _ = random_inputs(rng)
    query, key, value = query[:1], key[:1], value[:1]
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb(layer, rng, bias=0.5)
    keep = np.array([False, True, False, True, True, False])
    context, alignments = call(
        layer, query, value, key=key, value_mask=keep[None], training=training
    )
    short = call(
        layer, query, value[:, keep], key=key[:, keep], training=training
    )
    np.testing.assert_array_equal(alignments[..., ~keep], 0.0)
    np.testing.assert_allclose(alignments[..., keep], short[1], atol=1e-6)
    np.testing.assert_allclose(context, short[0], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_key_mask_and_value_lengths_equal_value_mask(name, rng):
    query, key, value, _, _ = random_inputs(rng)
    lengths = np.array([4, 0, 6], "int32")
    mask = np.arange(6)[None] < lengths[:, None]
    layer = make_layer(name)
    expected = call(
        layer, query, value, key=key, value_mask=mask, training=True
    )
    for kwargs in ({"key_mask": mask}, {"value_lengths": lengths}):
        got = call(layer, query, value, key=key, training=True, **kwargs)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    combined = call(
        layer,
        query,
        value,
        key=key,
        training=True,
        value_mask=np.broadcast_to(np.arange(6) != 1, (3, 6)),
        value_lengths=lengths,
    )
    np.testing.assert_array_equal(combined[1][..., 1], 0.0)
    np.testing.assert_array_equal(combined[1][0, :, 4:], 0.0)
    np.testing.assert_array_equal(combined[1][1], 0.0)
    assert np.any(combined[1][2, :, 4:] != 0.0)


@pytest.mark.parametrize("mode, training", SETTINGS)
def test_non_finite_masked_inputs_reach_neither_output_nor_gradients(
    mode, training, rng
):
    query, key, value, value_mask, _ = random_inputs(rng)
    value[~value_mask] = np.nan
    key[~value_mask] = np.inf
    layer = make_layer("bahdanau", mode=mode)
    context, alignments = call(
        layer,
        query,
        value,
        key=key,
        value_mask=value_mask,
        training=training,
    )
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(alignments))
    np.testing.assert_array_equal(
        alignments[np.broadcast_to(~value_mask[:, None], alignments.shape)], 0
    )
    # Sample 1 has no key: zero alignments and context.
    np.testing.assert_array_equal(alignments[1], 0.0)
    np.testing.assert_array_equal(context[1], 0.0)

    coef = ops.convert_to_tensor(rng.normal(size=context.shape), "float32")

    def loss_fn(outputs):
        return ops.sum(outputs[0] * coef) + ops.sum(outputs[1])

    loss, input_grads, weight_grads = layer_gradients(
        layer,
        [query, value, key],
        loss_fn,
        value_mask=value_mask,
        training=training,
        return_attention_scores=True,
    )
    assert np.isfinite(loss)
    for grad in (*input_grads, *weight_grads):
        assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(input_grads[1][~value_mask], 0.0)
    np.testing.assert_array_equal(input_grads[2][~value_mask], 0.0)


# ---- training: gradients, noise, dropout ---------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_parallel_and_recursive_give_the_same_gradients(name, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 3)), "float32")
    w_coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 6)), "float32")

    def loss_fn(outputs):
        return ops.sum(outputs[0] * coef) + ops.sum(outputs[1] * w_coef)

    results = []
    for mode in ("parallel", "recursive"):
        keras.utils.set_random_seed(7)  # the same initial weights
        layer = make_layer(name, mode=mode)
        layer(query, value, key=key)
        perturb(layer, np.random.default_rng(3))
        results.append(
            layer_gradients(
                layer,
                [query, value, key],
                loss_fn,
                value_mask=value_mask,
                query_mask=query_mask,
                training=True,
                return_attention_scores=True,
            )
        )
    (loss_p, inputs_p, weights_p), (loss_r, inputs_r, weights_r) = results
    assert loss_p == pytest.approx(loss_r, abs=1e-5)
    for a, b in zip(
        [*inputs_p, *weights_p], [*inputs_r, *weights_r], strict=True
    ):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The score learns: the query and every weight get a gradient.
    assert np.any(inputs_p[0] != 0.0)
    assert all(np.any(g != 0.0) for g in weights_p)


def test_hard_decisions_pass_no_gradient_to_the_score(rng):
    query, key, value, _, _ = random_inputs(rng)
    for mode, training in (("hard", True), ("parallel", False)):
        layer = make_layer("luong_general", mode=mode)
        layer(query, value, key=key)

        def loss_fn(outputs):
            return ops.sum(outputs[0]) + ops.sum(outputs[1])

        loss, (d_query, d_value, d_key), _ = layer_gradients(
            layer,
            [query, value, key],
            loss_fn,
            training=training,
            return_attention_scores=True,
        )
        assert np.isfinite(loss)
        np.testing.assert_array_equal(d_query, 0.0)
        np.testing.assert_array_equal(d_key, 0.0)
        assert np.any(d_value != 0.0)


def test_sigmoid_noise_only_in_training(rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    noisy = make_layer("bahdanau", sigmoid_noise=1.0, seed=11)
    quiet = make_layer("bahdanau")
    noisy(query, value, key=key)
    quiet(query, value, key=key)
    quiet.set_weights(noisy.get_weights())
    kwargs = {"key": key, "value_mask": value_mask}
    # Inference: deterministic and noise-free.
    first = call(noisy, query, value, **kwargs)
    second = call(noisy, query, value, **kwargs)
    reference_call = call(quiet, query, value, **kwargs)
    for a, b, c in zip(first, second, reference_call, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # Training: a fresh draw at every call, the same draws for the same seed.
    draws = [call(noisy, query, value, training=True, **kwargs) for _ in "ab"]
    clean = call(quiet, query, value, training=True, **kwargs)
    assert not np.allclose(draws[0][1], draws[1][1])
    assert not np.allclose(draws[0][1], clean[1])
    twin = make_layer("bahdanau", sigmoid_noise=1.0, seed=11)
    twin(query, value, key=key)
    twin.set_weights(noisy.get_weights())
    np.testing.assert_array_equal(
        call(twin, query, value, training=True, **kwargs)[1], draws[0][1]
    )
    # Still alignments: non-negative, at most 1, exactly 0 on masked keys.
    alignments = draws[0][1]
    assert np.all(alignments >= 0.0)
    assert np.all(alignments.sum(-1) <= 1.0 + 1e-6)
    np.testing.assert_array_equal(
        alignments[np.broadcast_to(~value_mask[:, None], alignments.shape)], 0
    )


def test_noise_drawn_ahead_equals_noise_drawn_by_attend(rng):
    """What a decoder with a compiled step loop does (on JAX a seed
    generator cannot advance inside `ops.scan`)."""
    query, key, value, value_mask, _ = random_inputs(rng)
    layers = [
        make_layer("luong_general", sigmoid_noise=1.5, seed=5) for _ in "ab"
    ]
    for layer in layers:
        layer(query, value, key=key)
    layers[1].set_weights(layers[0].get_weights())
    ahead, inside = layers
    noise = ahead.noise((3, 4, 6), training=True)
    assert ahead.noise((3, 4, 6), training=False) is None
    assert make_layer("luong_dot").noise((3, 4, 6), training=True) is None
    projected = ahead.project_keys(key)
    options = {"value_mask": value_mask, "training": True}
    context, alignments = ahead.attend(
        query, value, projected, noise=noise, **options
    )
    expected = inside.attend(query, value, projected, **options)
    np.testing.assert_array_equal(to_numpy(context), to_numpy(expected[0]))
    np.testing.assert_array_equal(to_numpy(alignments), to_numpy(expected[1]))
    # One step at a time, each with its step's noise: the same.
    state = ahead.initial_alignment(3, 6)
    for i in range(4):
        step_context, state = ahead.attend(
            query[:, i],
            value,
            projected,
            previous_alignment=state,
            noise=noise[:, i],
            **options,
        )
        np.testing.assert_allclose(
            to_numpy(state), to_numpy(alignments)[:, i], atol=1e-6
        )
    # The noise is N(0, sigmoid_noise).
    sample = to_numpy(ahead.noise((400, 100), training=True))
    assert abs(sample.mean()) < 0.03
    assert sample.std() == pytest.approx(1.5, rel=0.03)


def test_dropout_only_in_training_and_alignments_stay_undropped(rng):
    query, key, value, _, _ = random_inputs(rng)
    layer = make_layer("luong_dot", dropout=0.5, sigmoid_noise=0.5, seed=2)
    quiet = make_layer("luong_dot")
    layer(query, value, key=key)
    quiet(query, value, key=key)
    quiet.set_weights(layer.get_weights())
    np.testing.assert_array_equal(
        call(layer, query, value, key=key)[0],
        call(quiet, query, value, key=key)[0],
    )
    context, alignments = call(layer, query, value, key=key, training=True)
    # The context mixes the dropped alignment, returned undropped.
    assert not np.allclose(context, alignments @ value)
    # Dropout drawn ahead (for a decoder's compiled loop) is used as given.
    projected = layer.project_keys(key)
    keep = np.ones((3, 6), "float32")
    keep[:, 0] = 0.0
    step_context, step_alignment = layer.attend(
        query[:, 0],
        value,
        projected,
        training=False,
        dropout_mask=keep,
    )
    expected = np.einsum(
        "bk,bkd->bd", to_numpy(step_alignment) * keep, value.astype("float64")
    )
    np.testing.assert_allclose(to_numpy(step_context), expected, atol=1e-6)


# ---- serialisation, saving, precision, compilation ----------------------


@pytest.mark.parametrize("name", NAMES)
def test_get_config_round_trip(name, rng):
    layer = make_layer(
        name,
        sigmoid_noise=0.5,
        score_bias_init=-2.0,
        mode="recursive",
        seed=3,
        name="att",
    )
    config = layer.get_config()
    assert config["sigmoid_noise"] == 0.5
    assert config["score_bias_init"] == -2.0
    assert config["mode"] == "recursive" and config["seed"] == 3
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config

    query, key, value, value_mask, _ = random_inputs(rng)
    layer(query, value, key=key)
    np.testing.assert_array_equal(_np(layer.score_bias), -2.0)
    clone(query, value, key=key)
    perturb(layer, rng)
    clone.set_weights(layer.get_weights())
    for training in (True, False):
        expected = call(layer, query, value, key=key, training=training)
        got = call(clone, query, value, key=key, training=training)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


QUERY_TOKENS = np.array([[3, 1, 4, 0], [2, 7, 0, 0], [0, 0, 0, 0]], "int32")
VALUE_TOKENS = np.array(
    [[5, 9, 2, 6, 0], [0, 0, 0, 0, 0], [0, 8, 3, 0, 0]], "int32"
)


def _token_model(layer):
    query_tokens = keras.Input((None,), dtype="int32", name="query_tokens")
    value_tokens = keras.Input((None,), dtype="int32", name="value_tokens")
    query_embedding = keras.layers.Embedding(
        10, 4, mask_zero=True, name="query_embedding"
    )
    value_embedding = keras.layers.Embedding(
        10, 4, mask_zero=True, name="value_embedding"
    )
    context, alignments = layer(
        query_embedding(query_tokens),
        value_embedding(value_tokens),
        return_attention_scores=True,
    )
    return keras.Model([query_tokens, value_tokens], [context, alignments])


@pytest.mark.parametrize("name", ["bahdanau_normalize", "luong_general"])
def test_embedding_masks_and_saved_keras_file(name, tmp_path, rng):
    layer = make_layer(
        name, sigmoid_noise=1.0, score_bias_init=0.5, seed=4, name="attention"
    )
    model = _token_model(layer)
    perturb(layer, rng, bias=0.4)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    context, alignments = to_numpy(model.predict(inputs, verbose=0))
    # The Embedding masks are the explicit masks.
    query = to_numpy(model.get_layer("query_embedding")(QUERY_TOKENS))
    value = to_numpy(model.get_layer("value_embedding")(VALUE_TOKENS))
    explicit = call(
        layer,
        query.astype("float32"),
        value.astype("float32"),
        query_mask=QUERY_TOKENS != 0,
        value_mask=VALUE_TOKENS != 0,
    )
    np.testing.assert_allclose(context, explicit[0], atol=1e-6)
    np.testing.assert_array_equal(alignments, explicit[1])
    np.testing.assert_array_equal(context[QUERY_TOKENS == 0], 0.0)
    padded = np.broadcast_to(VALUE_TOKENS[:, None] == 0, alignments.shape)
    np.testing.assert_array_equal(alignments[padded], 0.0)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    revived = loaded.get_layer("attention")
    assert type(revived) is type(layer)
    assert revived.get_config() == layer.get_config()
    np.testing.assert_array_equal(_np(revived.score_bias), np.float32(0.4))
    got = to_numpy(loaded.predict(inputs, verbose=0))
    for a, b in zip(got, (context, alignments), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["bahdanau", "luong_general"])
def test_mixed_bfloat16_keeps_the_recurrence_in_float32(name, rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    # Inputs exact in bfloat16.
    query, key, value = (np.round(x * 4) / 4 for x in (query, key, value))
    full = make_layer(name)
    full(query, value, key=key)
    perturb(full, rng, bias=0.25)
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = make_layer(name)
    mixed(query, value, key=key)
    mixed.set_weights(full.get_weights())
    assert keras.backend.standardize_dtype(mixed.score_bias.dtype) == (
        "float32"
    )
    context, alignments = mixed(
        query,
        value,
        key=key,
        value_mask=value_mask,
        training=True,
        return_attention_scores=True,
    )
    for tensor in (context, alignments):
        assert keras.backend.standardize_dtype(tensor.dtype) == "bfloat16"
    _, step_alignment = mixed.attend(
        query[:, 0], value, mixed.project_keys(key), training=True
    )
    assert keras.backend.standardize_dtype(step_alignment.dtype) == "float32"
    expected = call(
        full, query, value, key=key, value_mask=value_mask, training=True
    )
    # bfloat16 has 8 bits of mantissa: ~0.4 % per rounding.
    np.testing.assert_allclose(to_numpy(alignments), expected[1], atol=3e-2)
    np.testing.assert_allclose(to_numpy(context), expected[0], atol=6e-2)


@pytest.mark.parametrize("mode", ["parallel", "recursive"])
def test_jit_compiled_predict_and_train_step(mode, rng):
    if keras.backend.backend() == "torch":
        pytest.skip("torch.compile takes minutes on CPU")
    layer = make_layer("bahdanau", mode=mode, sigmoid_noise=0.5, seed=1)
    model = _token_model(layer)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    model.compile(jit_compile=False)
    eager = to_numpy(model.predict(inputs, verbose=0))
    model.compile(jit_compile=True)
    compiled = to_numpy(model.predict(inputs, verbose=0))
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    # A compiled training step: soft alignments with noise, finite loss.
    query_tokens = keras.Input((None,), dtype="int32")
    value_tokens = keras.Input((None,), dtype="int32")
    query = keras.layers.Embedding(12, 4, mask_zero=True)(query_tokens)
    value = keras.layers.Embedding(12, 4, mask_zero=True)(value_tokens)
    attention = make_layer("luong_general", mode=mode, sigmoid_noise=1.0)
    logits = keras.layers.Dense(12)(attention(query, value))
    trainer = keras.Model([query_tokens, value_tokens], logits)
    trainer.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    query_x = rng.integers(1, 12, size=(16, 5)).astype("int32")
    value_x = rng.integers(1, 12, size=(16, 6)).astype("int32")
    value_x[:, 4:] = 0
    value_x[0] = 0  # a sample with no keys
    target = value_x[:, :5]
    bias_before = _np(attention.score_bias)
    history = trainer.fit(
        [query_x, value_x], target, epochs=3, batch_size=8, verbose=0
    )
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert _np(attention.score_bias) != bias_before


# ---- shapes and errors ---------------------------------------------------


def test_functional_model_with_a_previous_alignment_input(rng):
    query = keras.Input((4,))
    value = keras.Input((6, 3))
    previous = keras.Input((6,))
    layer = make_layer("bahdanau")
    context, alignment = layer(
        query, value, previous_alignment=previous, return_attention_scores=True
    )
    assert tuple(context.shape) == (None, 3)
    assert tuple(alignment.shape) == (None, 6)
    model = keras.Model([query, value, previous], [context, alignment])
    q = rng.normal(size=(2, 4)).astype("float32")
    v = rng.normal(size=(2, 6, 3)).astype("float32")
    start = np.eye(6, dtype="float32")[[2, 4]]
    got = to_numpy(model.predict([q, v, start], verbose=0))
    expected = reference(layer, q, v, previous=start)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    assert layer.compute_output_shape((2, 5, 4), (2, 6, 3)) == (2, 5, 3)


@pytest.mark.parametrize("name", ["bahdanau", "luong_dot"])
def test_causal_mask_is_refused(name, rng):
    query, key, value, _, _ = random_inputs(rng)
    layer = make_layer(name, name="att")
    message = (
        r"layer 'att' does not take `use_causal_mask=True`: monotonic "
        r"alignments already move left to right.*Received "
        r"use_causal_mask=True; leave it False"
    )
    with pytest.raises(ValueError, match=message):
        layer(query, value, key=key, use_causal_mask=True)
    with pytest.raises(ValueError, match=message):
        layer(keras.Input((4, 4)), keras.Input((6, 4)), use_causal_mask=True)
    layer(query, value, key=key)
    with pytest.raises(ValueError, match=message):
        layer.attend(query, value, key, use_causal_mask=True)


def test_previous_alignment_of_the_wrong_shape_is_refused(rng):
    query, key, value, _, _ = random_inputs(rng)
    layer = make_layer("luong_dot", name="att")
    message = (
        r"LuongMonotonicAttention layer 'att': `previous_alignment` must "
        r"have shape \(3, 6\).*Received previous_alignment shape "
        r"\(3, 5\)\. Pass the alignment the previous step returned, "
        r"`initial_alignment\(batch_size, key_length\)`, or None\."
    )
    with pytest.raises(ValueError, match=message):
        layer(query, value, key=key, previous_alignment=np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"Received previous_alignment shape"):
        layer(query, value, key=key, previous_alignment=np.ones((3, 6, 1)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "soft"}, r"`mode` must be one of \('parallel', 'recursive'"),
        ({"sigmoid_noise": -1.0}, r"`sigmoid_noise` must be a finite float"),
        ({"sigmoid_noise": "1"}, r"Received: sigmoid_noise='1'\."),
        (
            {"score_bias_init": float("nan")},
            r"`score_bias_init` must be a finite float",
        ),
        (
            {"probability_fn": "sparsemax"},
            r"take the place of `probability_fn`\. Received: "
            r"probability_fn='sparsemax'",
        ),
    ],
)
@pytest.mark.parametrize(
    "cls", [BahdanauMonotonicAttention, LuongMonotonicAttention]
)
def test_bad_arguments_are_refused(cls, kwargs, message):
    args = (4,) if cls is BahdanauMonotonicAttention else ()
    with pytest.raises(ValueError, match=rf"{cls.__name__}: .*{message}"):
        cls(*args, **kwargs)


def test_coverage_is_refused():
    with pytest.raises(
        ValueError,
        match=r"BahdanauMonotonicAttention: the alignment never returns to a "
        r"key it has passed, so it takes no coverage term\. Received: "
        r"use_coverage=True\.",
    ):
        BahdanauMonotonicAttention(4, use_coverage=True)


def test_value_lengths_must_be_an_integer_vector(rng):
    query, key, value, _, _ = random_inputs(rng)
    layer = make_layer("luong_dot", name="att")
    with pytest.raises(ValueError, match=r"`value_lengths` must have shape"):
        layer(query, value, key=key, value_lengths=np.ones((3, 1), "int32"))
    with pytest.raises(ValueError, match=r"`value_lengths` must be integers"):
        layer(query, value, key=key, value_lengths=np.ones((3,), "float32"))
