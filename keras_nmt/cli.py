"""The `keras-nmt` command: train, translate, evaluate, export, demo.

Usage (`keras-nmt COMMAND --help` for every option):

    keras-nmt train --data pairs.tsv --out my-model
    keras-nmt train --data pairs.tsv --out my-model --resume
    keras-nmt train --data pairs.tsv --out my-model --strategy mirrored
    keras-nmt translate --model my-model "¿Dónde está Tom?"
    keras-nmt evaluate --model my-model --data pairs.tsv --split test
    keras-nmt export --model my-model --out my-savedmodel
    keras-nmt demo

Data files are tab-separated sentence pairs (the Anki / Tatoeba format,
`English<TAB>Spanish[<TAB>attribution]`); by default column 2 is translated
into column 1 (`--reverse`, Spanish -> English for the Anki files).

The heavy modules (the text pipeline, the translator, matplotlib) are
imported inside the commands. Training and translation run on the
configured Keras backend (TensorFlow unless `KERAS_BACKEND` or
`~/.keras/keras.json` says otherwise): the `tf.data` input pipeline feeds
any backend, so JAX and PyTorch train too; `export`, `--strategy mirrored`
and `--cpu-devices` need TensorFlow.

`train` backs its state up every `--backup-every` steps: a run that is
interrupted (Ctrl-C, a kill, a crash, a preempted machine) continues with
`--resume` as if it had not stopped.

Errors the user can fix (a missing or malformed file, a directory that holds
no model, an invalid option) print one line on stderr and exit with status
1 (2 for command-line usage errors), without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

# Quiet TensorFlow's native logs (as `make` does). Keras and TensorFlow are
# usually imported already, by `keras_nmt/__init__.py` (the layers), so
# the backend is fixed by then and TensorFlow has printed its start-up lines;
# the log level still silences what TensorFlow logs from here on (e.g. the
# "failed call to cuInit" of a machine without GPU).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PROG = "keras-nmt"
SPLITS = ("all", "train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
ATTENTIONS = ("bahdanau", "dot", "general", "scaled_dot")
STYLES = ("bahdanau", "luong")
CELLS = ("lstm", "gru")
METHODS = ("greedy", "sample", "beam")
STRATEGIES = ("default", "mirrored")


class CommandError(Exception):
    """A user error found by the command line itself (one-line message)."""


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} -h')\n")


# ---- helpers -------------------------------------------------------------


def _read_split(args) -> tuple:
    """The pairs of `--data`, and the `--split` part of them."""
    from keras_nmt import text

    pairs = text.read_pairs(
        args.data,
        reverse=args.reverse,
        max_pairs=args.max_pairs,
    )
    return pairs, text.split_pairs(pairs, fractions=FRACTIONS, seed=args.seed)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {value!r}"
        )
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 0, received {value!r}"
        )
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0, received {value!r}"
        )
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0, received {value!r}"
        )
    return number


def _decoding_options(args) -> dict:
    return {
        "method": args.method,
        "beam_width": args.beam_width,
        "length_penalty": args.length_penalty,
        "temperature": args.temperature,
        "top_k": args.top_k,
    }


def _needs_tensorflow(option: str) -> None:
    import keras

    if keras.config.backend() != "tensorflow":
        raise CommandError(
            f"{option} needs the TensorFlow backend; the Keras backend is "
            f"{keras.config.backend()!r}. Run with KERAS_BACKEND=tensorflow."
        )


def _split_cpu(devices: int) -> None:
    """Make TensorFlow see `devices` logical CPUs (to try a multi-device
    strategy without GPUs). Only possible before TensorFlow initialises its
    runtime, i.e. before anything has run a TensorFlow op."""
    _needs_tensorflow("--cpu-devices")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
    except RuntimeError:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != devices:
            raise CommandError(
                f"--cpu-devices {devices}: TensorFlow has already "
                f"initialised its devices ({current} logical CPU(s)) in "
                "this process, so the CPU can no longer be split. Pass "
                "--cpu-devices to a new `keras-nmt train` process."
            ) from None


def _strategy(name: str):
    """`None` (Keras' default: one device) or a `MirroredStrategy` over the
    visible GPUs, else over the logical CPUs."""
    if name == "default":
        return None
    _needs_tensorflow(f"--strategy {name}")
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU")
    devices = devices or tf.config.list_logical_devices("CPU")
    names = [device.name for device in devices]
    strategy = tf.distribute.MirroredStrategy(names)
    print(
        f"MirroredStrategy: {strategy.num_replicas_in_sync} replica(s) on "
        f"{', '.join(names)}",
        flush=True,
    )
    return strategy


# ---- commands ------------------------------------------------------------


def _train(args) -> int:
    # First: splitting the CPU must happen before TensorFlow's first op.
    if args.cpu_devices is not None:
        _split_cpu(args.cpu_devices)
    from keras_nmt.training import train_translator

    strategy = _strategy(args.strategy)
    pairs, (train, validation, test) = _read_split(args)
    print(
        f"{len(pairs)} pairs from {args.data}: {len(train)} train, "
        f"{len(validation)} validation, {len(test)} test (seed {args.seed})",
        flush=True,
    )
    start = time.perf_counter()
    translator = train_translator(
        train,
        validation,
        args.out,
        attention=args.attention,
        style=args.style,
        cell=args.cell,
        input_feeding=args.input_feeding,
        embedding_dim=args.embedding_dim,
        units=args.units,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        max_vocab=args.max_vocab,
        seed=args.seed,
        resume=args.resume,
        backup_every=args.backup_every,
        strategy=strategy,
        mixed_precision=args.mixed_precision,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    print(f"Trained in {seconds:.0f} s; best model saved to {args.out}")
    if len(validation):
        scores = translator.evaluate(validation.sources, validation.targets)
        print(
            f"Validation BLEU {scores['bleu']:.2f}, exact match "
            f"{scores['exact_match']:.1f}% ({scores['sentences']} sentences, "
            "greedy)"
        )
    return 0


def _translate(args) -> int:
    sentences = list(args.text)
    if args.plot is not None and not sentences:
        raise CommandError("--plot needs at least one TEXT to translate.")
    from keras_nmt.translator import Translator

    translator = Translator.load(args.model)
    if not sentences:  # read from stdin, one sentence per line
        sentences = [line.rstrip("\n") for line in sys.stdin]
    options = _decoding_options(args)
    lines = translator.translate(sentences, **options)
    figure = None
    if args.plot is not None:
        from keras_nmt.plotting import plot_attention

        result = translator.translate_with_attention(sentences[0], **options)
        if not result.target_tokens:
            raise CommandError(
                f"--plot: {sentences[0]!r} has no words to translate, so it "
                "has no attention map."
            )
        lines[0] = result.text  # the same, except for a new --method sample
        figure = plot_attention(
            result.attention,
            result.source_tokens,
            result.target_tokens,
            title=result.text,
        )
    for line in lines:
        print(line)
    if figure is not None:
        figure.savefig(args.plot, dpi=120)
        print(f"Attention map written to {args.plot}", file=sys.stderr)
    return 0


def _evaluate(args) -> int:
    from keras_nmt.translator import Translator

    translator = Translator.load(args.model)
    pairs, splits = _read_split(args)
    part = pairs if args.split == "all" else getattr(splits, args.split)
    if not len(part):
        raise CommandError(
            f"The {args.split} split of {args.data} is empty (seed "
            f"{args.seed}); use --split all or a larger file."
        )
    scores = translator.evaluate(
        part.sources, part.targets, **_decoding_options(args)
    )
    scores.update(
        {
            "model": str(args.model),
            "data": str(args.data),
            "split": args.split,
            "pairs": len(part),
        }
    )
    print(f"BLEU         {scores['bleu']:.2f}")
    print(
        f"exact match  {scores['exact_match']:.2f}% of "
        f"{scores['sentences']} sentences ({len(part)} pairs, "
        f"{args.split}, {args.method})"
    )
    print(f"sacrebleu    {scores['bleu_signature']}")
    if args.json is not None:
        path = pathlib.Path(args.json)
        path.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
        print(f"Scores written to {path}")
    return 0


def _export(args) -> int:
    from keras_nmt.translator import Translator

    Translator.load(args.model).export(args.out)
    print(
        f"SavedModel written to {args.out}: signatures 'translate' (greedy) "
        "and 'translate_beam', tf.string -> tf.string"
    )
    return 0


def _demo(args) -> int:
    from keras_nmt.demo import run_demo

    run_demo(args.out, epochs=args.epochs, max_pairs=args.max_pairs, verbose=2)
    return 0


# ---- the parser ----------------------------------------------------------


def _add_data_options(parser, with_split: bool):
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="tab-separated sentence pairs (UTF-8, 2 or 3 columns)",
    )
    parser.add_argument(
        "--reverse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="translate column 2 into column 1 (default; Spanish -> "
        "English for the Anki files); --no-reverse: column 1 into 2",
    )
    parser.add_argument(
        "--max-pairs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="read only the first N pairs",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the train/validation/test split (80/10/10 by "
        "sentence group)"
        + (", weights and shuffling" if not with_split else ""),
    )
    if with_split:
        parser.add_argument(
            "--split",
            choices=SPLITS,
            default="all",
            help="which part of the file to score: the split of `train` "
            "with the same --seed, --reverse and --max-pairs, or all pairs "
            "(default)",
        )


def _add_decoding_options(parser):
    parser.add_argument(
        "--method", choices=METHODS, default="greedy", help="decoding"
    )
    parser.add_argument(
        "--beam-width",
        type=_positive_int,
        default=None,
        metavar="K",
        help="beam width (default: the model's, 5)",
    )
    parser.add_argument(
        "--length-penalty",
        type=_non_negative_float,
        default=None,
        metavar="ALPHA",
        help="GNMT length penalty of beam search (default: the model's)",
    )
    parser.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="sampling temperature (default 1.0)",
    )
    parser.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        metavar="K",
        help="sample among the K most probable tokens",
    )


def _model_option(parser):
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="a directory written by `keras-nmt train` or "
        "Translator.save()",
    )


def build_parser() -> argparse.ArgumentParser:
    """The `keras-nmt` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Attention seq2seq translation with Keras 3: train, "
        "translate, evaluate, export, demo.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train a translator on sentence pairs",
        description="Train an attention encoder-decoder; keeps the model of "
        "the best validation loss in --out (resumable with --resume). The "
        "demo's settings, the best on its 5,000 pairs: --style luong --cell "
        "gru --embedding-dim 256 --units 512 --dropout 0.4 --max-length 24.",
    )
    _add_data_options(train, with_split=False)
    train.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory: the best model, vocabularies, history",
    )
    train.add_argument(
        "--attention",
        choices=ATTENTIONS,
        default="bahdanau",
        help="attention score (default: %(default)s)",
    )
    train.add_argument(
        "--style",
        choices=STYLES,
        default="bahdanau",
        help="decoder style (default: %(default)s)",
    )
    train.add_argument(
        "--cell",
        choices=CELLS,
        default="lstm",
        help="RNN cell (default: %(default)s)",
    )
    train.add_argument(
        "--input-feeding",
        action="store_true",
        help="Luong style: feed the attentional vector to the next step",
    )
    for option, kind, default, text in (
        ("--epochs", _positive_int, 10, "training epochs"),
        ("--batch-size", _positive_int, 64, "pairs per batch"),
        ("--embedding-dim", _positive_int, 128, "token embedding size"),
        ("--units", _positive_int, 256, "decoder state size (even)"),
        ("--dropout", _non_negative_float, 0.0, "dropout rate"),
        ("--learning-rate", _positive_float, 2e-3, "Adam learning rate"),
    ):
        train.add_argument(
            option,
            type=kind,
            default=default,
            help=f"{text} (default: %(default)s)",
        )
    train.add_argument(
        "--max-length",
        type=_positive_int,
        default=32,
        help="longest token sequence, [START] and [END] included "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--max-vocab",
        type=_positive_int,
        default=None,
        help="vocabulary size per language (default: every word)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last backup "
        "(same data and settings; --epochs may grow)",
    )
    train.add_argument(
        "--backup-every",
        type=_non_negative_int,
        default=50,
        metavar="STEPS",
        help="back up the training state every STEPS steps and at the end "
        "of each epoch, so an interrupted run loses at most STEPS steps "
        "(0: at the end of each epoch only; default: %(default)s)",
    )
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: one device; mirrored: tf.distribute."
        "MirroredStrategy, each batch split over the visible GPUs (or the "
        "logical CPUs of --cpu-devices); --batch-size is the global batch "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--cpu-devices",
        type=_positive_int,
        default=None,
        metavar="N",
        help="split the CPU into N logical TensorFlow devices, to try "
        "--strategy mirrored without GPUs (for testing)",
    )
    train.add_argument(
        "--mixed-precision",
        action="store_true",
        help="16-bit computations with float32 weights: mixed_bfloat16 "
        "(mixed_float16 on a GPU)",
    )
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="1: progress bars (default), 2: one line per epoch, 0: quiet",
    )
    train.set_defaults(run=_train)

    translate = commands.add_parser(
        "translate",
        help="translate sentences",
        description="Print one translation per line. Without TEXT, read "
        "sentences from stdin, one per line.",
    )
    _model_option(translate)
    _add_decoding_options(translate)
    translate.add_argument(
        "--plot",
        metavar="FILE.png",
        help="write the attention heatmap of the first sentence",
    )
    translate.add_argument("text", nargs="*", metavar="TEXT")
    translate.set_defaults(run=_translate)

    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU (sacrebleu) and exact match on sentence pairs",
        description="Translate the sources of --data and score them against "
        "their references (grouped by source sentence).",
    )
    _model_option(evaluate)
    _add_data_options(evaluate, with_split=True)
    _add_decoding_options(evaluate)
    evaluate.add_argument(
        "--json", metavar="FILE", help="also write the scores as JSON"
    )
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser(
        "export",
        help="write a TensorFlow SavedModel (strings in, strings out)",
        description="Export a translator as a SavedModel with 'translate' "
        "and 'translate_beam' signatures (tf.string -> tf.string), loadable "
        "with tf.saved_model.load after `import tensorflow_text`.",
    )
    _model_option(export)
    export.add_argument("--out", required=True, metavar="DIR")
    export.set_defaults(run=_export)

    demo = commands.add_parser(
        "demo",
        help="train on the embedded Spanish-English corpus and show results",
        description="Train on the embedded Tatoeba subset (a few minutes on "
        "a CPU), print validation BLEU and translations of held-out "
        "sentences (greedy and beam search), and write an attention "
        "heatmap.",
    )
    demo.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help="output directory (default: demo-output)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="training epochs (default: the demo's tuned value)",
    )
    # For tests: train on the first N pairs only.
    demo.add_argument(
        "--max-pairs", type=_positive_int, default=None, help=argparse.SUPPRESS
    )
    demo.set_defaults(run=_demo)
    return parser


# What users can fix from the message alone. The package raises ValueError
# (DataFormatError and TranslatorLoadError are ValueErrors) for bad data,
# options and files, FileNotFoundError for missing ones.
_USER_ERRORS = (CommandError, OSError, ValueError)
DEBUG_ENV_VAR = "KERAS_NMT_DEBUG"


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 1 on an error the user can fix (its
        message printed on one line; set `KERAS_NMT_DEBUG=1` for the
        traceback), 2 on a usage error, 130 if interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except _USER_ERRORS as error:
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = (
            f"; continue with: {PROG} train ... --out {args.out} --resume"
            if args.command == "train"
            else ""
        )
        print(f"{PROG} {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
