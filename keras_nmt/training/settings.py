"""`TrainingSettings`: every setting of a training run, in one place.

The Python function (`train_translator`), the `keras-nmt train` flags, the
resume check, the run's `training.json` and the demo all derive from this
one frozen dataclass: each field holds its default, its help line and its
check. Plain Python: no Keras, no TensorFlow.
"""

from __future__ import annotations

import dataclasses

from keras_nmt.options import Options
from keras_nmt.options import choice
from keras_nmt.options import flag
from keras_nmt.options import integer
from keras_nmt.options import number
from keras_nmt.options import option
from keras_nmt.seq2seq.options import ATTENTIONALS
from keras_nmt.seq2seq.options import ATTENTIONS
from keras_nmt.seq2seq.options import CELLS
from keras_nmt.seq2seq.options import STYLES

# The values that runs of older versions, whose training.json does not
# record these fields, trained with (their defaults changed since).
BEFORE_RECORDED = {
    "tokenizer": "word",
    "label_smoothing": 0.0,
    "attentional": "tanh",
}
# Fields a resumed run may change (the others must equal the run's).
MAY_CHANGE_ON_RESUME = "may change on resume"
SELECT_BY = ("bleu", "loss")
TOKENIZERS = ("word", "subword")


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Options):
    """The model and training settings of `train_translator`.

    Example:

    >>> settings = TrainingSettings(style="luong", cell="gru")
    >>> settings.replace(epochs=3).epochs
    3
    """

    # The model.
    attention: str = option("bahdanau", "attention score", choice(ATTENTIONS))
    style: str = option("luong", "decoder style", choice(STYLES))
    cell: str = option("gru", "RNN cell", choice(CELLS))
    input_feeding: bool = option(
        False,
        "Luong style: feed the attentional vector to the next step",
        flag(),
    )
    attentional: str = option(
        "residual",
        "Luong style: the attentional vector that the logits read, "
        "LayerNorm(h + W c) (residual: learns about twice as fast early "
        "on) or Luong's tanh(W [c; h]) (tanh); the Bahdanau style has none",
        choice(ATTENTIONALS),
    )
    embedding_dim: int = option(128, "token embedding size", integer())
    units: int = option(
        256,
        "decoder state size (even: the encoder has units/2 per direction)",
        integer(minimum=2),
    )
    dropout: float = option(0.2, "dropout rate", number(below=1.0))
    encoder_layers: int = option(
        1, "stacked bidirectional encoder RNN layers", integer()
    )
    layers: int = option(1, "stacked decoder RNN layers", integer())
    readout_units: int | None = option(
        None,
        "Bahdanau style: the deep output, a maxout readout of N units over "
        "[s_t; c_t; E y_t-1] before the vocabulary projection (default: "
        "none, [s_t; c_t] projected directly)",
        integer(optional=True),
        metavar="N",
    )
    # The data.
    tokenizer: str = option(
        "subword",
        "word: lowercased words and punctuation; subword: SentencePiece "
        "pieces learned from the training pairs, case kept",
        choice(TOKENIZERS),
    )
    max_length: int = option(
        48,
        "longest token sequence (words or pieces), [START] and [END] "
        "included; also the most tokens generated",
        integer(minimum=3),
    )
    max_vocab: int | None = option(
        None,
        "vocabulary size per language (default: every word; subword: "
        "8000, or fewer if the data has fewer pieces)",
        integer(minimum=4, optional=True),
        metavar="N",
    )
    # The optimisation.
    epochs: int = option(
        30,
        "most training epochs in all (also when resuming); --patience "
        "usually stops earlier",
        integer(),
        resume=MAY_CHANGE_ON_RESUME,
    )
    batch_size: int = option(
        64, "pairs per batch (over all devices)", integer()
    )
    learning_rate: float = option(
        1e-3, "Adam learning rate", number(0.0, above=True)
    )
    label_smoothing: float = option(
        0.1,
        "label smoothing of the training loss (Szegedy et al., 2016): this "
        "share of each target's probability is spread over the vocabulary",
        number(below=1.0),
    )
    seed: int = option(
        0, "seed of the weights, the data order and dropout", integer(0)
    )
    # Model selection and stopping (with validation pairs).
    select_by: str = option(
        "bleu",
        "keep the epoch of the best validation BLEU (greedy, cased, on "
        "--validation-sentences) or of the lowest validation loss",
        choice(SELECT_BY),
        resume=MAY_CHANGE_ON_RESUME,
    )
    validation_sentences: int = option(
        1000,
        "validation source sentences decoded for the BLEU of each epoch "
        "(a fixed, seeded subset; 0: no BLEU)",
        integer(0),
        metavar="N",
    )
    patience: int = option(
        4,
        "stop after N epochs without a better --select-by value (0: "
        "never; train all --epochs)",
        integer(0),
        metavar="N",
        resume=MAY_CHANGE_ON_RESUME,
    )
    lr_patience: int = option(
        2,
        "halve the learning rate after N epochs without a better "
        "--select-by value (0: never)",
        integer(0),
        metavar="N",
        resume=MAY_CHANGE_ON_RESUME,
    )
    max_minutes: float | None = option(
        None,
        "time budget: stop once it is spent (at the end of the batch that "
        "leaves just enough time to score the epoch) and keep the best "
        "model; default: no limit",
        number(0.0, above=True, optional=True),
        metavar="M",
        resume=MAY_CHANGE_ON_RESUME,
    )
    mixed_precision: bool = option(
        False,
        "16-bit computations with float32 weights: mixed_bfloat16 "
        "(mixed_float16 on a GPU)",
        flag(),
    )
    jit_compile: bool = option(
        False,
        "compile the train step with XLA, once per batch length (batches "
        "are padded to their bucket's end to keep those few; ~80 s in all "
        "on deu-eng). On 2 CPU cores its steps were 1.3x faster, yet a "
        "5-minute run got fewer epochs: for long runs",
        flag(),
        resume=MAY_CHANGE_ON_RESUME,
    )
    keep_checkpoints: int = option(
        0,
        "keep the weights of the last N epochs in checkpoints/ (for "
        "`keras-nmt average`); 0: none",
        integer(0),
        metavar="N",
        resume=MAY_CHANGE_ON_RESUME,
    )
    backup_every: int = option(
        50,
        "back up the training state every N steps and at the end of each "
        "epoch; an interrupted run loses at most N steps (0: at the end of "
        "each epoch only)",
        integer(0),
        metavar="N",
        resume=MAY_CHANGE_ON_RESUME,
    )

    def check_together(self) -> None:
        if self.units % 2:
            raise ValueError(
                f"Invalid units={self.units}; expected an even number (the "
                "bidirectional encoder has units/2 per direction)."
            )
        if self.readout_units is not None and self.style != "bahdanau":
            raise ValueError(
                "readout_units is the deep output of the Bahdanau style; "
                f"received style={self.style!r}. Use style='bahdanau' or "
                "leave readout_units unset."
            )
        if self.input_feeding and self.style != "luong":
            raise ValueError(
                "input_feeding=True needs style='luong' (it feeds Luong's "
                f"attentional vector); received style={self.style!r}."
            )

    @classmethod
    def fixed_on_resume(cls) -> tuple[str, ...]:
        """The fields a resumed run must keep."""
        return tuple(
            field.name
            for field in dataclasses.fields(cls)
            if field.metadata.get("resume") != MAY_CHANGE_ON_RESUME
        )

    def model_arguments(self) -> dict:
        """The keyword arguments of `keras_nmt.seq2seq.build_seq2seq`
        (`attentional` only for the Luong style, which has one)."""
        names = (
            "attention",
            "style",
            "cell",
            "input_feeding",
            "embedding_dim",
            "units",
            "dropout",
            "encoder_layers",
            "layers",
            "readout_units",
        )
        arguments = {name: getattr(self, name) for name in names}
        if self.style == "luong":
            arguments["attentional"] = self.attentional
        return arguments
