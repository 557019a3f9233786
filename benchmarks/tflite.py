"""TFLite export: file size, one-sentence latency and the BLEU cost of
quantisation, next to the SavedModel and `Translator.translate`.

    python -m benchmarks.tflite [--model DIR] [--epochs 4] [--runs 30] \
        [--test-sentences 500] [--out tflite-bench] [--json FILE]

The translator: `--model DIR` (a directory from `Translator.save` or
`keras-nmt train`), or by default the demo's architecture
(`keras_nmt.demo.DEMO_SETTINGS`: Luong-style GRU decoder with additive
attention, 256-d embeddings, 512 units) trained for `--epochs` epochs on
the embedded demo corpus. Test pairs: the test split of the demo corpus
(`split_pairs(load_demo_pairs(), seed=0)`, as `keras-nmt demo`), so a
`--model` trained on another corpus is scored on text it may not know.

Exported (into `--out`): the SavedModel (`Translator.export`) and three
TFLite models: greedy, greedy with dynamic-range quantisation, beam.

Sizes: the files. Latency: one sentence at a time, strings to strings,
median over `--runs` runs of each of 5 test sentences (after one warm-up
run each), engines interleaved so they share the machine's load:
`Translator.translate([s])` (the baseline), the SavedModel's `translate`
(or `translate_beam`) signature, `TFLiteTranslator.translate([s])`
(Python tokenisation + the interpreter), and the interpreter alone on
ids. Quality: corpus BLEU (sacrebleu, `keras_nmt.evaluation
.corpus_scores`) of the first `--test-sentences` distinct test sources,
each engine one sentence at a time for TFLite, and the share of
translations identical to the `Translator`'s.
"""

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nmt import text  # noqa: E402
from keras_nmt.demo import DEMO_SETTINGS  # noqa: E402
from keras_nmt.evaluation import corpus_scores  # noqa: E402
from keras_nmt.tflite_export import TFLiteTranslator  # noqa: E402
from keras_nmt.tflite_export import export_tflite  # noqa: E402
from keras_nmt.translator import Translator  # noqa: E402

LATENCY_SENTENCES = 5


def _size(path: pathlib.Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _translator(args, splits, out: pathlib.Path) -> Translator:
    if args.model:
        return Translator.load(args.model)
    from keras_nmt.training.trainer import train_translator

    settings = DEMO_SETTINGS.replace(epochs=args.epochs)
    start = time.perf_counter()
    translator = train_translator(
        splits.train,
        splits.validation,
        out / "model",
        settings,
        overwrite=True,
        verbose=2,
    )
    print(
        f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s"
    )
    return translator


def _padded(processor, sentence):
    ids = processor.source.tokenize_ragged([sentence]).to_list()[0]
    source = np.zeros((1, processor.max_length), "int32")
    source[0, : len(ids)] = ids
    return source


def _one(lite):
    return lambda s: lite.translate([s])


def _latencies(engines: dict, sentences, runs: int) -> dict:
    """Median seconds of one call per engine, over `runs` rounds of every
    sentence; the engines take turns on each sentence."""
    for run in engines.values():  # warm-up: tracing, allocation
        for sentence in sentences:
            run(sentence)
    times = {name: [] for name in engines}
    for _ in range(runs):
        for sentence in sentences:
            for name, run in engines.items():
                start = time.perf_counter()
                run(sentence)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a translator directory")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--test-sentences", type=int, default=500)
    parser.add_argument("--out", default="tflite-bench")
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    splits = text.split_pairs(text.load_demo_pairs(), seed=DEMO_SETTINGS.seed)
    translator = _translator(args, splits, out)
    processor = translator.processor

    paths = {
        "tflite greedy": out / "greedy.tflite",
        "tflite greedy int8": out / "greedy-int8.tflite",
        "tflite beam": out / "beam.tflite",
    }
    results = {"sizes": {}, "export_seconds": {}}
    for name, path in paths.items():
        start = time.perf_counter()
        export_tflite(
            translator,
            path,
            method="beam" if "beam" in name else "greedy",
            quantize="int8" in name,
        )
        results["export_seconds"][name] = time.perf_counter() - start
    saved_dir = out / "saved_model"
    start = time.perf_counter()
    translator.export(saved_dir)
    results["export_seconds"]["saved model"] = time.perf_counter() - start
    saved = tf.saved_model.load(str(saved_dir))
    lite = {name: TFLiteTranslator(p, processor) for name, p in paths.items()}
    for name, path in [
        *paths.items(),
        ("saved model", saved_dir),
        (
            "model.keras",
            pathlib.Path(args.model or out / "model") / "model.keras",
        ),
    ]:
        results["sizes"][name] = _size(path)

    references: dict[str, list[str]] = {}
    for source, target in zip(
        splits.test.sources, splits.test.targets, strict=True
    ):
        references.setdefault(source, []).append(target)
    sources = list(references)[: args.test_sentences]
    step = max(len(sources) // LATENCY_SENTENCES, 1)
    shown = sources[::step][:LATENCY_SENTENCES]
    ids = {s: _padded(processor, s) for s in shown}

    def saved_run(signature):
        return lambda s: signature(tf.constant([s])).numpy()

    engines = {
        "greedy": {
            "Translator.translate": lambda s: translator.translate([s]),
            "SavedModel": saved_run(saved.translate),
            "TFLiteTranslator": _one(lite["tflite greedy"]),
            "TFLiteTranslator int8": _one(lite["tflite greedy int8"]),
            "interpreter ids": lambda s: lite["tflite greedy"].translate_ids(
                ids[s]
            ),
            "interpreter ids int8": lambda s: lite[
                "tflite greedy int8"
            ].translate_ids(ids[s]),
        },
        "beam": {
            "Translator.translate": lambda s: translator.translate(
                [s], method="beam"
            ),
            "SavedModel": saved_run(saved.translate_beam),
            "TFLiteTranslator": _one(lite["tflite beam"]),
            "interpreter ids": lambda s: lite["tflite beam"].translate_ids(
                ids[s]
            ),
        },
    }
    results["latency_ms"] = {}
    for method, runs in engines.items():
        medians = _latencies(runs, shown, args.runs)
        results["latency_ms"][method] = {
            k: 1000 * v for k, v in medians.items()
        }

    refs = [references[s] for s in sources]
    quality = {}
    for method, name in [
        ("greedy", "tflite greedy"),
        ("greedy", "tflite greedy int8"),
        ("beam", "tflite beam"),
    ]:
        key = f"Translator {method}"
        if key not in quality:
            baseline = translator.translate(sources, method=method)
            quality[key] = {"bleu": corpus_scores(baseline, refs)["bleu"]}
            quality[key]["_out"] = baseline
        hypotheses = lite[name].translate(sources)
        same = np.mean(
            [
                a == b
                for a, b in zip(hypotheses, quality[key]["_out"], strict=True)
            ]
        )
        quality[name] = {
            "bleu": corpus_scores(hypotheses, refs)["bleu"],
            "identical_to_translator": float(same),
        }
    for entry in quality.values():
        entry.pop("_out", None)
    results["bleu"] = quality
    results["test_sentences"] = len(sources)
    results["model"] = args.model or f"demo settings, {args.epochs} epochs"
    _print(results)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


def _print(results):
    print(f"\nmodel: {results['model']}")
    print("\nsize (MB) and export time (s):")
    for name, size in results["sizes"].items():
        seconds = results["export_seconds"].get(name)
        extra = f"   exported in {seconds:.1f} s" if seconds else ""
        print(f"  {name:<22} {size / 1e6:8.2f}{extra}")
    for method, medians in results["latency_ms"].items():
        base = medians["Translator.translate"]
        print(
            f"\none-sentence latency, {method} (median ms; ratio to "
            "Translator.translate):"
        )
        for name, ms in medians.items():
            print(f"  {name:<22} {ms:8.2f}   x{ms / base:.2f}")
    print(f"\nBLEU on {results['test_sentences']} test sentences:")
    for name, entry in results["bleu"].items():
        same = entry.get("identical_to_translator")
        extra = (
            f"   identical to Translator: {100 * same:.1f}%"
            if same is not None
            else ""
        )
        print(f"  {name:<22} {entry['bleu']:6.2f}{extra}")


if __name__ == "__main__":
    main()
