"""Test BLEU of the training defaults, of today's word-level defaults and
of the TensorFlow tutorial's architecture, for the same wall-clock budget.

    KERAS_NMT_DATA=../shared/data python -m benchmarks.quality \
        --corpus spa-eng --minutes 6 --max-pairs 40000 \
        [--models defaults,word-loss,baseline] [--test-sentences 1000]

Corpora (under `$KERAS_NMT_DATA` or `--data`): `spa-eng` (Spanish ->
English, `spa-eng/spa.txt`), `deu-eng` (German -> English,
`deu-eng/deu.txt`), `eng-spa` (English -> Spanish, the same file the other
way). A seeded sample of `--max-pairs` pairs (the files are sorted by
length), split 80/10/10 by English sentence with seed 0. Every model gets
the same budget, one after the other, alone on the machine:

- `defaults`: `train_translator` with `TrainingSettings()` (subword
  vocabularies, BLEU-selected, early stopping, learning-rate decay) and
  `max_minutes` = the budget: the clock includes everything the command
  does (vocabularies, validation BLEU each epoch, checkpoints);
- `word-loss`: the same pipeline with the defaults of version 0.2.0: word
  vocabularies (lowercased), Bahdanau style, LSTM, no dropout, no label
  smoothing, the epoch of the best validation loss kept, no early stopping;
- `defaults-xla`: `defaults` with `jit_compile=True` (`--jit-compile`: XLA
  train steps, batches padded to a few lengths), not in the default list;
- `baseline`: the TensorFlow NMT tutorial's architecture from Keras
  built-ins (`benchmarks.seq2seq.build_baseline`: bidirectional GRU, GRU
  decoder, one-head attention; embedding 128, 256 units) on our word
  vocabularies (the tutorial also lowercases), trained with `fit` for the
  budget (counted from the start of `fit`, vocabularies and data
  pipeline not included); the last weights are kept.

Then greedy decoding of the first `--test-sentences` distinct source
sentences of the test split, scored as printed with sacrebleu's corpus BLEU
against all their references: cased, and lowercased (the fair comparison
for the lowercasing word-level models).
"""

import argparse
import json
import os
import pathlib
import shutil
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from benchmarks.seq2seq import baseline_greedy  # noqa: E402
from benchmarks.seq2seq import build_baseline  # noqa: E402
from keras_nmt.evaluation import corpus_scores  # noqa: E402
from keras_nmt.seq2seq import compile_seq2seq  # noqa: E402
from keras_nmt.text import TextProcessor  # noqa: E402
from keras_nmt.text import make_dataset  # noqa: E402
from keras_nmt.text import read_pairs  # noqa: E402
from keras_nmt.text import sample_pairs  # noqa: E402
from keras_nmt.text import split_pairs  # noqa: E402
from keras_nmt.training import TrainingSettings  # noqa: E402
from keras_nmt.training import train_translator  # noqa: E402

CORPORA = {
    "spa-eng": ("spa-eng/spa.txt", True),
    "eng-spa": ("spa-eng/spa.txt", False),
    "deu-eng": ("deu-eng/deu.txt", True),
}
# The defaults of keras-attention 0.2.0 (before this benchmark).
WORD_LOSS = {
    "tokenizer": "word",
    "attention": "bahdanau",
    "style": "bahdanau",
    "cell": "lstm",
    "dropout": 0.0,
    "label_smoothing": 0.0,
    "max_length": 32,
    "select_by": "loss",
    "patience": 0,
    "lr_patience": 0,
}


class FitBudget(keras.callbacks.Callback):
    """Stops `fit` once `seconds` have passed since it began (its first
    step's compilation included, as for `train_translator`)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start, self.steps = seconds, None, 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def _baseline(splits, minutes, test_sources):
    processor = TextProcessor.from_sentences(
        splits.train.sources, splits.train.targets, max_length=32
    )
    keras.utils.set_random_seed(0)
    dataset = make_dataset(splits.train, processor, batch_size=64, seed=0)
    model = build_baseline(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=128,
        units=256,
    )
    compile_seq2seq(model, learning_rate=1e-3)
    budget = FitBudget(minutes * 60)
    model.fit(
        dataset.repeat(),
        steps_per_epoch=len(dataset),
        epochs=1000,
        callbacks=[budget],
        shuffle=False,
        verbose=0,
    )
    out = []
    for i in range(0, len(test_sources), 256):
        tokens = keras.ops.convert_to_numpy(
            processor.source.tokenize(test_sources[i : i + 256])
        )
        ids = baseline_greedy(
            model, tokens, processor.start_id, processor.end_id, 32
        )
        out.extend(processor.target.detokenize(ids))
    return out, {"steps": budget.steps, "epochs": budget.steps / len(dataset)}


def _ours(name, splits, minutes, test_sources, workdir):
    changes = {"word-loss": WORD_LOSS, "defaults-xla": {"jit_compile": True}}
    changes = changes.get(name, {})
    # Enough epochs for the budget (each epoch of the run is a pipeline).
    settings = TrainingSettings(epochs=40, **changes)
    out = pathlib.Path(workdir) / name
    start = time.perf_counter()
    translator = train_translator(
        splits.train,
        splits.validation,
        out,
        settings,
        max_minutes=minutes,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    described = json.loads((out / "training.json").read_text())
    history = (out / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    bleu_seconds = []
    if "val_bleu_seconds" in header:
        column = header.index("val_bleu_seconds")
        bleu_seconds = [float(r.split(",")[column]) for r in history[1:]]
    info = {
        "steps": described["steps"],
        "epochs": described["steps"]
        / max(1, -(-len(splits.train) // settings.batch_size)),
        "best_epoch": described["best_epoch"],
        "stopped_by": described["stopped_by"],
        "train_seconds": seconds,
        "validation_bleu_seconds": bleu_seconds,
    }
    return translator.translate(test_sources), info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("KERAS_NMT_DATA"))
    parser.add_argument("--corpus", choices=CORPORA, default="spa-eng")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--max-pairs", type=int, default=40000)
    parser.add_argument("--models", default="defaults,word-loss,baseline")
    parser.add_argument("--test-sentences", type=int, default=1000)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data DIR (or $KERAS_NMT_DATA) is required")

    path, reverse = CORPORA[args.corpus]
    pairs = read_pairs(pathlib.Path(args.data) / path, reverse=reverse)
    pairs = sample_pairs(pairs, args.max_pairs, seed=0)
    splits = split_pairs(pairs, seed=0)
    references = {}
    for source, target in zip(
        splits.test.sources, splits.test.targets, strict=True
    ):
        references.setdefault(source, []).append(target)
    test_sources = list(references)[: args.test_sentences]
    print(
        f"{args.corpus}: train {len(splits.train)}, validation "
        f"{len(splits.validation)}, test {len(splits.test)} pairs; "
        f"{len(test_sources)} test sentences scored; budget "
        f"{args.minutes:g} min per model",
        flush=True,
    )
    results = {}
    workdir = tempfile.mkdtemp(prefix="keras-nmt-quality-")
    try:
        for name in args.models.split(","):
            keras.utils.clear_session()
            if name == "baseline":
                hypotheses, info = _baseline(splits, args.minutes, test_sources)
            else:
                hypotheses, info = _ours(
                    name, splits, args.minutes, test_sources, workdir
                )
            scores = corpus_scores(
                hypotheses, [references[s] for s in test_sources]
            )
            results[name] = {
                "bleu_cased": scores["bleu_cased"],
                "bleu_lowercase": scores["bleu_lowercase"],
                "exact_match": scores["exact_match"],
                **info,
                "examples": list(
                    zip(test_sources[:5], hypotheses[:5], strict=True)
                ),
            }
            print(
                json.dumps({name: results[name]}, ensure_ascii=False),
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.corpus}, {args.minutes:g} min per model")
    print("| model | BLEU cased | BLEU lowercased | exact match | epochs |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['bleu_cased']:.1f} | {r['bleu_lowercase']:.1f} "
            f"| {r['exact_match']:.1f}% | {r['epochs']:.1f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    main()
