"""Decoding with several models at once: an ensemble of seq2seq models that
share their vocabularies."""

from keras import ops

from keras_nmt.seq2seq.inference import Seq2SeqInference


class EnsembleInference(Seq2SeqInference):
    """Greedy, sampling and beam-search decoding of an ensemble.

    Every model encodes the source and steps on the same tokens; the
    ensemble's next-token distribution is the mean of the models'
    log-probabilities, `mean_m log_softmax(logits_m)` (the decoding loops
    renormalise it), as in OpenNMT-py, JoeyNMT and Marian. The attention
    returned per step is the mean of the models' attention. The models must
    share the source and target vocabularies (and so their sizes); they may
    differ in everything else (style, cell, attention, units). An ensemble
    of one model decodes exactly as that model.

    Args:
        models: a non-empty sequence of models from `build_seq2seq`.
        start_token, end_token, max_length, seed, jit_compile: as in
            `Seq2SeqInference`.

    Raises:
        ValueError: on an empty list or vocabulary sizes that differ.
    """

    def __init__(self, models, **kwargs):
        self.models = list(models)
        if not self.models:
            raise ValueError(
                "EnsembleInference needs at least one model; received none."
            )
        self.encoders = [m.get_layer("encoder") for m in self.models]
        self.decoders = [m.get_layer("decoder") for m in self.models]
        sizes = {
            (e.vocab_size, d.vocab_size)
            for e, d in zip(self.encoders, self.decoders, strict=True)
        }
        if len(sizes) != 1:
            raise ValueError(
                "EnsembleInference: the models' (source, target) vocabulary "
                f"sizes differ: {sorted(sizes)}. Ensemble models trained "
                "with the same vocabularies."
            )
        super().__init__(self.models[0], **kwargs)

    def _model_variables(self):
        return [v for model in self.models for v in model.variables]

    def encode(self, source_tokens):
        states, constants = [], []
        for encoder, decoder in zip(self.encoders, self.decoders, strict=True):
            outputs, mask, final = encoder(source_tokens, training=False)
            states.append(decoder.initial_state(final, mask))
            constants.append(decoder.constants(outputs, mask))
        return tuple(states), tuple(constants)

    def step(self, tokens, state, constants):
        log_probs, attentions, states = [], [], []
        for decoder, s, c in zip(self.decoders, state, constants, strict=True):
            logits, attention, new_state = decoder.step(tokens, s, c)
            log_probs.append(ops.log_softmax(ops.cast(logits, "float32")))
            attentions.append(ops.cast(attention, "float32"))
            states.append(new_state)
        count = len(self.decoders)
        return (
            ops.sum(ops.stack(log_probs), axis=0) / count,
            ops.sum(ops.stack(attentions), axis=0) / count,
            tuple(states),
        )
