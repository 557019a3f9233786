"""The `keras-nmt` argument parser, derived from the option dataclasses.

Imports neither Keras nor TensorFlow: `--help`, `--version` and usage errors
answer at once. Every training flag comes from a `TrainingSettings` field
and every decoding flag from a `DecodingOptions` field (name, type, choices,
default and help), so the command line and the Python API cannot drift.
"""

from __future__ import annotations

import argparse
import dataclasses

from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.options import Check
from keras_nmt.options import integer
from keras_nmt.training.settings import TrainingSettings
from keras_nmt.version import __version__

PROG = "keras-nmt"
SPLITS = ("all", "train", "validation", "test")
STRATEGIES = ("default", "mirrored")
# Decoding flags left unset use the model's saved defaults.
MODEL_DEFAULT = None


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} -h')\n")


def argument_type(check: Check):
    """An argparse `type` from an option's check: parse, then validate."""

    def parse(text: str):
        try:
            value = check.parse(text)
        except ValueError:
            value = text
        if not check.accepts(value):
            raise argparse.ArgumentTypeError(
                f"expected {check.expected}, received {text!r}"
            )
        return check.normalize(value)

    parse.__name__ = check.expected  # argparse names it in some errors
    return parse


def add_options(parser, options_class, *, model_defaults: bool = False):
    """One flag per field of an `Options` dataclass (`--beam-width` for
    `beam_width`), with its check, choices, default and help.

    With `model_defaults`, unset flags are `None` ("use the model's
    saved default") instead of the field's default.
    """
    for field in dataclasses.fields(options_class):
        check: Check = field.metadata["check"]
        flag = "--" + field.name.replace("_", "-")
        default = MODEL_DEFAULT if model_defaults else field.default
        shown = (
            f"the model's; {field.default}" if model_defaults else "%(default)s"
        )
        help_text = f"{field.metadata['help']} (default: {shown})"
        if check.parse is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
        elif check.choices is not None:
            parser.add_argument(
                flag, choices=check.choices, default=default, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=argument_type(check),
                default=default,
                metavar=field.metadata.get("metavar"),
                help=help_text,
            )


def options_from(args, options_class, base=None):
    """The `options_class` of parsed `args`: `base` (default: the class's
    defaults) with every flag that was given."""
    base = base if base is not None else options_class()
    given = {
        name: getattr(args, name)
        for name in options_class.names()
        if getattr(args, name, None) is not None
    }
    return base.replace(**given)


def _data_options(parser, with_split: bool) -> None:
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
        type=argument_type(integer()),
        default=None,
        metavar="N",
        help="read only the first N pairs",
    )
    if with_split:
        parser.add_argument(
            "--seed",
            type=argument_type(integer(0)),
            default=TrainingSettings().seed,
            help="seed of the train/validation/test split, as in `train` "
            "(default: %(default)s)",
        )
        parser.add_argument(
            "--split",
            choices=SPLITS,
            default="all",
            help="which part of the file to score: the split of `train` "
            "with the same --seed, --reverse and --max-pairs, or all pairs "
            "(default)",
        )


def _model_option(parser, ensemble: bool = False) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="a directory written by `keras-nmt train` or Translator.save()",
    )
    if ensemble:
        parser.add_argument(
            "--ensemble",
            action="append",
            default=[],
            metavar="DIR",
            help="another model trained with the same vocabularies, decoded "
            "together with --model (the mean of their log-probabilities); "
            "repeat for more",
        )


def _train_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train a translator on sentence pairs",
        description="Train an attention encoder-decoder; keeps the model of "
        "the best validation loss in --out (resumable with --resume). The "
        "data is split 80/10/10 by sentence group with --seed.",
    )
    _data_options(train, with_split=False)
    train.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory: new, empty, or written by `keras-nmt "
        "train` (the best model, vocabularies, history)",
    )
    add_options(train, TrainingSettings)
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last backup "
        "(same data and settings; --epochs may grow)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the trained model in --out with this run's (only "
        "once this run has completed its first epoch)",
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
        type=argument_type(integer()),
        default=None,
        metavar="N",
        help="split the CPU into N logical TensorFlow devices, to try "
        "--strategy mirrored without GPUs (for testing)",
    )
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="1: progress bars (default), 2: one line per epoch, 0: quiet",
    )


def _translate_parser(commands) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate sentences",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Print one translation per line: of each TEXT, or without TEXT of each line
of stdin (or --input FILE), read as UTF-8.

The stream is translated in chunks of up to --batch-size lines, each written
and flushed as soon as it is done; a chunk never waits for more input. On a
terminal, each line is answered when entered at the '> ' prompt (on stderr);
Ctrl-D ends. A progress bar (lines/s, and ETA for a file) is drawn on stderr
when stderr is a terminal and the translations go to a file or a pipe.

--n-best K (even 1) prints K lines per sentence, best first, each
LINE<TAB>SCORE<TAB>TEXT: LINE the 1-based number of the input line (or
TEXT), SCORE the hypothesis' score (4 decimals); K > 1 needs --method beam.""",
        epilog="""\
exit status: 0 when done, also when stdout is closed by its reader (e.g.
'| head -1': reading stops quietly); 1 on an error, such as invalid UTF-8
with --on-invalid stop (one line on stderr, after writing every line before
it); 130 on Ctrl-C (one line on stderr; the lines done stay written, or are
kept in FILE.partial with --output FILE); 2 on a usage error.""",
    )
    _model_option(translate, ensemble=True)
    add_options(translate, DecodingOptions, model_defaults=True)
    translate.add_argument(
        "--batch-size",
        type=argument_type(integer()),
        default=None,
        metavar="N",
        help="sentences decoded at once (default: the model's)",
    )
    translate.add_argument(
        "--input",
        metavar="FILE",
        help="read the sentences from FILE, one per line, instead of stdin "
        "('-'); FILE is never written",
    )
    translate.add_argument(
        "--output",
        metavar="FILE",
        help="write the translations to FILE instead of stdout ('-'): into "
        "a temporary file next to it, renamed to FILE once complete; if "
        "interrupted or stopped by an error, the lines translated so far "
        "are kept in FILE.partial and FILE is left as it was. Refused if "
        "FILE is the input file",
    )
    translate.add_argument(
        "--on-invalid",
        choices=("stop", "skip"),
        default="stop",
        help="a line that is not valid UTF-8: 'stop' (default) after "
        "writing the lines before it, with status 1; 'skip': report it on "
        "stderr, write an empty translation for it and go on",
    )
    translate.add_argument(
        "--plot",
        metavar="FILE.png",
        help="write the attention heatmap of the first TEXT",
    )
    translate.add_argument("text", nargs="*", metavar="TEXT")


def _evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU (sacrebleu) and exact match on sentence pairs",
        description="Translate the sources of --data and score them against "
        "their references (grouped by source sentence).",
    )
    _model_option(evaluate, ensemble=True)
    _data_options(evaluate, with_split=True)
    add_options(evaluate, DecodingOptions, model_defaults=True)
    evaluate.add_argument(
        "--json", metavar="FILE", help="also write the scores as JSON"
    )


def _export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a TensorFlow SavedModel (strings in, strings out)",
        description="Export a translator as a SavedModel with 'translate' "
        "and 'translate_beam' signatures (tf.string -> tf.string), loadable "
        "with tf.saved_model.load after `import tensorflow_text`.",
    )
    _model_option(export, ensemble=True)
    export.add_argument("--out", required=True, metavar="DIR")


def _average_parser(commands) -> None:
    average = commands.add_parser(
        "average",
        help="average the last checkpoints of a run into a new model",
        description="Write a translator whose weights are the mean of the "
        "last N epoch checkpoints of a run trained with --keep-checkpoints "
        "(checkpoint averaging). The run itself is left as it is.",
    )
    _model_option(average)
    average.add_argument(
        "--last",
        type=argument_type(integer()),
        required=True,
        metavar="N",
        help="how many of the last checkpoints to average",
    )
    average.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the new translator directory (must not exist or be empty)",
    )


def _demo_parser(commands) -> None:
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
        type=argument_type(integer()),
        default=None,
        help="training epochs (default: the demo's tuned value)",
    )
    # For tests: train on the first N pairs only.
    demo.add_argument(
        "--max-pairs",
        type=argument_type(integer()),
        default=None,
        help=argparse.SUPPRESS,
    )


def _serve_parser(commands) -> None:
    from keras_nmt.serving.settings import ServerSettings

    serve = commands.add_parser(
        "serve",
        help="serve a translator over HTTP: a JSON API and a web page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Serve --model at http://HOST:PORT/: a web page that translates a sentence
and shows its attention map, and a JSON API:

  POST /translate  {"sentences": ["Hola."], "method": "beam", "n_best": 2,
                    "attention": true}  (any decoding option by its name)
               ->  {"translations": [{"text", "score", "hypotheses",
                    "source_tokens", "target_tokens", "attention"}],
                    "options": {...}}
  GET  /health     {"status": "ok", "model", "version", ...}

Requests with the same options that arrive together are translated in one
batch. It listens on 127.0.0.1 (this machine only) unless --host says
otherwise; it has no authentication or TLS: to expose it, put it behind a
reverse proxy.""",
        epilog="""\
exit status: 130 on Ctrl-C, 0 on SIGTERM (one line on stderr each); 1 if
the model cannot be loaded or the address cannot be used.""",
    )
    _model_option(serve)
    add_options(serve, ServerSettings)
    serve.add_argument(
        "--batch-size",
        type=argument_type(integer()),
        default=None,
        metavar="N",
        help="most sentences translated in one batch (default: the model's)",
    )
    serve.add_argument(
        "--quiet",
        action="store_true",
        help="no line per request on stderr",
    )
    add_options(
        serve.add_argument_group(
            "decoding defaults",
            "the options of a request that does not name them",
        ),
        DecodingOptions,
        model_defaults=True,
    )


def build_parser() -> argparse.ArgumentParser:
    """The `keras-nmt` argument parser (`args.command` names the
    command)."""
    parser = Parser(
        prog=PROG,
        description="Attention seq2seq translation with Keras 3: train, "
        "translate, evaluate, export, demo.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser
    )
    commands.required = True
    for add in (
        _train_parser,
        _translate_parser,
        _evaluate_parser,
        _export_parser,
        _average_parser,
        _demo_parser,
        _serve_parser,
    ):
        add(commands)
    return parser
