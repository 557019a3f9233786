"""Training from corpora larger than memory: peak memory and time of the
streaming pipeline (`keras-nmt train --streaming`) against the in-memory
one, as the corpus grows.

    python -m benchmarks.streaming [--sizes 100000,1000000,5000000] \
        [--memory-sizes 100000,1000000] [--control-lines 100000] \
        [--steps 300] [--work /tmp/keras-nmt-streaming-bench] [--json FILE]

Corpora: `--sizes` lines made from the Tatoeba spa-eng file
(`/work/shared/data/spa-eng/spa.txt`, or `$KERAS_NMT_DATA`): the file,
then perturbed copies of it (words swapped or duplicated, a number 0-999
appended to both sides; seeded), in gzipped shards of 500,000 lines under
`--work` (kept between runs). The file is sorted by length, so the
100,000-line corpus lacks its longest sentences, which every larger corpus
holds; and the peak memory of training depends on the longest batches
(their shapes). The control row (`--control-lines`, 0 for none) is a
corpus of that size with the lengths of the large ones: evenly spaced
lines of the whole file, perturbed.

Each measurement is a fresh Python process that trains as `keras-nmt train`
does with `--streaming` (`StreamingPairs(...).split(seed=0)`, the train
part to `train_translator`) or without it (`read_pairs` + `split_pairs`,
the baseline), on the same settings (word vocabularies capped at 8,000
words a side, so every model is the same size; 64-d embeddings, 128 GRU
units, batches of 64, `max_length` 32, no validation: the training data
path alone), and stops after `--steps` steps. It reports:

- `setup_s`: everything before the first step (reading, vocabularies, the
  counting pass, the model); within it `vocabulary_s` (the pass that
  counts words) and `count_s` (streaming: the pass that tokenises every
  pair to count the batches; in memory: tokenising the corpus);
- `step_ms`: the mean time of steps 2 to `--steps` (step 1 compiles), and
  `epoch_min`, the epoch extrapolated from it (`steps_per_epoch x
  step_ms`);
- `rss_setup_mb` / `rss_peak_mb`: the process' peak resident memory
  (VmHWM) before the first step and at the end.

Ratios: each streaming peak against the in-memory peak at the same size
(the baseline), and against the streaming peak at the smallest size.
"""

import argparse
import gzip
import json
import os
import pathlib
import random
import subprocess
import sys
import time

SHARD_LINES = 500_000
SETTINGS = {
    "tokenizer": "word",
    "max_vocab": 8000,
    "embedding_dim": 64,
    "units": 128,
    "batch_size": 64,
    "max_length": 32,
    "epochs": 1,
    "select_by": "loss",
    "validation_sentences": 0,
    "patience": 0,
    "lr_patience": 0,
}


def _spa_txt() -> pathlib.Path:
    for path in (
        pathlib.Path(os.environ.get("KERAS_NMT_DATA", "")) / "spa-eng/spa.txt",
        pathlib.Path("/work/shared/data/spa-eng/spa.txt"),
    ):
        if path.is_file():
            return path
    sys.exit("spa.txt not found: set KERAS_NMT_DATA to its directory")


def _perturb(sentence: str, rng: random.Random, number: int) -> str:
    words = sentence.split(" ")
    kind = rng.randrange(3)
    if kind == 0 and len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 1:
        i = rng.randrange(len(words))
        words.insert(i, words[i])
    return " ".join(words) + f" {number}"


def make_corpus(lines: int, work: pathlib.Path, spread: bool = False) -> str:
    """`lines` pairs in gzipped shards under `work/<lines>` (the file, then
    perturbed copies; with `spread`, evenly spaced lines of the whole file,
    perturbed); returns the glob pattern of the shards."""
    directory = work / (f"{lines}-spread" if spread else str(lines))
    pattern = str(directory / "*.tsv.gz")
    done = directory / "done"
    if done.is_file():
        return pattern
    directory.mkdir(parents=True, exist_ok=True)
    source = [
        line.split("\t")[:2]
        for line in _spa_txt().read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rng = random.Random(lines)
    shard, out = 0, None
    start = time.perf_counter()
    for i in range(lines):
        position = len(source) + i * len(source) // lines if spread else i
        if i % SHARD_LINES == 0:
            if out is not None:
                out.close()
            out = gzip.open(
                directory / f"part-{shard:03d}.tsv.gz",
                "wt",
                encoding="utf-8",
                compresslevel=1,
            )
            shard += 1
        english, spanish = source[position % len(source)]
        if position >= len(source):
            number = rng.randrange(1000)
            english = _perturb(english, rng, number)
            spanish = _perturb(spanish, rng, number)
        out.write(f"{english}\t{spanish}\n")
    out.close()
    done.write_text("")
    print(
        f"made {lines:,} lines in {shard} shard(s) in "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return pattern


def _peak_rss_mb() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, data: str, steps: int, out_dir: str) -> dict:
    """One measurement (in its own process)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from keras_nmt import text
    from keras_nmt.training import trainer

    times = {}

    def timed(function, name):
        def wrapper(*args, **kwargs):
            begin = time.perf_counter()
            result = function(*args, **kwargs)
            times[name] = time.perf_counter() - begin
            return result

        return wrapper

    trainer._new_processor = timed(trainer._new_processor, "vocabulary_s")
    trainer._epoch_data = timed(trainer._epoch_data, "count_s")

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            times["setup_s"] = time.perf_counter() - start
            times["rss_setup_mb"] = _peak_rss_mb()
            times["steps_per_epoch"] = self.params["steps"]

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.first = time.perf_counter()
            if batch + 1 == steps:
                elapsed = time.perf_counter() - self.first
                times["step_ms"] = 1000 * elapsed / (steps - 1)
                self.model.stop_training = True

    start = time.perf_counter()
    if mode == "streaming":
        corpus = text.StreamingPairs(data, reverse=True)
        train = corpus.split(seed=0).train
    else:  # as `keras-nmt train --data all.tsv`: one plain file
        pairs = text.read_pairs(_concatenated(data), reverse=True)
        train = text.split_pairs(pairs, seed=0).train
    times["read_s"] = time.perf_counter() - start
    trainer.train_translator(
        train,
        None,
        out_dir,
        verbose=0,
        callbacks=[Clock()],
        **SETTINGS,
    )
    times["rss_peak_mb"] = _peak_rss_mb()
    return times


def _concatenated(pattern: str) -> str:
    """The shards gunzipped into one plain file (`read_pairs` reads one
    plain file), made once."""
    import glob

    plain = pathlib.Path(pattern).parent / "all.tsv"
    if not plain.exists():
        with open(f"{plain}.tmp", "wb") as out:
            for shard in sorted(glob.glob(pattern)):
                with gzip.open(shard, "rb") as f:
                    while block := f.read(1 << 20):
                        out.write(block)
        os.replace(f"{plain}.tmp", plain)
    return str(plain)


def measure(mode, data, steps, work) -> dict:
    out_dir = work / f"run-{mode}-{os.getpid()}-{time.monotonic_ns()}"
    command = [
        sys.executable,
        "-m",
        "benchmarks.streaming",
        "--child",
        mode,
        "--data",
        data,
        "--steps",
        str(steps),
        "--out",
        str(out_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    subprocess.run(["rm", "-rf", str(out_dir)], check=False)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--memory-sizes", default="100000,1000000")
    parser.add_argument("--control-lines", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--work", default="/tmp/keras-nmt-streaming-bench")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", choices=("streaming", "memory"))
    parser.add_argument("--data")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.data, args.steps, args.out)
        print(json.dumps(result))
        return
    work = pathlib.Path(args.work)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    memory_sizes = {int(s) for s in args.memory_sizes.split(",") if s}
    rows = []
    for lines in sizes:
        pattern = make_corpus(lines, work)
        for mode in ("streaming", "memory"):
            if mode == "memory" and lines not in memory_sizes:
                continue
            result = measure(mode, pattern, args.steps, work)
            result.update(lines=lines, mode=mode)
            rows.append(result)
            print(json.dumps(result), flush=True)
    if args.control_lines:
        pattern = make_corpus(args.control_lines, work, spread=True)
        result = measure("streaming", pattern, args.steps, work)
        result.update(lines=args.control_lines, mode="streaming, control")
        rows.append(result)
        print(json.dumps(result), flush=True)
    _print_table(rows, args.steps)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def _print_table(rows, steps) -> None:
    baseline = {r["lines"]: r for r in rows if r["mode"] == "memory"}
    smallest = min(
        (r for r in rows if r["mode"].startswith("streaming")),
        key=lambda r: r["lines"],
        default=None,
    )
    print(
        f"\n| lines | mode | setup s (vocab / count) | step ms ({steps} "
        "steps) | epoch min (est.) | peak RSS before step 1 MB | peak RSS "
        "MB | vs in-memory | vs smallest streaming |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        memory = baseline.get(r["lines"])
        versus = (
            f"{r['rss_peak_mb'] / memory['rss_peak_mb']:.2f}x"
            if memory and r["mode"] == "streaming"
            else ""
        )
        grown = (
            f"{r['rss_peak_mb'] / smallest['rss_peak_mb']:.2f}x"
            if smallest and r["mode"].startswith("streaming")
            else ""
        )
        epoch = r["steps_per_epoch"] * r["step_ms"] / 60_000
        print(
            f"| {r['lines']:,} | {r['mode']} | {r['setup_s']:.0f} "
            f"({r.get('vocabulary_s', 0):.0f} / {r.get('count_s', 0):.0f}) "
            f"| {r['step_ms']:.0f} | {epoch:.0f} | "
            f"{r['rss_setup_mb']:.0f} | {r['rss_peak_mb']:.0f} | {versus} "
            f"| {grown} |"
        )


if __name__ == "__main__":
    main()
