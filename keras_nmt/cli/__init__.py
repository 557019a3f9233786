"""The `keras-nmt` command: train, translate, evaluate, export, demo.

Usage (`keras-nmt COMMAND --help` for every option):

    keras-nmt train --data pairs.tsv --out my-model
    keras-nmt train --data pairs.tsv --out my-model --resume
    keras-nmt translate --model my-model "¿Dónde está Tom?"
    keras-nmt evaluate --model my-model --data pairs.tsv --split test
    keras-nmt export --model my-model --out my-savedmodel
    keras-nmt demo

Data files are tab-separated sentence pairs (the Anki / Tatoeba format,
`English<TAB>Spanish[<TAB>attribution]`); by default column 2 is translated
into column 1 (`--reverse`, Spanish -> English for the Anki files).

The environment is set before anything is imported, so TensorFlow's native
start-up lines stay quiet, and parsing imports neither Keras nor TensorFlow:
`--help`, `--version` and usage errors answer at once. Training and
translation run on the configured Keras backend (TensorFlow unless
`KERAS_BACKEND` or `~/.keras/keras.json` says otherwise); `export`,
`--strategy mirrored` and `--cpu-devices` need TensorFlow.

Errors the user can fix (a missing or malformed file, a directory that holds
no model, an invalid option) print one line on stderr and exit with status
1 (2 for command-line usage errors), without a traceback.
"""

import contextlib
import os

# Before any import of TensorFlow: its C++ start-up logs (level 3 = errors
# only) and oneDNN's notice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys  # noqa: E402

from keras_nmt.cli.parser import PROG  # noqa: E402
from keras_nmt.cli.parser import parse_args  # noqa: E402
from keras_nmt.native import DEBUG_ENV_VAR  # noqa: E402
from keras_nmt.native import native_stderr_to_devnull  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 1 on an error the user can fix (its
        message printed on one line; set `KERAS_NMT_DEBUG=1` for the
        traceback), 2 on a usage error, 130 if interrupted.
    """
    args = parse_args(argv)
    try:
        _import_tensorflow_quietly()
        from keras_nmt.cli import commands

        return commands.COMMANDS[args.command](args)
    except (ValueError, OSError) as error:
        # What users can fix from the message alone: the package raises
        # ValueError (DataFormatError, TranslatorLoadError, RunDirectoryError
        # and CommandError are ValueErrors) for bad data, options and
        # files, OSError for missing or unreadable ones.
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"{PROG} {args.command}: interrupted{_after_interrupt(args)}",
            file=sys.stderr,
        )
        return 130


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines silenced.

    TensorFlow 2.21 logs through absl before absl is initialised, so
    `TF_CPP_MIN_LOG_LEVEL` does not silence "All log messages before
    absl::InitializeLog()", oneDNN's notice and the CUDA probe, all written
    to file descriptor 2 during `import tensorflow`. Later native logs
    follow `TF_CPP_MIN_LOG_LEVEL`. An import that fails raises as usual
    (after stderr is restored); `KERAS_NMT_DEBUG=1` keeps the lines.
    """
    if "tensorflow" in sys.modules:
        return
    with contextlib.suppress(ImportError), native_stderr_to_devnull():
        import tensorflow  # noqa: F401


def _after_interrupt(args) -> str:
    """What is true after an interrupted command, for its one line."""
    if args.command != "train":
        return ""
    from keras_nmt.training.run_directory import RunDirectory

    run = RunDirectory(args.out)
    if run.has_backup():
        return f"; continue with: {PROG} train ... --out {args.out} --resume"
    if run.has_model():
        return f"; '{args.out}' still holds its previous model"
    return "; it stopped before its first backup, so run it again to start over"
