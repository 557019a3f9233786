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
# The default train/validation/test shares of --data.
FRACTIONS = (0.8, 0.1, 0.1)
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


def _fractions(text: str) -> tuple[float, float, float]:
    """`--split-fractions 0.8,0.1,0.1`: three non-negative numbers that
    sum to 1."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if (
        len(values) != 3
        or any(not 0 <= v <= 1 for v in values)
        or abs(sum(values) - 1) > 1e-6
    ):
        raise argparse.ArgumentTypeError(
            "expected three non-negative numbers TRAIN,VALIDATION,TEST "
            f"that sum to 1, e.g. 0.8,0.1,0.1; received {text!r}"
        )
    return values


def _data_options(parser, command: str) -> None:
    parser.add_argument(
        "--data",
        required=command != "train",  # train: also from --config
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
        help="use N pairs of the file, a sample drawn with --seed (the "
        "Anki files are sorted by length: the first N would be the "
        "shortest)",
    )
    parser.add_argument(
        "--split-fractions",
        type=_fractions,
        default=FRACTIONS,
        metavar="T,V,E",
        help="the train, validation and test shares of --data, split by "
        "sentence group with --seed (default: 0.8,0.1,0.1); a share "
        "given by --validation-data or --test-data goes to training",
    )
    if command == "evaluate":
        parser.add_argument(
            "--seed",
            type=argument_type(integer(0)),
            default=None,
            help="seed of the split and of --max-pairs, as in `train` "
            "(default: the model's, else 0)",
        )
        parser.add_argument(
            "--split",
            choices=SPLITS,
            default=None,
            help="which part of --data to score: a split of `train` (with "
            "the same --seed, --reverse, --max-pairs and --split-fractions) "
            "or all pairs. Default: test if --data is the file the model "
            "was trained on (its split settings are then the model's), "
            "else all",
        )
    else:
        for name, part in (("validation", "validation"), ("test", "test")):
            parser.add_argument(
                f"--{name}-data",
                metavar="FILE",
                help=f"the {part} pairs, from this file (same format and "
                f"--reverse) instead of a share of --data",
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


def _speed_options(parser) -> None:
    """How a loaded translator decodes: `--batch-size` and
    `--jit-compile` (unset: the model's saved settings)."""
    parser.add_argument(
        "--batch-size",
        type=argument_type(integer()),
        default=None,
        metavar="N",
        help="most sentences decoded at once; they are sorted by length "
        "and each batch is padded to its longest (default: the model's)",
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the decoding with XLA (faster, after a first call "
        "about a second longer per new shape); --no-jit-compile: a plain "
        "TensorFlow graph (default: the model's; True)",
    )


def _train_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train a translator on sentence pairs",
        description="Train an attention encoder-decoder; keeps the model of "
        "the best validation BLEU (or loss) in --out, stops early when it "
        "no longer improves (resumable and continuable with --resume). The "
        "data is split 80/10/10 by sentence group with --seed.",
    )
    train.add_argument(
        "--config",
        metavar="FILE",
        help="read the flags from a TOML file (keys as the flags' names, "
        "e.g. units = 512 or max-pairs = 10000) or from a run's "
        "training.json; flags given on the command line win",
    )
    _data_options(train, "train")
    train.add_argument(
        "--streaming",
        action="store_true",
        help="for corpora larger than memory: read --data at each epoch "
        "instead of into memory; --data may then be a quoted glob pattern "
        "(e.g. 'shards/*.tsv.gz'; .gz files are read as gzip), the "
        "training share is shuffled in a buffer of --shuffle-buffer pairs "
        "and validation uses a sample of at most 10000 pairs of its share",
    )
    train.add_argument(
        "--shuffle-buffer",
        type=argument_type(integer(0)),
        default=None,
        metavar="N",
        help="with --streaming: the pairs held by the shuffle buffer (0: "
        "file order; default: 100000)",
    )
    train.add_argument(
        "--out",
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
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard logs into DIR: loss, validation loss and "
        "BLEU, learning rate, and attention maps of a few validation "
        "sentences each epoch",
    )
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="1: progress bars, 2: one line per epoch, 0: quiet (default: "
        "1 on a terminal, else 2)",
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
    _speed_options(translate)
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
    _data_options(evaluate, "evaluate")
    add_options(evaluate, DecodingOptions, model_defaults=True)
    _speed_options(evaluate)
    evaluate.add_argument(
        "--lowercase",
        action="store_true",
        help="score BLEU and exact match case-insensitively (both BLEUs "
        "are printed either way)",
    )
    evaluate.add_argument(
        "--json", metavar="FILE", help="also write the scores as JSON"
    )


def _export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a TensorFlow SavedModel (strings in, strings out) or a "
        "TFLite model (token ids in and out)",
        description="Export a translator as a SavedModel with 'translate' "
        "and 'translate_beam' signatures (tf.string -> tf.string), loadable "
        "with tf.saved_model.load after `import tensorflow_text`; or, with "
        "--format tflite, as a .tflite file of builtin ops only (one "
        "sentence at a time, token ids in and out; "
        "keras_nmt.tflite_export.TFLiteTranslator adds the vocabularies).",
    )
    _model_option(export, ensemble=True)
    export.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="the SavedModel directory, or the .tflite file",
    )
    export.add_argument(
        "--format",
        choices=("saved_model", "tflite"),
        default="saved_model",
        help="(default: %(default)s)",
    )
    export.add_argument(
        "--method",
        choices=("greedy", "beam"),
        default="greedy",
        help="tflite: the decoding in the file (beam: the model's beam "
        "options) (default: %(default)s)",
    )
    export.add_argument(
        "--quantize",
        action="store_true",
        help="tflite: dynamic-range quantisation (int8 weights, about 4x "
        "smaller)",
    )


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
    _speed_options(serve)
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
    parser.command_parsers = commands.choices
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


# Keys of a run's training.json that record the run rather than set a flag.
RECORDED_KEYS = frozenset(
    {
        "train_pairs",
        "validation_pairs",
        "dtype_policy",
        "backend",
        "completed_epochs",
        "steps",
        "selected_by",
        "best_epoch",
        "best_value",
        "stopped_by",
        "data_source",
    }
)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse a `keras-nmt` command line, with `train --config FILE`: the
    file's values become flags placed before the command line's (so the
    command line wins), parsed and checked exactly like typed flags."""
    import sys

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command != "train":
        return args
    train = parser.command_parsers["train"]
    if args.config is not None:
        flags = config_flags(train, args.config)
        at = argv.index("train") + 1
        args = parser.parse_args([*argv[:at], *flags, *argv[at:]])
    for name in ("data", "out"):
        if getattr(args, name) is None:
            train.error(
                f"the following arguments are required: --{name} (or "
                f"'{name}' in --config)"
            )
    return args


def config_flags(parser, path: str) -> list[str]:
    """The flags of a TOML config file (or of a run's training.json) for
    `parser`: `key = value` becomes `--key value`, `true`/`false` the flag
    or its `--no-` form, a list its comma-separated values."""
    import json
    import pathlib

    import tomllib

    file = pathlib.Path(path)
    try:
        raw = file.read_bytes()
    except OSError as error:
        parser.error(f"--config {path}: cannot read it ({error.strerror})")
    try:
        if file.suffix == ".json":
            values = json.loads(raw.decode("utf-8"))
        else:
            values = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        kind = "JSON" if file.suffix == ".json" else "TOML"
        parser.error(f"--config {path}: not valid {kind} ({error})")
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected a table of flag = value")
    actions = {
        action.dest: action
        for action in parser._actions  # argparse has no public list
        if action.option_strings
    }
    flags = []
    for key, value in values.items():
        dest = key.replace("-", "_")
        if key in RECORDED_KEYS or value is None:
            continue
        if dest in ("config", "help") or dest not in actions:
            parser.error(
                f"--config {path}: unknown key {key!r}; expected the name "
                f"of a train flag, e.g. {'units'!r} or {'max-pairs'!r}"
            )
        option = actions[dest].option_strings[0]
        if actions[dest].nargs == 0:  # an on/off flag
            if not isinstance(value, bool):
                parser.error(
                    f"--config {path}: {key} must be true or false; "
                    f"received {value!r}"
                )
            if value:
                flags.append(option)
            elif isinstance(actions[dest], argparse.BooleanOptionalAction):
                flags.append("--no-" + option[2:])
        elif isinstance(value, bool):
            flags += [option, str(value)]  # a type error, reported
        elif isinstance(value, (list, tuple)):
            flags += [option, ",".join(str(v) for v in value)]
        else:
            flags += [option, str(value)]
    return flags
