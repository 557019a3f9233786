"""Training and decoding speed of the seq2seq models next to a Keras baseline.

    python -m benchmarks.seq2seq [--rounds 3] [--steps 15] [--quick]
    python -m benchmarks.seq2seq --loops [--rounds 3] [--steps 10]

One process, TensorFlow backend, batch 64, source and target length 20,
vocabulary 5000, embedding 256, units 256, LSTM:

- training target-tokens/s of `build_seq2seq(style="bahdanau")` (Bahdanau
  attention) and `style="luong"` (dot attention, no input feeding: one RNN
  pass and one attention call), next to the baseline below, each trained with
  `model.fit` (Keras' default `jit_compile="auto"`, which on a machine
  without a GPU is plain graph mode, no XLA); the models take turns, round
  after round, and the median of the rounds is reported;
- greedy decoding of 64 sources for 50 steps: one compiled loop
  (`Seq2SeqInference.greedy`) vs a Python loop of eager decoder steps;
- beam search, width 5, 50 steps, vs the compiled greedy time;
- both compiled as a `tf.function` (the default) and with XLA
  (`Seq2SeqInference(..., jit_compile=True)`).

`--loops` runs only the comparison of the decoder's time loops, training
through `model.fit`: `keras.ops.scan` (the loop before
`keras_nmt.seq2seq.scan.time_scan`), `time_scan` in graph mode, and
`time_scan` with `model.compile(jit_compile=True)` (XLA), on the Bahdanau
style LSTM above and on the training defaults' model (Luong style, GRU,
Bahdanau attention, residual attentional vector, embedding 128, dropout
0.2): milliseconds per step in
the steady state (the variants alternate, round after round; median of the
rounds), the first call (trace and compilation, one step), and the first
call on a second target length (XLA compiles each batch shape once; graph
mode reuses its trace). The batches have a dynamic shape, as those of
`keras_nmt.text.make_dataset`.

The baseline is the model of the TensorFlow "Neural machine translation with
attention" tutorial, built from Keras built-ins: an Embedding and a
bidirectional GRU encoder (states summed), an Embedding and GRU decoder,
`MultiHeadAttention(num_heads=1)` cross-attention with a residual
connection and LayerNormalization, and a Dense output layer.
"""

import argparse
import contextlib
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_nmt  # noqa: E402
from keras_nmt.seq2seq import Seq2SeqInference  # noqa: E402
from keras_nmt.seq2seq import build_seq2seq  # noqa: E402
from keras_nmt.seq2seq import compile_seq2seq  # noqa: E402

BATCH, LENGTH, VOCAB, EMBEDDING, UNITS = 64, 20, 5000, 256, 256
START = 1


def build_baseline(
    source_vocab_size, target_vocab_size, embedding_dim=256, units=256
):
    """The TensorFlow NMT tutorial's model, from Keras built-ins."""
    source = keras.Input((None,), dtype="int32", name="source_tokens")
    target_in = keras.Input((None,), dtype="int32", name="target_in_tokens")
    x = keras.layers.Embedding(
        source_vocab_size, embedding_dim, mask_zero=True
    )(source)
    context = keras.layers.Bidirectional(
        keras.layers.GRU(units, return_sequences=True), merge_mode="sum"
    )(x)
    y = keras.layers.Embedding(
        target_vocab_size, embedding_dim, mask_zero=True
    )(target_in)
    y = keras.layers.GRU(units, return_sequences=True)(y)
    attended = keras.layers.MultiHeadAttention(num_heads=1, key_dim=units)(
        query=y, value=context
    )
    y = keras.layers.LayerNormalization()(keras.layers.Add()([y, attended]))
    logits = keras.layers.Dense(target_vocab_size)(y)
    return keras.Model([source, target_in], logits, name="baseline")


def baseline_greedy(model, source_tokens, start_token, end_token, max_length):
    """Greedy decoding of the baseline: it has no one-step function, so each
    step re-runs the teacher-forced pass on the prefix (exact, since the
    decoder is causal)."""
    batch = source_tokens.shape[0]
    tokens = np.full((batch, 1), start_token, "int32")
    done = np.zeros(batch, bool)
    for _ in range(max_length):
        logits = ops.convert_to_numpy(
            model.predict_on_batch((source_tokens, tokens))
        )
        nxt = np.where(done, 0, logits[:, -1].argmax(-1)).astype("int32")
        tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
        done |= nxt == end_token
        if done.all():
            break
    return tokens[:, 1:]


def _dataset(rng, batches):
    import tensorflow as tf

    source = rng.integers(1, VOCAB, size=(BATCH * batches, LENGTH))
    target = rng.integers(1, VOCAB, size=(BATCH * batches, LENGTH + 1))
    return (
        tf.data.Dataset.from_tensor_slices(
            ((source, target[:, :-1]), target[:, 1:])
        )
        .batch(BATCH)
        .repeat()
        .prefetch(4)
    )


def _python_greedy(model, source, steps):
    """A Python loop of eager decoder steps: the baseline of decoding."""
    inference = Seq2SeqInference(model, start_token=START, end_token=None)
    state, constants = inference.encode(source)
    tokens = ops.full((source.shape[0],), START, "int32")
    for _ in range(steps):
        logits, _, state = inference.step(tokens, state, constants)
        tokens = ops.cast(ops.argmax(logits, axis=-1), "int32")
    return ops.convert_to_numpy(tokens)


def _time(fn, repeats):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15, help="per round")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--loops",
        action="store_true",
        help="only the time loops: ops.scan vs time_scan vs time_scan + XLA",
    )
    args = parser.parse_args(argv)
    rounds, steps = (1, 3) if args.quick else (args.rounds, args.steps)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    print(
        f"keras-nmt {keras_nmt.__version__}, keras "
        f"{keras.__version__}, backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs; batch {BATCH}, lengths {LENGTH}, vocabulary "
        f"{VOCAB}, embedding {EMBEDDING}, units {UNITS}"
    )
    if args.loops:
        _loops(rng, rounds, steps)
        return
    models = {
        "baseline (tutorial, GRU + MHA)": build_baseline(
            VOCAB, VOCAB, EMBEDDING, UNITS
        ),
        'style="luong", dot, LSTM': build_seq2seq(
            VOCAB,
            VOCAB,
            embedding_dim=EMBEDDING,
            units=UNITS,
            attention="dot",
            style="luong",
        ),
        'style="bahdanau", bahdanau, LSTM': build_seq2seq(
            VOCAB,
            VOCAB,
            embedding_dim=EMBEDDING,
            units=UNITS,
            attention="bahdanau",
            style="bahdanau",
        ),
    }
    dataset = _dataset(rng, 8)
    for model in models.values():
        compile_seq2seq(model)
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    seconds = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    print("\n## Training (model.fit, teacher forcing)\n")
    print("| model | target tokens/s | vs baseline |")
    print("|---|---:|---:|")
    base = None
    for name, times in seconds.items():
        rate = BATCH * LENGTH * steps / statistics.median(times)
        base = base or rate
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")

    print("\n## Decoding 64 sources, 50 steps\n")
    print(
        "| model | compiled as | Python-loop greedy ms | compiled greedy ms "
        "| speed-up | greedy GFLOP/s | beam-5 ms | beam-5 / greedy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    source = ops.convert_to_tensor(
        rng.integers(1, VOCAB, size=(BATCH, LENGTH)), "int32"
    )
    repeats = 1 if args.quick else 3
    for name, model in list(models.items())[1:]:
        python = _time(lambda m=model: _python_greedy(m, source, 50), repeats)
        for jit_compile in (False, True):
            inference = Seq2SeqInference(
                model,
                start_token=START,
                end_token=None,
                max_length=50,
                jit_compile=jit_compile,
            )
            greedy = _time(
                lambda i=inference: ops.convert_to_numpy(
                    i.greedy(source).tokens
                ),
                repeats,
            )
            beam = _time(
                lambda i=inference: ops.convert_to_numpy(
                    i.beam_search(source, beam_width=5).tokens
                ),
                repeats,
            )
            compiled = "XLA" if jit_compile else "tf.function"
            gflops = 50 * _step_flops(model, BATCH, LENGTH) / greedy / 1e9
            print(
                f"| {name} | {compiled} | {python * 1e3:.0f} | "
                f"{greedy * 1e3:.0f} | {python / greedy:.1f}x | "
                f"{gflops:.0f} | {beam * 1e3:.0f} | {beam / greedy:.2f} |",
                flush=True,
            )
    print(
        "\nGFLOP/s: the matmul FLOPs of 50 decoder steps (LSTM cell, "
        "attention projections, output layer over the vocabulary, scores and "
        "context) over the compiled greedy time; the output layer is most of "
        "them, so the loop is compute-bound and beam-5 (5x the rows) costs "
        "up to 5x greedy."
    )


@contextlib.contextmanager
def _ops_scan_loops():
    """The decoder's time loops traced with `keras.ops.scan`, as before
    `time_scan`."""
    from keras_nmt.seq2seq import decoder

    saved = decoder.time_scan
    decoder.time_scan = ops.scan
    try:
        yield
    finally:
        decoder.time_scan = saved


def _dynamic_dataset(rng, length, batches=4):
    """Batches of `length` target tokens, with the dynamic shape
    `(None, None)` of bucketed datasets."""
    import tensorflow as tf

    data = []
    for _ in range(batches):
        source = rng.integers(1, VOCAB, size=(BATCH, LENGTH), dtype="int32")
        target = rng.integers(1, VOCAB, size=(BATCH, length + 1), dtype="int32")
        data.append(((source, target[:, :-1]), target[:, 1:]))
    spec = tf.TensorSpec((None, None), "int32")
    return tf.data.Dataset.from_generator(
        lambda: iter(data), output_signature=((spec, spec), spec)
    ).repeat()


LOOP_MODELS = {
    'style="bahdanau", bahdanau, LSTM, embedding 256': dict(
        embedding_dim=EMBEDDING, attention="bahdanau", style="bahdanau"
    ),
    'defaults: style="luong", bahdanau, GRU, residual, embedding 128, '
    "dropout 0.2": dict(
        embedding_dim=128,
        attention="bahdanau",
        style="luong",
        cell="gru",
        dropout=0.2,
        attentional="residual",
    ),
}
LOOP_VARIANTS = ("ops.scan (graph)", "time_scan (graph)", "time_scan + XLA")


def _loops(rng, rounds, steps):
    """`--loops`: see the module docstring."""
    dataset = _dynamic_dataset(rng, LENGTH)
    second = _dynamic_dataset(rng, LENGTH // 2 + 2)
    runs, first, first_second, failed = {}, {}, {}, {}
    for model_name, options in LOOP_MODELS.items():
        for variant in LOOP_VARIANTS:
            key = (model_name, variant)
            keras.utils.set_random_seed(0)
            model = build_seq2seq(VOCAB, VOCAB, units=UNITS, **options)
            compile_seq2seq(model, jit_compile=variant.endswith("XLA"))
            try:
                with _loop_scope(variant):
                    first[key] = _fit_seconds(model, dataset, 1, False)
                    first_second[key] = _fit_seconds(model, second, 1, False)
            except Exception as error:  # noqa: BLE001 (reported in the table)
                detail = " ".join(str(error).split())[:150]
                failed[key] = f"{type(error).__name__}: {detail}"
                continue
            runs[key] = model
            print(f"compiled {model_name} / {variant}", flush=True)
    seconds = {key: [] for key in runs}
    for _ in range(rounds):
        for key, model in runs.items():
            with _loop_scope(key[1]):
                seconds[key].append(_fit_seconds(model, dataset, steps))
    print(
        "\n## Time loop, training through model.fit "
        f"(B={BATCH}, T={LENGTH}, V={VOCAB}, units {UNITS})\n"
    )
    print(
        "| model | loop | ms/step | vs ops.scan | first call s "
        f"| first call at T={LENGTH // 2 + 2} s |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for model_name in LOOP_MODELS:
        base = None
        for variant in LOOP_VARIANTS:
            key = (model_name, variant)
            if key in failed:
                print(f"| {model_name} | {variant} | fails: {failed[key]} |")
                continue
            ms = statistics.median(seconds[key]) / steps * 1e3
            base = base or ms
            print(
                f"| {model_name} | {variant} | {ms:.0f} | {base / ms:.2f}x "
                f"| {first[key]:.1f} | {first_second[key]:.1f} |",
                flush=True,
            )
    print(
        "\nms/step: median over the rounds of `fit` on "
        f"{steps} steps, from the first step to the end of the epoch; "
        "first call: `fit` on one step of a new model "
        "(tracing and, with XLA, compiling included); first call at "
        f"T={LENGTH // 2 + 2}: one step on the first batch of a second "
        "target length (XLA compiles each new batch shape once)."
    )


def _loop_scope(variant):
    if variant.startswith("ops.scan"):
        return _ops_scan_loops()
    return contextlib.nullcontext()


class _Clock(keras.callbacks.Callback):
    """The end of the epoch: a `fit` call here sometimes stalls up to ~2.5 s
    after it (on_train_end), which would swamp a few steps' time."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.first_step = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.end = time.perf_counter()


def _fit_seconds(model, dataset, steps, from_first_step=True):
    """Seconds of `fit` on `steps` steps: from its first step (or from the
    call, with tracing and compiling) to the end of its epoch."""
    clock = _Clock()
    start = time.perf_counter()
    model.fit(
        dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock]
    )
    return clock.end - (clock.first_step if from_first_step else start)


def _step_flops(model, batch, source_length):
    """Matmul FLOPs of one decoder step (of `batch` rows)."""
    flops = 0
    for weight in model.get_layer("decoder").weights:
        # Embeddings are lookups; the bridge and the key projection run once
        # per source.
        once = ("embedding", "bridge", "key_dense")
        if len(weight.shape) == 2 and not any(n in weight.path for n in once):
            flops += 2 * batch * weight.shape[0] * weight.shape[1]
    # Scores against and mixing of the encoder states (depth = units).
    return flops + 2 * 2 * batch * source_length * UNITS


if __name__ == "__main__":
    main()
