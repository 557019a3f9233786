"""Training and decoding speed next to TensorFlow Addons' `tfa.seq2seq`.

    make bench-tfa
    python -m benchmarks.tfa_baseline [--rounds 5] [--steps 10]
        [--repeats 3] [--quick] [--output FILE]

The model of tfa's classic setup, on both sides: a bidirectional LSTM
encoder (128 units per direction), an LSTM(256) decoder with Bahdanau
attention(256), batch 64, source and target length 20, vocabulary 5,000,
embedding 256, random tokens (fixed seed, no padding).

- tfa (TensorFlow 2.15.1, tensorflow-addons 0.23.0, Keras 2.15, in the
  separate virtual environment `.venv-tfa`): `tfa.seq2seq.BahdanauAttention`
  in an `AttentionWrapper(LSTMCell(256), attention_layer_size=256)` and a
  Dense output layer; training with `BasicDecoder` and `TrainingSampler`,
  greedy decoding with `GreedyEmbeddingSampler`, beam search with
  `BeamSearchDecoder` (width 5) on `tile_batch`-ed encoder outputs, each
  decoder in one `tf.function`.
- ours (this package, Keras 3 on TensorFlow 2.21, `.venv`):
  `build_seq2seq(style="bahdanau", attention="bahdanau", cell="lstm")`; as
  extra rows `style="luong", input_feeding=True` (with Bahdanau attention:
  the size-matched equivalent of the AttentionWrapper) and the Bahdanau
  style with the deep output `readout_units=256`. Decoding through
  `Seq2SeqInference`, as a `tf.function` (graph) and with XLA.

Rows: target tokens/s of training through `model.fit` (Adam, masked
cross-entropy and accuracy) and through a custom `tf.function` train step
(GradientTape, Adam), the fit time taken from its first step to the end of
its epoch (a callback); greedy decoding of 64 sources for 50 steps; beam search
of width 5 for 50 steps (no end token: every step runs). The first call of
each (tracing, compiling and one call; for training one step) is reported
apart from the steady state.

Each side runs in its own process (the two TensorFlow versions cannot share
one) and waits while the other measures: round after round, ours and tfa
take turns at training, then at decoding, and which side goes first
alternates. A ratio is ours / tfa speed (> 1: ours is faster), the median of
the per-round ratios, with their range.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, LENGTH, VOCAB, EMBEDDING, UNITS = 64, 20, 5000, 256, 256
START = 1
BEAM = 5
REPO = Path(__file__).resolve().parents[1]
TFA_PYTHON = REPO / ".venv-tfa" / "bin" / "python"
MARK = "@tfa_baseline "

# Our models: label -> build_seq2seq options (besides the common sizes).
OURS = {
    'style="bahdanau"': {"style": "bahdanau"},
    'style="luong", input_feeding=True': {
        "style": "luong",
        "input_feeding": True,
    },
    'style="bahdanau", readout_units=256': {
        "style": "bahdanau",
        "readout_units": 256,
    },
}
TFA = "tfa AttentionWrapper"
# Measurement -> (group, the tfa measurement it is compared with).
MEASURES = {
    "fit": ("train", "fit"),
    "fit_xla": ("train", "fit"),
    "train_step": ("train", "train_step"),
    "greedy": ("decode", "greedy"),
    "greedy_xla": ("decode", "greedy"),
    "beam": ("decode", "beam"),
    "beam_xla": ("decode", "beam"),
}
TITLES = {
    "fit": "training, `model.fit` (target tokens/s)",
    "fit_xla": "training, `model.fit`, ours XLA (target tokens/s)",
    "train_step": "training, custom `tf.function` step (target tokens/s)",
    "greedy": "greedy, 64 x 50 steps, graph (ms)",
    "greedy_xla": "greedy, 64 x 50 steps, ours XLA (ms)",
    "beam": f"beam {BEAM}, 64 x 50 steps, graph (ms)",
    "beam_xla": f"beam {BEAM}, 64 x 50 steps, ours XLA (ms)",
}


# ---- data (the same draws on both sides) ------------------------------------


def _token_arrays(batches):
    """Training sources, targets and the decoding sources, as in
    `benchmarks.seq2seq._dataset` (the same draws of a `default_rng(0)`)."""
    import numpy as np

    rng = np.random.default_rng(0)
    source = rng.integers(1, VOCAB, size=(BATCH * batches, LENGTH))
    target = rng.integers(1, VOCAB, size=(BATCH * batches, LENGTH + 1))
    decode = np.random.default_rng(1).integers(1, VOCAB, (BATCH, LENGTH))
    return source, target, decode.astype("int32")


def _tf_dataset(source, target):
    # The pipeline of `benchmarks.seq2seq._dataset`, repeated: the tfa side
    # runs in .venv-tfa, which has neither keras_nmt nor Keras 3 to import
    # that module with.
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices(
            ((source, target[:, :-1]), target[:, 1:])
        )
        .batch(BATCH)
        .repeat()
        .prefetch(4)
    )


class Elapsed(float):
    """Seconds a runner measured itself (of the steady part of its call)."""


def _fit_steps(keras, model, dataset):
    """`run(n)`: one `model.fit` call of n steps; its `Elapsed` seconds from
    the first step's start to the end of the epoch. They leave out the
    call's own start and end: after `on_train_end`, a `fit` call here
    sometimes stalls for up to ~2.5 s before it returns (both Keras 2.15 and
    3.15, a cost per call, not per step), which made the totals of short
    calls snap to the same values."""

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.end = time.perf_counter()

    clock = Clock()

    def run(n):
        model.fit(
            dataset, steps_per_epoch=n, epochs=1, verbose=0, callbacks=[clock]
        )
        return Elapsed(clock.end - clock.start)

    return run


def _custom_steps(tf, model, dataset, loss_fn, optimizer):
    """`run(n)`: n steps of a custom `tf.function` train step."""

    @tf.function
    def train_step(source, target_in, target_out):
        with tf.GradientTape() as tape:
            logits = model((source, target_in), training=True)
            loss = loss_fn(target_out, logits)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    batches = iter(dataset)

    def run(n):
        for _ in range(n):
            (source, target_in), target_out = next(batches)
            loss = train_step(source, target_in, target_out)
        return float(loss)

    return run


# ---- ours -------------------------------------------------------------------


def _ours(args):
    """label -> {measure: run(n)}, and a description of the side."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import ops

    import keras_nmt
    from benchmarks import seq2seq as bench
    from keras_nmt.seq2seq import Seq2SeqInference
    from keras_nmt.seq2seq import build_seq2seq
    from keras_nmt.seq2seq import compile_seq2seq

    ours = (bench.BATCH, bench.LENGTH, bench.VOCAB, bench.EMBEDDING)
    if ours + (bench.UNITS,) != (BATCH, LENGTH, VOCAB, EMBEDDING, UNITS):
        raise ValueError(
            "benchmarks.tfa_baseline: benchmarks.seq2seq's sizes changed "
            f"({ours + (bench.UNITS,)}); the tfa side has {BATCH, LENGTH}, "
            f"{VOCAB, EMBEDDING, UNITS}. Update the constants of both."
        )
    keras.utils.set_random_seed(0)
    # Our dataset comes from benchmarks.seq2seq; the tfa side draws the same.
    dataset = bench._dataset(np.random.default_rng(0), 8)
    source = ops.convert_to_tensor(_token_arrays(1)[2], "int32")
    runners, params = {}, {}
    for label, options in OURS.items():

        def build(jit_compile, options=options):
            model = build_seq2seq(
                VOCAB,
                VOCAB,
                embedding_dim=EMBEDDING,
                units=UNITS,
                attention="bahdanau",
                cell="lstm",
                **options,
            )
            return compile_seq2seq(model, jit_compile=jit_compile)

        # Keras turns XLA off for `fit` on a CPU-only machine unless asked.
        model = build(jit_compile=False)
        params[label] = model.count_params()
        loss_fn = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        )
        optimizer = keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
        run = {
            "fit": _fit_steps(keras, model, dataset),
            "fit_xla": _fit_steps(keras, build(jit_compile=True), dataset),
            "train_step": _custom_steps(tf, model, dataset, loss_fn, optimizer),
        }
        for jit_compile, suffix in ((False, ""), (True, "_xla")):
            inference = Seq2SeqInference(
                model,
                start_token=START,
                end_token=None,
                max_length=args.max_length,
                jit_compile=jit_compile,
            )
            run["greedy" + suffix] = lambda n, i=inference: _shape(
                ops.convert_to_numpy(i.greedy(source).tokens)
            )
            run["beam" + suffix] = lambda n, i=inference: _shape(
                ops.convert_to_numpy(
                    i.beam_search(source, beam_width=BEAM).tokens
                )
            )
        runners[label] = run
    about = (
        f"keras-nmt {keras_nmt.__version__}, Keras {keras.__version__}, "
        f"TensorFlow {tf.__version__}"
    )
    return runners, about, params


# ---- tfa --------------------------------------------------------------------


def _tfa(args):
    """{TFA: {measure: run(n)}}, its description and parameter count."""
    from importlib.metadata import version

    import tensorflow as tf
    import tensorflow_addons as tfa

    keras = tf.keras
    tf.keras.utils.set_random_seed(0)

    class TfaSeq2Seq(keras.Model):
        """tfa's classic encoder-decoder (the TensorFlow Addons NMT
        tutorial's, with a bidirectional encoder)."""

        def __init__(self):
            super().__init__()
            self.source_embedding = keras.layers.Embedding(
                VOCAB, EMBEDDING, mask_zero=True
            )
            self.encoder_rnn = keras.layers.Bidirectional(
                keras.layers.LSTM(
                    UNITS // 2, return_sequences=True, return_state=True
                )
            )
            self.target_embedding = keras.layers.Embedding(VOCAB, EMBEDDING)
            self.attention = tfa.seq2seq.BahdanauAttention(UNITS)
            self.cell = tfa.seq2seq.AttentionWrapper(
                keras.layers.LSTMCell(UNITS),
                self.attention,
                attention_layer_size=UNITS,
            )
            self.output_layer = keras.layers.Dense(VOCAB)
            self.train_decoder = tfa.seq2seq.BasicDecoder(
                self.cell,
                tfa.seq2seq.TrainingSampler(),
                output_layer=self.output_layer,
            )
            self.greedy_decoder = tfa.seq2seq.BasicDecoder(
                self.cell,
                tfa.seq2seq.GreedyEmbeddingSampler(),
                output_layer=self.output_layer,
                maximum_iterations=args.max_length,
            )
            self.beam_decoder = tfa.seq2seq.BeamSearchDecoder(
                self.cell,
                beam_width=BEAM,
                output_layer=self.output_layer,
                maximum_iterations=args.max_length,
                length_penalty_weight=0.0,
            )

        def start(self, source, training=False, beam_width=None):
            """The encoder, the attention memory and the initial state."""
            embedded = self.source_embedding(source)
            mask = self.source_embedding.compute_mask(source)
            outputs, h_fw, c_fw, h_bw, c_bw = self.encoder_rnn(
                embedded, mask=mask, training=training
            )
            lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
            state = [tf.concat([h_fw, h_bw], -1), tf.concat([c_fw, c_bw], -1)]
            if beam_width:
                outputs, lengths, state = tfa.seq2seq.tile_batch(
                    (outputs, lengths, state), beam_width
                )
            self.attention.setup_memory(outputs, memory_sequence_length=lengths)
            initial = self.cell.get_initial_state(
                batch_size=tf.shape(outputs)[0], dtype=tf.float32
            )
            return initial.clone(cell_state=state)

        def call(self, inputs, training=False):
            source, target_in = inputs
            initial = self.start(source, training)
            lengths = tf.reduce_sum(tf.cast(target_in != 0, tf.int32), 1)
            outputs, _, _ = self.train_decoder(
                self.target_embedding(target_in),
                initial_state=initial,
                sequence_length=lengths,
                training=training,
            )
            return outputs.rnn_output

    model = TfaSeq2Seq()
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    train_source, target, decode = _token_arrays(8)
    dataset = _tf_dataset(train_source, target)
    source = tf.constant(decode)
    start = tf.fill([BATCH], START)
    # No end token (never generated): every step runs, as on our side.
    end = -1

    @tf.function
    def greedy(source):
        outputs, _, _ = model.greedy_decoder(
            model.target_embedding.embeddings,
            start_tokens=start,
            end_token=end,
            initial_state=model.start(source),
        )
        return outputs.sample_id

    @tf.function
    def beam(source):
        outputs, _, _ = model.beam_decoder(
            model.target_embedding.embeddings,
            start_tokens=start,
            end_token=end,
            initial_state=model.start(source, beam_width=BEAM),
        )
        return outputs.predicted_ids

    run = {"fit": _fit_steps(keras, model, dataset)}
    run["train_step"] = _custom_steps(
        tf,
        model,
        dataset,
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
        keras.optimizers.Adam(),
    )
    run["greedy"] = lambda n: _shape(greedy(source).numpy())
    # (batch, steps, beam) -> (batch, beam, steps), as ours.
    run["beam"] = lambda n: _shape(beam(source).numpy().transpose(0, 2, 1))
    about = (
        f"TensorFlow {tf.__version__}, tensorflow-addons {tfa.__version__}, "
        f"Keras {version('keras')}"
    )
    return {TFA: run}, about, model


def _shape(tokens):
    """Decoded tokens as their shape (the check that every step ran)."""
    return list(tokens.shape)


# ---- a side's process -------------------------------------------------------


def _timed(fn, n, wall=False):
    """Seconds of `fn(n)` (those it measured itself unless `wall`), and
    its result."""
    start = time.perf_counter()
    out = fn(n)
    seconds = time.perf_counter() - start
    if isinstance(out, Elapsed) and not wall:
        return float(out), out
    return seconds, out


def _serve(args):
    """One side: builds its models, then answers the orchestrator's
    commands (a JSON line each on stdin) with a marked JSON line."""
    reply = sys.stdout
    sys.stdout = sys.stderr  # anything else printed stays off the channel
    if args.side == "tfa":
        runners, about, model = _tfa(args)
        params = None
    else:
        runners, about, params = _ours(args)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        if command["cmd"] == "first":
            # The first call of each (trace / compile), then one more to
            # leave nothing lazy for the rounds.
            result, shapes = {}, {}
            for label, run in runners.items():
                result[label] = {}
                for name, fn in run.items():
                    result[label][name], shapes[f"{label} {name}"] = _timed(
                        fn, 1, wall=True
                    )
                    fn(1)
            if params is None:
                params = {TFA: model.count_params()}
            result = {
                "first": result,
                "about": about,
                "params": params,
                "shapes": {k: v for k, v in shapes.items() if type(v) is list},
            }
        else:
            group, steps, repeats = (
                command["group"],
                command["steps"],
                command["repeats"],
            )
            result = {}
            for label, run in runners.items():
                result[label] = {}
                for name, fn in run.items():
                    if MEASURES[name][0] != group:
                        continue
                    if group == "train":
                        result[label][name] = _timed(fn, steps)[0]
                    else:
                        result[label][name] = statistics.median(
                            _timed(fn, 1)[0] for _ in range(repeats)
                        )
        reply.write(MARK + json.dumps(result) + "\n")
        reply.flush()


class _Side:
    """A side's process, driven through its stdin and stdout."""

    def __init__(self, name, python, args, log_dir):
        self.name = name
        self.log = Path(log_dir) / f"{name}.log"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
        if name == "tfa":
            env.pop("KERAS_BACKEND", None)
        else:
            env["KERAS_BACKEND"] = "tensorflow"
        command = [
            str(python),
            "-m",
            "benchmarks.tfa_baseline",
            "--side",
            name,
            "--max-length",
            str(args.max_length),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )

    def ask(self, **command):
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                if line.startswith(MARK):
                    return json.loads(line[len(MARK) :])
        except BrokenPipeError:
            pass
        tail = self.log.read_text().splitlines()[-30:]
        raise RuntimeError(
            f"benchmarks.tfa_baseline: the {self.name} side stopped "
            f"(exit code {self.process.wait()}); the end of its log:\n"
            + "\n".join(tail)
        )

    def close(self):
        try:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---- the table --------------------------------------------------------------


def ratios(ours, tfa):
    """ours / tfa speed per round (tfa seconds / our seconds), from the
    seconds of the same work in each round."""
    return [t / o for o, t in zip(ours, tfa, strict=True)]


def _speed(seconds, name, steps):
    """A row's number: target tokens/s for training, ms for decoding."""
    if MEASURES[name][0] == "train":
        return f"{BATCH * LENGTH * steps / seconds:,.0f}"
    return f"{seconds * 1e3:,.0f}"


def _ratio_cell(values):
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f}x"
    return f"{median:.2f}x ({min(values):.2f}-{max(values):.2f})"


def format_table(rounds, steps):
    """The markdown table of the steady state from the rounds' seconds.

    `rounds`: {side label: {measure: [seconds per round]}}, ours under
    `OURS`' labels and tfa under `TFA`; `steps`: training steps per round.
    """
    lines = [
        "| task | ours | ours | tfa | ours/tfa speed |",
        "|---|---|---:|---:|---:|",
    ]
    for name, (_, tfa_name) in MEASURES.items():
        tfa = rounds.get(TFA, {}).get(tfa_name)
        for label in OURS:
            ours = rounds.get(label, {}).get(name)
            if ours is None or tfa is None:
                continue
            lines.append(
                f"| {TITLES[name]} | {label} | "
                f"{_speed(statistics.median(ours), name, steps)} | "
                f"{_speed(statistics.median(tfa), tfa_name, steps)} | "
                f"{_ratio_cell(ratios(ours, tfa))} |"
            )
    return "\n".join(lines)


def format_first_calls(first):
    """The markdown table of first-call seconds: {label: {measure: s}}."""
    labels = [label for label in (*OURS, TFA) if label in first]
    lines = [
        "| first call (s) | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for name in MEASURES:
        cells = [
            f"{first[label][name]:.1f}" if name in first[label] else "-"
            for label in labels
        ]
        lines.append(f"| {TITLES[name].split(' (')[0]} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _revision():
    """The commit measured, and whether the package had uncommitted
    changes."""

    def git(*command):
        return subprocess.run(
            ["git", "-C", str(REPO), *command],
            capture_output=True,
            text=True,
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "an unknown commit"
    if git("status", "--porcelain", "--", "keras_nmt", "benchmarks"):
        return f"{commit} with uncommitted changes"
    return commit


def _orchestrate(args):
    rounds, steps, repeats = args.rounds, args.steps, args.repeats
    if args.quick:
        rounds, steps, repeats = 1, 2, 1
    if not Path(args.tfa_python).is_file():
        raise SystemExit(
            f"benchmarks.tfa_baseline: no {args.tfa_python}. Create the tfa "
            "environment with `make bench-tfa` (or: python3.11 -m venv "
            ".venv-tfa && .venv-tfa/bin/pip install tensorflow==2.15.1 "
            "tensorflow-addons==0.23.0)."
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfa-baseline-") as logs:
        sides = {}
        try:
            sides["ours"] = _Side("ours", sys.executable, args, logs)
            sides["tfa"] = _Side("tfa", args.tfa_python, args, logs)
            # The first calls one side at a time, as the rounds.
            info = {name: side.ask(cmd="first") for name, side in sides.items()}
            seconds = {}
            for r in range(rounds):
                order = ["ours", "tfa"] if r % 2 == 0 else ["tfa", "ours"]
                for group in ("train", "decode"):
                    for name in order:
                        got = sides[name].ask(
                            cmd="measure",
                            group=group,
                            steps=steps,
                            repeats=repeats,
                        )
                        for label, times in got.items():
                            for measure, value in times.items():
                                seconds.setdefault(label, {}).setdefault(
                                    measure, []
                                ).append(value)
                print(f"round {r + 1}/{rounds} done", file=sys.stderr)
        finally:
            for side in sides.values():
                side.close()
    first = {**info["ours"]["first"], **info["tfa"]["first"]}
    params = {**info["ours"]["params"], **info["tfa"]["params"]}
    shapes = {**info["ours"]["shapes"], **info["tfa"]["shapes"]}
    expected = {(BATCH, args.max_length), (BATCH, BEAM, args.max_length)}
    wrong = {k: v for k, v in shapes.items() if tuple(v) not in expected}
    if wrong:
        raise RuntimeError(f"decoders did not run every step: {wrong}")
    command = " ".join(
        ["python -m benchmarks.tfa_baseline", *map(shlex.quote, args.argv)]
    )
    report = "\n".join(
        [
            "# keras-nmt against TensorFlow Addons (`tfa.seq2seq`)",
            "",
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
            f"UTC, {os.cpu_count()} CPUs ({platform.machine()}), "
            f"`{command}`, {time.perf_counter() - started:.0f} s.",
            "",
            f"- ours: {info['ours']['about']}, at {_revision()}",
            f"- tfa: {info['tfa']['about']}",
            f"- bi-LSTM encoder, LSTM({UNITS}) decoder, Bahdanau "
            f"attention({UNITS}), batch {BATCH}, lengths {LENGTH}, "
            f"vocabulary {VOCAB:,}, embedding {EMBEDDING}; parameters: "
            + ", ".join(f"{k} {v:,}" for k, v in params.items()),
            f"- {rounds} rounds, ours and tfa alternating (the side going "
            f"first alternates too); training: {steps} steps per round "
            "(`model.fit`: timed from its first step to the end of the "
            "epoch, leaving out a per-call stall of up to ~2.5 s that both "
            "Keras versions show after `on_train_end`); "
            f"decoding: the median of {repeats} calls per round, "
            f"{args.max_length} steps each (no end token); ours/tfa speed: "
            "the median of the per-round ratios (their range), > 1: ours is "
            "faster. tfa trains and decodes in graph mode (`tf.function`), "
            "ours both in graph mode and with XLA.",
            "",
            format_table(seconds, steps),
            "",
            "First calls (tracing and compiling, then one call; for training "
            "one step), seconds:",
            "",
            format_first_calls(first),
            "",
        ]
    )
    print(report)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"seconds": seconds, "first": first}, indent=1)
        )
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report)
        print(f"written to {output}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=10, help="training steps per round"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="decoding calls per round"
    )
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--output", help="also write the report there")
    parser.add_argument("--json", help="write the seconds of every round")
    parser.add_argument("--tfa-python", default=str(TFA_PYTHON))
    parser.add_argument(
        "--side", choices=("ours", "tfa"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.side:
        _serve(args)
    else:
        _orchestrate(args)


if __name__ == "__main__":
    main()
