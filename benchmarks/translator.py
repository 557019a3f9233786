"""The Translator on a realistic mix of sentence lengths, next to the old way
of decoding (issue 12).

    python -m benchmarks.translator [--model DIR] [--epochs 4] \
        [--sentences 2000] [--rounds 3] [--latency-calls 50] \
        [--memory-sentences 20000] [--data FILE] [--json FILE]

The translator: `--model DIR` (from `Translator.save` or `keras-nmt
train`), or by default the demo's architecture (`keras_nmt.demo
.DEMO_SETTINGS`: Luong-style GRU decoder with additive attention, 256-d
embeddings, 512 units, sources of at most 24 tokens) trained for `--epochs`
epochs on the embedded demo corpus. Test sentences: `--sentences` sources
sampled with `keras_nmt.text.sample_pairs` (seed 0) from `--data` (default:
`../shared/data/spa-eng/spa.txt`, 118,964 Tatoeba pairs in their natural
mix of lengths, when it exists; else the embedded demo corpus).

Engines, in one process, taking turns round after round (median of the
rounds reported), strings in and strings out:

- old: the Translator before issue 12, rebuilt here from
  `Seq2SeqInference`: sentences in input order, 64 at a time, every call
  padded to 64 rows and `processor.max_length` columns, a `tf.function`
  graph (no XLA);
- old, rows bucketed: the same with the rows of a call padded to the next
  power of two only (what the Translator did just before this change: for
  one-sentence calls);
- old at batch 128: the same at the new default batch size (throughput);
- new: `Translator()` at its default batch size (128): sorted by length,
  each batch padded to the length bucket of its longest sentence and its
  rows to the next power of two; as a plain graph (`jit_compile=False`)
  and with XLA (`jit_compile=True`, the default).

Measured: throughput (sentences/s) over the test sentences, greedy and
beam 5 (length penalty 0.6); single-sentence latency (median of
`--latency-calls` one-sentence calls, test sentences in turn, after a
warm-up); the first call of a fresh engine on the test sentences (tracing
or XLA compilation included) next to its later calls; and, each in a fresh
subprocess, the peak RSS of translating `--memory-sentences` sentences
greedily: the process' (`resource.getrusage`, loading TensorFlow and the
model included), and the peak while translating (`VmHWM` after resetting
it through `/proc/self/clear_refs` once the model is loaded and traced).
The old way's translations are checked to equal the new way's.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_nmt  # noqa: E402
from keras_nmt import text  # noqa: E402
from keras_nmt.demo import DEMO_SETTINGS  # noqa: E402
from keras_nmt.seq2seq import Seq2SeqInference  # noqa: E402
from keras_nmt.translator import Translator  # noqa: E402

SPA_TXT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "spa-eng"
    / "spa.txt"
)
OLD_BATCH = 64
BEAM = {"method": "beam", "beam_width": 5, "length_penalty": 0.6}
METHODS = {"greedy": {"method": "greedy"}, "beam 5": BEAM}


class OldTranslator:
    """The Translator's decoding before issue 12: input order, `batch`
    sentences per call, every source padded to `processor.max_length`
    columns, and every call to `batch` rows (or, with `bucket_rows`, to
    the next power of two of its sentences)."""

    def __init__(self, translator, *, batch=OLD_BATCH, bucket_rows=False):
        self.processor = translator.processor
        self.batch = batch
        self.bucket_rows = bucket_rows
        self.inference = Seq2SeqInference(
            translator.model,
            start_token=self.processor.start_id,
            end_token=self.processor.end_id,
            max_length=translator.max_length,
        )

    def translate(self, sentences, method="greedy", **options):
        ids = self.processor.source.tokenize_ragged(sentences).to_list()
        out = [""] * len(sentences)
        todo = [i for i, row in enumerate(ids) if len(row) > 2]
        for begin in range(0, len(todo), self.batch):
            chunk = todo[begin : begin + self.batch]
            rows = self.batch
            if self.bucket_rows:
                rows = min(self.batch, 1 << (len(chunk) - 1).bit_length())
            source = np.zeros((rows, self.processor.max_length), "int32")
            for j, i in enumerate(chunk):
                source[j, : len(ids[i])] = ids[i]
            source[len(chunk) :] = source[len(chunk) - 1]
            if method == "beam":
                tokens = self.inference.beam_search(source, **options).tokens
                tokens = keras.ops.convert_to_numpy(tokens)[:, 0]
            else:
                tokens = self.inference.greedy(source).tokens
                tokens = keras.ops.convert_to_numpy(tokens)
            texts = self.processor.target.detokenize(tokens[: len(chunk)])
            for j, i in enumerate(chunk):
                out[i] = texts[j]
        return out


def _translator(args) -> Translator:
    if args.model:
        return Translator.load(args.model)
    from keras_nmt.training.trainer import train_translator

    splits = text.split_pairs(text.load_demo_pairs(), seed=DEMO_SETTINGS.seed)
    start = time.perf_counter()
    translator = train_translator(
        splits.train,
        splits.validation,
        pathlib.Path(args.out) / "model",
        DEMO_SETTINGS.replace(epochs=args.epochs),
        overwrite=True,
        verbose=0,
    )
    print(
        f"trained the demo model {args.epochs} epochs in "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return translator


def _sentences(args, n: int) -> list[str]:
    path = args.data or (SPA_TXT if SPA_TXT.is_file() else None)
    pairs = text.read_pairs(path) if path else text.load_demo_pairs()
    if n > len(pairs):
        repeats = -(-n // len(pairs))
        sources = list(pairs.sources) * repeats
        return sources[:n]
    return list(text.sample_pairs(pairs, n, seed=0).sources)


def _engines(translator, names=None):
    """Makers of the engines, by name (all, or those in `names`)."""
    model, processor = translator.model, translator.processor

    def new(jit_compile):
        return Translator(model, processor, jit_compile=jit_compile)

    batch = Translator(model, processor).batch_size
    engines = {
        "old (64 rows, full length)": lambda: OldTranslator(translator),
        "old, rows bucketed": lambda: OldTranslator(
            translator, bucket_rows=True
        ),
        f"old at batch {batch}": lambda: OldTranslator(
            translator, batch=batch, bucket_rows=True
        ),
        f"new (batch {batch}, graph)": lambda: new(False),
        f"new (batch {batch}, XLA)": lambda: new(True),
    }
    return {
        name: make
        for name, make in engines.items()
        if names is None or any(name.startswith(n) for n in names)
    }


THROUGHPUT = ("old (64", "old at", "new")
LATENCY = ("old (64", "old, rows", "new")
MEMORY = ("old (64", "new")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _throughput(engines, sentences, rounds):
    """`{method: {engine: (first-call s, median later s, outputs)}}`."""
    results = {}
    for method, options in METHODS.items():
        first, outputs = {}, {}
        for name, engine in engines.items():
            first[name], outputs[name] = _timed(
                lambda e=engine, o=options: e.translate(sentences, **o)
            )
        times = {name: [] for name in engines}
        for _ in range(rounds):
            for name, engine in engines.items():
                seconds, _ = _timed(
                    lambda e=engine, o=options: e.translate(sentences, **o)
                )
                times[name].append(seconds)
        results[method] = {
            name: (first[name], statistics.median(times[name]), outputs[name])
            for name in engines
        }
    return results


def _latency(make_engines, sentences, calls):
    """`{method: {engine: (first call s, median s)}}` of one-sentence
    calls: the first call of a fresh engine (tracing or compiling the
    shape of `sentences[0]`), then, after one warm-up call per sentence,
    the median of `calls` calls, the engines taking turns on each
    sentence."""
    results = {}
    for method, options in METHODS.items():
        engines = make_engines()
        first = {}
        for name, engine in engines.items():
            first[name], _ = _timed(
                lambda e=engine, o=options: e.translate(sentences[:1], **o)
            )
            for sentence in sentences:
                engine.translate([sentence], **options)
        times = {name: [] for name in engines}
        for call in range(calls):
            sentence = sentences[call % len(sentences)]
            for name, engine in engines.items():
                seconds, _ = _timed(
                    lambda e=engine, s=sentence, o=options: e.translate(
                        [s], **o
                    )
                )
                times[name].append(seconds)
        results[method] = {
            name: (first[name], statistics.median(t))
            for name, t in times.items()
        }
    return results


def _memory(args, engine: str) -> dict:
    """Peak RSS and seconds of translating `--memory-sentences` sentences
    greedily with `engine`, in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.translator",
        "--memory-only",
        engine,
        "--model",
        args.model,
        "--memory-sentences",
        str(args.memory_sentences),
        *(["--data", args.data] if args.data else []),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=900
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _peak_rss_mib(reset: bool = False) -> float | None:
    """The process' peak resident memory (`VmHWM`, Linux), in MiB; with
    `reset`, start a new peak from the current resident memory."""
    try:
        if reset:
            pathlib.Path("/proc/self/clear_refs").write_text("5")
        status = pathlib.Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _memory_only(args) -> None:
    translator = Translator.load(args.model)
    sentences = _sentences(args, args.memory_sentences)
    engine = _engines(translator)[args.memory_only]()
    engine.translate(sentences[:1])  # tracing: part of loading
    loaded = _peak_rss_mib(reset=True)
    seconds, _ = _timed(lambda: engine.translate(sentences))
    print(
        json.dumps(
            {
                "peak_rss_mib": (
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
                "loaded_rss_mib": loaded,
                "translating_peak_rss_mib": _peak_rss_mib(),
                "seconds": seconds,
            }
        )
    )


def _report(translator, sentences, results, latency, memory):
    lengths = [
        len(r)
        for r in translator.processor.source.tokenize_ragged(
            sentences
        ).to_list()
    ]
    print(
        f"\n{len(sentences)} test sentences, source tokens ([START]/[END] "
        f"included) median {statistics.median(lengths):.0f}, max "
        f"{max(lengths)}; processor.max_length "
        f"{translator.processor.max_length}"
    )
    old = next(iter(results["greedy"]))
    for method, by_engine in results.items():
        base = len(sentences) / by_engine[old][1]
        print(f"\n## Throughput, {method}\n")
        print(
            "| engine | sentences/s | vs old | first call s | later calls s "
            "| same output as old |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for name, (first, later, outputs) in by_engine.items():
            rate = len(sentences) / later
            same = outputs == by_engine[old][2]
            print(
                f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {first:.2f} "
                f"| {later:.2f} | {'yes' if same else 'NO'} |"
            )
    for method, by_engine in latency.items():
        base = by_engine[old][1]
        print(f"\n## One sentence per call, {method}\n")
        print("| engine | median ms | old / engine | first call s |")
        print("|---|---:|---:|---:|")
        for name, (first, seconds) in by_engine.items():
            print(
                f"| {name} | {seconds * 1e3:.1f} | {base / seconds:.2f}x | "
                f"{first:.2f} |"
            )
    if memory:
        print(
            f"\n## Translating {next(iter(memory.values()))['sentences']:,} "
            "sentences, greedy, each in a fresh process\n"
        )
        print(
            "| engine | peak RSS MiB (getrusage) | RSS after loading MiB | "
            "peak RSS while translating MiB | seconds |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, m in memory.items():
            print(
                f"| {name} | {m['peak_rss_mib']:,.0f} | "
                f"{m['loaded_rss_mib'] or 0:,.0f} | "
                f"{m['translating_peak_rss_mib'] or 0:,.0f} | "
                f"{m['seconds']:.1f} |"
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a translator directory")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=50)
    parser.add_argument("--memory-sentences", type=int, default=20000)
    parser.add_argument("--data", default=None, help="sentence pairs (TSV)")
    parser.add_argument("--out", default="translator-bench")
    parser.add_argument("--json", default=None, help="write results here")
    parser.add_argument("--memory-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_only:
        _memory_only(args)
        return
    print(
        f"keras-nmt {keras_nmt.__version__}, keras {keras.__version__}, "
        f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs"
    )
    translator = _translator(args)
    if args.model is None:
        args.model = str(pathlib.Path(args.out) / "model")
    sentences = _sentences(args, args.sentences)
    engines = {
        name: make() for name, make in _engines(translator, THROUGHPUT).items()
    }
    results = _throughput(engines, sentences, args.rounds)
    latency = _latency(
        lambda: {
            name: make() for name, make in _engines(translator, LATENCY).items()
        },
        sentences[:10],
        args.latency_calls,
    )
    memory = {}
    if args.memory_sentences:
        for name in _engines(translator, MEMORY):
            memory[name] = _memory(args, name) | {
                "sentences": args.memory_sentences
            }
    _report(translator, sentences, results, latency, memory)
    if args.json:
        pathlib.Path(args.json).write_text(
            json.dumps(
                {
                    "throughput": {
                        method: {
                            name: {
                                "sentences_per_second": len(sentences) / later,
                                "first_call_seconds": first,
                                "later_call_seconds": later,
                            }
                            for name, (first, later, _) in by_engine.items()
                        }
                        for method, by_engine in results.items()
                    },
                    "one_sentence": {
                        method: {
                            name: {"first_call_seconds": f, "median_seconds": m}
                            for name, (f, m) in by_engine.items()
                        }
                        for method, by_engine in latency.items()
                    },
                    "memory": memory,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
