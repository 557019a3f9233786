"""Test BLEU of our model and of the Keras-built-ins baseline, same budget.

    KERAS_NMT_DATA=../shared/data python -m benchmarks.quality \
        [--minutes 20] [--models ours,baseline] [--test-sentences 2000]

The full Tatoeba spa-eng corpus (`keras_nmt.text.load_spa_eng`:
`--data`, `$KERAS_NMT_DATA` or a download), Spanish -> English, split
80/10/10 by English sentence with seed 0 (all translations of one sentence
in one split). One `TextProcessor` built on the training split (vocabularies
capped at `--max-vocab` words), the same shuffled length-bucketed batches for
every model, Adam at 1e-3, and the same wall-clock training budget each
(`--minutes`, measured from the first training step; the models train one
after the other, alone on the machine). The weights of the last completed
step are kept. Then greedy decoding of the first `--test-sentences`
distinct Spanish sentences of the test split, scored with sacrebleu's
corpus BLEU against all their English references
(`keras_nmt.evaluation.corpus_scores`).

Models:
- `ours`: `build_seq2seq(attention="bahdanau", style="bahdanau")`, LSTM;
- `luong`: `build_seq2seq(attention="general", style="luong")`, LSTM;
- `luong-additive-gru`: `build_seq2seq(attention="bahdanau",
  style="luong", cell="gru")`, the architecture of `keras-nmt demo`
  (no dropout here);
- `baseline`: `benchmarks.seq2seq.build_baseline`, the TensorFlow NMT
  tutorial's model from Keras built-ins (bidirectional GRU, GRU decoder,
  one-head MultiHeadAttention); it has no one-step function, so it decodes
  by re-running the teacher-forced pass on the growing prefix.
All with embedding 128 and 256 units.
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from benchmarks.seq2seq import baseline_greedy  # noqa: E402
from benchmarks.seq2seq import build_baseline  # noqa: E402
from keras_nmt.evaluation import corpus_scores  # noqa: E402
from keras_nmt.seq2seq import build_seq2seq  # noqa: E402
from keras_nmt.seq2seq import compile_seq2seq  # noqa: E402
from keras_nmt.text import TextProcessor  # noqa: E402
from keras_nmt.text import load_spa_eng  # noqa: E402
from keras_nmt.text import make_dataset  # noqa: E402
from keras_nmt.text import split_pairs  # noqa: E402
from keras_nmt.translator import Translator  # noqa: E402

EMBEDDING, UNITS = 128, 256


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of training have passed."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.start = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:  # the first step includes compilation
            self.start = time.perf_counter()
        self.steps += 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def _build(name, processor):
    sizes = (processor.source_vocab_size, processor.target_vocab_size)
    if name == "baseline":
        return build_baseline(*sizes, embedding_dim=EMBEDDING, units=UNITS)
    attention, style, cell = {
        "ours": ("bahdanau", "bahdanau", "lstm"),
        "luong": ("general", "luong", "lstm"),
        "luong-additive-gru": ("bahdanau", "luong", "gru"),
    }[name]
    return build_seq2seq(
        *sizes,
        embedding_dim=EMBEDDING,
        units=UNITS,
        attention=attention,
        style=style,
        cell=cell,
    )


def _translate(name, model, processor, sources, batch_size=256):
    if name != "baseline":
        translator = Translator(model, processor, batch_size=batch_size)
        return translator.translate(sources)
    out = []
    for i in range(0, len(sources), batch_size):
        tokens = keras.ops.convert_to_numpy(
            processor.source.tokenize(sources[i : i + batch_size])
        )
        ids = baseline_greedy(
            model,
            tokens,
            processor.start_id,
            processor.end_id,
            processor.max_length,
        )
        out.extend(processor.target.detokenize(ids))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--models", default="ours,baseline")
    parser.add_argument("--test-sentences", type=int, default=2000)
    parser.add_argument("--max-vocab", type=int, default=8000)
    parser.add_argument("--max-length", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)

    pairs = load_spa_eng(args.data)
    splits = split_pairs(pairs, seed=0)
    processor = TextProcessor.from_sentences(
        splits.train.sources,
        splits.train.targets,
        max_tokens=args.max_vocab,
        max_length=args.max_length,
    )
    references = {}
    for source, target in zip(
        splits.test.sources, splits.test.targets, strict=True
    ):
        references.setdefault(source, []).append(target)
    test_sources = list(references)[: args.test_sentences]
    print(
        f"pairs: train {len(splits.train)}, validation "
        f"{len(splits.validation)}, test {len(splits.test)}; vocabularies "
        f"{processor.source_vocab_size} / {processor.target_vocab_size}; "
        f"test sentences scored: {len(test_sources)}; budget "
        f"{args.minutes:g} min per model",
        flush=True,
    )
    results = {}
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        dataset = make_dataset(
            splits.train, processor, batch_size=args.batch_size, seed=0
        )
        model = _build(name, processor)
        compile_seq2seq(model, learning_rate=1e-3)
        budget = TimeBudget(args.minutes * 60)
        history = model.fit(
            dataset.repeat(),
            steps_per_epoch=len(dataset),
            epochs=1000,
            callbacks=[budget],
            shuffle=False,
            verbose=2,
        )
        start = time.perf_counter()
        hypotheses = _translate(name, model, processor, test_sources)
        scores = corpus_scores(
            hypotheses, [references[s] for s in test_sources]
        )
        results[name] = {
            "bleu": scores["bleu"],
            "exact_match": scores["exact_match"],
            "steps": budget.steps,
            "epochs": budget.steps / len(dataset),
            "final_loss": history.history["loss"][-1],
            "decode_seconds": time.perf_counter() - start,
            "examples": list(
                zip(test_sources[:5], hypotheses[:5], strict=True)
            ),
        }
        print(json.dumps({name: results[name]}, ensure_ascii=False), flush=True)
    print("\n| model | test BLEU | exact match | steps (epochs) in budget |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['bleu']:.1f} | {r['exact_match']:.1f}% | "
            f"{r['steps']} ({r['epochs']:.1f}) |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    main()
