"""What each `keras-nmt` command does, once its arguments are parsed.

Imported only after parsing, so TensorFlow loads only for a command that
runs; each command imports what it needs.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
import time

from keras_nmt.cli.parser import options_from
from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.training.settings import TrainingSettings


class CommandError(ValueError):
    """A user error found by the command line itself (one-line message)."""


def _read_split(args, seed: int, fractions) -> tuple:
    """The pairs of `--data` (a seeded sample of `--max-pairs` of them),
    and their train/validation/test split."""
    from keras_nmt import text

    pairs = text.read_pairs(args.data, reverse=args.reverse)
    if args.max_pairs is not None:
        pairs = text.sample_pairs(pairs, args.max_pairs, seed=seed)
    return pairs, text.split_pairs(pairs, fractions=fractions, seed=seed)


def _streaming_split(args, seed: int, fractions) -> tuple:
    """`--streaming`: the train and test shares of `--data` as
    `StreamingPairs` (read at each use), the validation share a sample in
    memory (unless `--validation-data` gives it)."""
    from keras_nmt import text
    from keras_nmt.training.trainer import STREAMING_VALIDATION_PAIRS

    if args.max_pairs is not None:
        raise CommandError(
            "--max-pairs samples the pairs in memory; --streaming uses "
            "every pair of --data. Drop one of them."
        )
    buffer = (
        {}
        if args.shuffle_buffer is None
        else {"shuffle_buffer": args.shuffle_buffer}
    )
    corpus = text.StreamingPairs(args.data, reverse=args.reverse, **buffer)
    train, validation, test = corpus.split(fractions, seed=seed)
    if args.validation_data is None:
        validation = validation.sample(STREAMING_VALIDATION_PAIRS, seed=seed)
    return train, validation, test


def _train_fractions(args) -> tuple[float, float, float]:
    """The shares of `--data`: a share that comes from its own file goes
    to training."""
    train, validation, test = args.split_fractions
    if args.validation_data is not None:
        train, validation = train + validation, 0.0
    if args.test_data is not None:
        train, test = train + test, 0.0
    return train, validation, test


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


def train(args) -> int:
    settings = options_from(args, TrainingSettings)
    # First: splitting the CPU must happen before TensorFlow's first op.
    if args.cpu_devices is not None:
        _split_cpu(args.cpu_devices)
    from keras_nmt import text
    from keras_nmt.training.trainer import train_translator

    strategy = _strategy(args.strategy)
    fractions = _train_fractions(args)
    if args.streaming:
        train_pairs, validation, test = _streaming_split(
            args, settings.seed, fractions
        )
    elif args.shuffle_buffer is not None:
        raise CommandError("--shuffle-buffer needs --streaming.")
    else:
        pairs, (train_pairs, validation, test) = _read_split(
            args, settings.seed, fractions
        )
    for name in ("validation", "test"):
        path = getattr(args, f"{name}_data")
        if path is not None:
            part = text.read_pairs(path, reverse=args.reverse)
            validation = part if name == "validation" else validation
            test = part if name == "test" else test
    if args.streaming:
        print(
            f"{len(train_pairs.files)} file(s) from {args.data}, streamed: "
            f"the train share read at each epoch, {len(validation)} "
            f"validation pairs in memory (seed {settings.seed})",
            flush=True,
        )
    else:
        print(
            f"{len(pairs)} pairs from {args.data}: {len(train_pairs)} "
            f"train, {len(validation)} validation, {len(test)} test (seed "
            f"{settings.seed})",
            flush=True,
        )
    verbose = args.verbose
    if verbose is None:  # progress bars only where they can be redrawn
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    translator = train_translator(
        train_pairs,
        validation,
        args.out,
        settings,
        resume=args.resume,
        overwrite=args.overwrite,
        strategy=strategy,
        verbose=verbose,
        tensorboard=args.tensorboard,
        data_source={
            "data": str(pathlib.Path(args.data).resolve()),
            "reverse": args.reverse,
            "max_pairs": args.max_pairs,
            "split_fractions": list(fractions),
            "seed": settings.seed,
            **(
                {
                    "streaming": True,
                    "shuffle_buffer": train_pairs.shuffle_buffer,
                }
                if args.streaming
                else {}
            ),
        },
    )
    seconds = time.perf_counter() - start
    print(f"Trained in {seconds:.0f} s; best model saved to {args.out}")
    if len(validation):
        scores = translator.evaluate(validation.sources, validation.targets)
        print(
            f"Validation BLEU {scores['bleu']:.2f} (lowercased "
            f"{scores['bleu_lowercase']:.2f}), exact match "
            f"{scores['exact_match']:.1f}% ({scores['sentences']} sentences, "
            "greedy)"
        )
    return 0


def _load_translator(args):
    from keras_nmt.translator import Translator

    translator = (
        Translator.load_ensemble([args.model, *args.ensemble])
        if getattr(args, "ensemble", None)
        else Translator.load(args.model)
    )
    if getattr(args, "batch_size", None) is not None:
        translator.batch_size = args.batch_size
    if getattr(args, "jit_compile", None) is not None:
        translator.jit_compile = args.jit_compile
    translator.options = options_from(
        args, DecodingOptions, base=translator.options
    )
    # Refuse options that cannot work with this model before reading input.
    translator.translate([])
    return translator


def translate(args) -> int:
    from keras_nmt.cli import streaming

    if args.plot is not None and not args.text:
        raise CommandError("--plot needs at least one TEXT to translate.")
    streaming.check_paths(args)
    translator = _load_translator(args)
    if not args.text:
        return streaming.translate_stream(translator, args)
    sentences = list(args.text)
    n_best = args.n_best is not None
    lines = streaming.translation_lines(translator, sentences, 1, n_best)
    if args.plot is not None:
        text = _plot(translator, sentences[0], args.plot)
        if not n_best:  # the same, except for a new draw of `sample`
            lines[0] = text
    streaming.write_translations(lines, args.output)
    if args.plot is not None:
        print(f"Attention map written to {args.plot}", file=sys.stderr)
    return 0


def _plot(translator, sentence: str, path: str) -> str:
    """Write the attention heatmap of `sentence`; returns its translation
    (the same as `translate`, except for a new draw of `sample`)."""
    from keras_nmt.files import write_atomically
    from keras_nmt.plotting import plot_attention

    result = translator.translate_with_attention(sentence)
    if not result.target_tokens:
        raise CommandError(
            f"--plot: {sentence!r} has no words to translate, so it has no "
            "attention map."
        )
    figure = plot_attention(
        result.attention,
        result.source_tokens,
        result.target_tokens,
        title=result.text,
    )
    suffix = pathlib.Path(path).suffix
    write_atomically(
        path,
        lambda p: figure.savefig(p, dpi=120, format=suffix[1:] or None),
        suffix=suffix,
    )
    return result.text


def _evaluation_split(args, model_dir) -> tuple[str, dict]:
    """The split `evaluate` scores, and the split settings: the model's own
    when --data is the file it was trained on (so the default, test, is
    the part it never saw), else the flags'."""
    from keras_nmt.translator import TRAINING_FILE

    recorded = {}
    path = pathlib.Path(model_dir) / TRAINING_FILE
    if path.is_file():
        with contextlib.suppress(ValueError):
            recorded = (
                json.loads(path.read_text(encoding="utf-8")).get("data_source")
                or {}
            )
    same_file = recorded.get("data") == str(pathlib.Path(args.data).resolve())
    split = args.split or ("test" if same_file else "all")
    if same_file:
        for name in ("reverse", "max_pairs", "seed"):
            if name != "seed" or args.seed is None:
                setattr(args, name, recorded.get(name, getattr(args, name)))
        args.split_fractions = tuple(
            recorded.get("split_fractions", args.split_fractions)
        )
    if args.seed is None:
        args.seed = 0
    return split, {"trained_on_this_file": same_file}


def evaluate(args) -> int:
    translator = _load_translator(args)
    split, described = _evaluation_split(args, args.model)
    pairs, splits = _read_split(args, args.seed, args.split_fractions)
    part = pairs if split == "all" else getattr(splits, split)
    if not len(part):
        raise CommandError(
            f"The {split} split of {args.data} is empty (seed "
            f"{args.seed}); use --split all or a larger file."
        )
    scores = translator.evaluate(
        part.sources, part.targets, lowercase=args.lowercase
    )
    scores.update(
        {
            "model": str(args.model),
            "data": str(args.data),
            "split": split,
            "pairs": len(part),
            **described,
        }
    )
    print(f"BLEU         {scores['bleu_cased']:.2f} (cased)")
    print(f"BLEU         {scores['bleu_lowercase']:.2f} (lowercased)")
    print(
        f"exact match  {scores['exact_match']:.2f}% of "
        f"{scores['sentences']} sentences ({len(part)} pairs, "
        f"{split} split, {scores['method']}"
        f"{', lowercased' if args.lowercase else ''})"
    )
    print(f"sacrebleu    {scores['bleu_signature']}")
    if args.json is not None:
        from keras_nmt.files import write_text_atomically

        write_text_atomically(args.json, json.dumps(scores, indent=2) + "\n")
        print(f"Scores written to {args.json}")
    return 0


def export(args) -> int:
    if args.format == "tflite":
        from keras_nmt.tflite_export import export_tflite

        if args.ensemble:
            raise CommandError(
                "--format tflite exports one model; received --ensemble. "
                "Export the SavedModel for an ensemble."
            )
        export_tflite(
            _load_translator(args),
            args.out,
            method=args.method,
            quantize=args.quantize,
        )
        size = pathlib.Path(args.out).stat().st_size / 2**20
        print(
            f"TFLite model written to {args.out} ({size:.1f} MiB, "
            f"{args.method}{', quantised' if args.quantize else ''}): "
            "input 'source' (1, max_length) int32 token ids, output "
            "'tokens'; run it with keras_nmt.tflite_export.TFLiteTranslator"
        )
        return 0
    if args.quantize or args.method != "greedy":
        raise CommandError(
            "--method and --quantize are options of --format tflite (the "
            "SavedModel has both greedy and beam signatures)."
        )
    from keras_nmt.export import export_saved_model

    export_saved_model(_load_translator(args), args.out)
    print(
        f"SavedModel written to {args.out}: signatures 'translate' (greedy) "
        "and 'translate_beam' (tf.string -> tf.string), and "
        "'translate_n_best' (translations and scores of every beam)"
    )
    return 0


def average(args) -> int:
    from keras_nmt.training.averaging import average_checkpoints

    out = pathlib.Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CommandError(
            f"--out '{out}' exists and is not an empty directory; the "
            "averaged model is written only into a new or empty one."
        )
    average_checkpoints(args.model, last=args.last).save(out)
    print(
        f"Averaged the last {args.last} checkpoints of {args.model} into {out}"
    )
    return 0


def demo(args) -> int:
    from keras_nmt.demo import run_demo

    run_demo(args.out, epochs=args.epochs, max_pairs=args.max_pairs, verbose=2)
    return 0


def serve(args) -> int:
    import signal
    import threading

    from keras_nmt.serving.server import TranslationServer
    from keras_nmt.serving.settings import ServerSettings

    settings = options_from(args, ServerSettings)
    translator = _load_translator(args)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        server = TranslationServer(
            translator,
            settings,
            model_dir=args.model,
            log=None if args.quiet else log,
        )
    except OSError as error:
        raise CommandError(
            f"Cannot listen on {settings.host}:{settings.port} "
            f"({error.strerror or error}); choose another --port (0: any "
            "free port) or --host."
        ) from None

    class Terminated(Exception):
        pass

    def terminate(signum, frame):
        raise Terminated

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with server:
            print(
                f"Serving {args.model} at {server.url} (Ctrl-C to stop)",
                flush=True,
            )
            if not _is_loopback(settings.host):
                log(
                    f"keras-nmt serve: warning: listening on {settings.host}: "
                    "anyone who can reach this machine can use the model (no "
                    "authentication); put it behind a reverse proxy to "
                    "expose it."
                )
            server.serve_forever()
    except Terminated:
        log("keras-nmt serve: stopped (SIGTERM)")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


COMMANDS = {
    "train": train,
    "translate": translate,
    "evaluate": evaluate,
    "export": export,
    "average": average,
    "demo": demo,
    "serve": serve,
}
