"""The named choices of the encoder-decoder and the checks of its options,
in one place.

Plain Python (no Keras import), so the command line can offer and check them
without loading TensorFlow.
"""

ATTENTIONS = ("bahdanau", "dot", "general", "scaled_dot")
STYLES = ("bahdanau", "luong")
CELLS = ("lstm", "gru")
# The Luong-style attentional vector: tanh(W_c [c; h]) (Luong et al.,
# 2015, eq. 5) or LayerNorm(h + W_c c) (the residual form).
ATTENTIONALS = ("tanh", "residual")


def check_choice(owner: str, name: str, value, choices) -> None:
    """Raise `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"{owner}: `{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}."
        )


def is_monotonic(attention):
    """Whether `attention` needs the previous step's alignment (monotonic
    attention: `requires_previous_alignment` on the layer class)."""
    return bool(getattr(attention, "requires_previous_alignment", False))


def check_decoder_options(
    style,
    input_feeding,
    extra_attention,
    attention_layer_size,
    output_attention,
    layers,
    coverage,
    coverage_loss_weight,
    scheduled_sampling,
    readout_units=None,
    attentional="tanh",
):
    """Raise `ValueError` for option values the decoder cannot honour."""
    check_choice("AttentionDecoder", "attentional", attentional, ATTENTIONALS)
    if attentional == "residual" and attention_layer_size is not None:
        raise ValueError(
            "AttentionDecoder: `attentional='residual'` adds the projected "
            "context to the RNN output, so the attentional vector is `units` "
            f"wide. Received: attention_layer_size={attention_layer_size!r}. "
            "Leave attention_layer_size out or use attentional='tanh'."
        )
    luong_only = {
        "input_feeding=True": input_feeding,
        f"attention_layer_size={attention_layer_size!r}": (
            attention_layer_size is not None
        ),
        "output_attention=False": not output_attention,
        f"attentional={attentional!r}": attentional != "tanh",
    }
    for option, given in luong_only.items():
        if given and style != "luong":
            raise ValueError(
                f"AttentionDecoder: `{option}` is an option of the Luong "
                "style (the attentional vector h~ = tanh(W_c [c; h]) that the "
                "Bahdanau style does not have). Use style='luong' or leave "
                "it out."
            )
    if not isinstance(extra_attention, (tuple, list)):
        raise ValueError(
            "AttentionDecoder: `extra_attention` must be a tuple of attention "
            "names or layers, the mechanisms that attend alongside "
            f"`attention`. Received: extra_attention={extra_attention!r}. "
            "For one, pass a one-element tuple, e.g. ('general',)."
        )
    if attention_layer_size is not None and (
        not isinstance(attention_layer_size, int)
        or isinstance(attention_layer_size, bool)
        or attention_layer_size < 1
    ):
        raise ValueError(
            "AttentionDecoder: `attention_layer_size` must be a positive "
            "integer (the width of the attentional vector) or None (units). "
            f"Received: attention_layer_size={attention_layer_size!r}."
        )
    if not output_attention and not input_feeding:
        raise ValueError(
            "AttentionDecoder: with `output_attention=False` the output layer "
            "reads the RNN output, and without input feeding the attention "
            "would never reach the logits. Use input_feeding=True or "
            "output_attention=True."
        )
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise ValueError(
            "AttentionDecoder: `layers` must be a positive integer, the "
            f"number of stacked RNN layers. Received: layers={layers!r}."
        )
    if not 0.0 <= float(coverage_loss_weight) < float("inf"):
        raise ValueError(
            "AttentionDecoder: `coverage_loss_weight` must be a float >= 0. "
            f"Received: coverage_loss_weight={coverage_loss_weight!r}."
        )
    if coverage_loss_weight > 0 and not coverage:
        raise ValueError(
            "AttentionDecoder: `coverage_loss_weight` > 0 needs "
            "`coverage=True` (the loss compares the attention with the "
            "coverage the decoder carries)."
        )
    if not 0.0 <= float(scheduled_sampling) <= 1.0:
        raise ValueError(
            "AttentionDecoder: `scheduled_sampling` must be a probability in "
            f"[0, 1]. Received: scheduled_sampling={scheduled_sampling!r}."
        )
    check_readout_units(style, readout_units)


def check_readout_units(style, readout_units):
    """`readout_units`: None, or a positive int with the Bahdanau style."""
    if readout_units is None:
        return
    if (
        not isinstance(readout_units, int)
        or isinstance(readout_units, bool)
        or readout_units < 1
    ):
        raise ValueError(
            "AttentionDecoder: `readout_units` must be a positive integer "
            "(the number of maxout units of the deep output, e.g. 256) or "
            f"None (no deep output). Received: readout_units={readout_units!r}."
        )
    if style != "bahdanau":
        raise ValueError(
            f"AttentionDecoder: `readout_units={readout_units!r}` is an option "
            "of the Bahdanau style (the deep-output maxout readout of "
            "Bahdanau et al., 2014). The Luong style already has its "
            "attentional layer tanh(W_c [c; h]) before the output: size it "
            "with attention_layer_size, or use style='bahdanau'."
        )


def check_encoder_layers(layers):
    """`layers` of the encoder: a positive int."""
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise ValueError(
            "Encoder: `layers` (build_seq2seq's `encoder_layers`) must be a "
            "positive integer, the number of stacked bidirectional RNN "
            f"layers. Received: {layers!r}."
        )


def check_coverage_attention(coverage, attention, extra_attention):
    """Coverage is carried for `attention`, a (non-monotonic) layer with a
    coverage term (`BahdanauAttention(..., use_coverage=True)`)."""
    covered = getattr(attention, "use_coverage", False) is True
    if coverage and (not covered or is_monotonic(attention)):
        raise ValueError(
            "AttentionDecoder: `coverage=True` needs an attention that scores "
            "with the coverage: attention='bahdanau' or "
            "BahdanauAttention(units, use_coverage=True). Received: "
            f"attention={attention.__class__.__name__} (use_coverage="
            f"{getattr(attention, 'use_coverage', None)})."
        )
    if not coverage and covered:
        raise ValueError(
            "AttentionDecoder: the attention has a coverage term "
            "(use_coverage=True), but the decoder carries no coverage: it "
            "would always be zero. Pass coverage=True."
        )
    for extra in extra_attention:
        if getattr(extra, "use_coverage", False):
            raise ValueError(
                "AttentionDecoder: the coverage is carried for `attention` "
                f"only; `extra_attention` layer '{extra.name}' has "
                "use_coverage=True. Create it without the coverage term."
            )
