"""`keras-nmt translate` as a stream, end to end in subprocesses: chunks,
--input/--output, invalid UTF-8, closed pipes, Ctrl-C, a terminal, n-best.

An untrained model is enough for the plumbing: its translations are
arbitrary but deterministic, so each output is compared with
`Translator.translate` of the same lines in this process (the same
`batch_size`, so the same decoding shapes). The runs that only need their
exit status and output start together in one fixture, as each subprocess
spends seconds importing TensorFlow.
"""

import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import time

import keras
import pytest

from keras_nmt import cli
from keras_nmt import files
from keras_nmt import text
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.text import TextProcessor
from keras_nmt.translator import Translator

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"
TIMEOUT = 300
BATCH_SIZE = 4
# TensorFlow's native start-up lines on stderr (absl is not initialised
# when TensorFlow is imported, so TF_CPP_MIN_LOG_LEVEL does not hide them).
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWE]\d{4} \d\d:\d\d:\d\d)"
)


def _start(*args, cwd, stdin=None, stdout=subprocess.PIPE, stderr=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("KERAS_NMT_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "keras_nmt", *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=stdout,
        stderr=subprocess.PIPE if stderr is None else stderr,
    )


def _finish(process):
    """`(status, stdout, stderr lines without TensorFlow's, raw stderr)`."""
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    stdout = (stdout or b"").decode("utf-8")
    stderr = (stderr or b"").decode("utf-8", "replace")
    lines = [line for line in stderr.splitlines() if not _TF_NOISE.match(line)]
    return process.returncode, stdout, lines, stderr


def _read_until(fd, done, timeout=TIMEOUT) -> bytes:
    """Read `fd` until `done(data)`; fails on a timeout or end of file."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; read so far: {data!r}"
        if not select.select([fd], [], [], left)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of a pty is closed
            chunk = b""
        assert chunk, f"end of file; read so far: {data!r}"
        data += chunk
    return data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("translate")


@pytest.fixture(scope="module")
def sentences():
    """11 source sentences and an empty line: 3 chunks of BATCH_SIZE."""
    pairs = text.read_pairs(FIXTURE, max_pairs=60)
    return [*pairs.sources[:6], "", *pairs.sources[6:11]]


@pytest.fixture(scope="module")
def model(workdir):
    """An untrained translator saved with `batch_size=BATCH_SIZE`."""
    pairs = text.read_pairs(FIXTURE, max_pairs=60)
    processor = TextProcessor.from_sentences(
        pairs.sources, pairs.targets, max_length=12
    )
    keras.utils.set_random_seed(7)
    seq2seq = build_seq2seq(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=8,
        units=16,
    )
    path = workdir / "model"
    Translator(seq2seq, processor, batch_size=BATCH_SIZE).save(path)
    return path


@pytest.fixture(scope="module")
def reference(model):
    """The saved translator, loaded here: the independent reference."""
    return Translator.load(model)


def _write_lines(path, lines, ending=b"\n"):
    path.write_bytes(b"".join(line + ending for line in lines))


@pytest.fixture(scope="module")
def runs(model, workdir, sentences):
    """The runs judged by their status and output, started together."""
    encoded = [s.encode("utf-8") for s in sentences]
    _write_lines(workdir / "in.txt", encoded)
    _write_lines(workdir / "crlf.txt", encoded, ending=b"\r\n")
    invalid = [*encoded[:2], b"caf\xe9 ol\xe9", *encoded[3:6]]
    _write_lines(workdir / "invalid.txt", invalid)
    (workdir / "keep.txt").write_text("the previous output\n", "utf-8")
    (workdir / "out").mkdir()
    (workdir / "same").mkdir()
    (workdir / "same" / "in.txt").write_bytes(b"Hola.\n")
    translate = ("translate", "--model", model)
    beam = ("--method", "beam", "--beam-width", "3", "--n-best", "3")
    # name: (arguments, the file given as stdin)
    commands = {
        "stdin": ((), "in.txt"),
        "output": (("--input", "crlf.txt", "--output", "out/out.txt"), None),
        "stop": ((), "invalid.txt"),
        "stop_output": (("--output", "keep.txt"), "invalid.txt"),
        "skip": (("--on-invalid", "skip"), "invalid.txt"),
        "n_best": (beam, "in.txt"),
        "n_best_text": (
            (*beam, "--output", "n-best.txt", "Go now.", "I did it."),
            None,
        ),
        "same_stdin": (("--output", "same/in.txt"), "same/in.txt"),
        "batch_graph": (("--batch-size", "3", "--no-jit-compile"), "in.txt"),
    }
    started = {}
    for name, (args, stdin) in commands.items():
        with open(workdir / (stdin or os.devnull), "rb") as source:
            started[name] = _start(*translate, *args, cwd=workdir, stdin=source)
    return {name: _finish(process) for name, process in started.items()}


def _lines(stdout: str) -> list[str]:
    assert stdout.endswith("\n") or not stdout, repr(stdout)
    return stdout.split("\n")[:-1]


def test_stream_equals_translate(runs, reference, sentences):
    code, stdout, stderr, raw = runs["stdin"]
    assert code == 0, raw[-3000:]
    assert _lines(stdout) == reference.translate(sentences)
    assert stderr == []  # stderr is not a terminal: no prompt, no progress


def test_batch_size_and_jit_compile_flags(runs, reference, sentences):
    """Chunks of 3 lines, compiled as a graph: the same translations."""
    code, stdout, stderr, raw = runs["batch_graph"]
    assert code == 0, raw[-3000:]
    assert _lines(stdout) == reference.translate(sentences)
    assert stderr == []


def test_flags_set_the_loaded_translator(model, monkeypatch):
    from keras_nmt.cli import commands
    from keras_nmt.cli.parser import parse_args

    for command in ("translate", "evaluate", "serve"):
        data = ("--data", str(FIXTURE)) if command == "evaluate" else ()
        args = parse_args([command, "--model", str(model), *data])
        loaded = commands._load_translator(args)
        assert (loaded.batch_size, loaded.jit_compile) == (BATCH_SIZE, True)
        args = parse_args(
            [command, "--model", str(model), *data, "--batch-size", "7"]
            + ["--no-jit-compile"]
        )
        loaded = commands._load_translator(args)
        assert (loaded.batch_size, loaded.jit_compile) == (7, False)
        args = parse_args(
            [command, "--model", str(model), *data, "--jit-compile"]
        )
        assert commands._load_translator(args).jit_compile is True


@pytest.mark.parametrize("command", ["translate", "evaluate", "serve"])
@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--batch-size", "0"],
            r"argument --batch-size: expected an integer >= 1, received '0'",
        ),
        (
            ["--batch-size", "2.5"],
            r"argument --batch-size: expected an integer >= 1, received '2\.5'",
        ),
        (
            ["--jit-compile=yes"],
            r"argument --jit-compile/--no-jit-compile: ignored explicit "
            r"argument 'yes'",
        ),
    ],
)
def test_bad_speed_flags_are_one_line_usage_errors(
    command, flags, message, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        data = ["--data", "x"] if command == "evaluate" else []
        cli.main([command, "--model", "m", *data, *flags])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"keras-nmt {command}: error: ")
    assert re.search(message, line), line


def test_output_is_written_atomically(runs, reference, sentences, workdir):
    """--output, from an --input file with CRLF line ends."""
    code, stdout, stderr, raw = runs["output"]
    assert code == 0, raw[-3000:]
    assert stdout == "" and stderr == []
    out = (workdir / "out" / "out.txt").read_text("utf-8")
    assert _lines(out) == reference.translate(sentences)
    # Nothing but the renamed file: no temporary, no partial output.
    assert [p.name for p in (workdir / "out").iterdir()] == ["out.txt"]


def test_invalid_utf8_stops_after_the_lines_before_it(
    runs, reference, sentences
):
    code, stdout, stderr, raw = runs["stop"]
    assert code == 1, raw[-3000:]
    assert _lines(stdout) == reference.translate(sentences[:2])
    assert len(stderr) == 1, raw
    assert re.match(
        r"keras-nmt translate: error: stdin, line 3: invalid UTF-8 "
        r"\(byte 0xe9 at column 4\); the 2 line\(s\) translated before it",
        stderr[0],
    ), stderr[0]
    assert "Traceback" not in raw


def test_invalid_utf8_with_output_keeps_the_partial_file(
    runs, reference, sentences, workdir
):
    code, stdout, stderr, raw = runs["stop_output"]
    assert code == 1, raw[-3000:]
    assert len(stderr) == 1 and "line 3: invalid UTF-8" in stderr[0], raw
    assert "keep.txt.partial" in stderr[0]
    # The previous output is untouched; the two lines done are kept.
    assert (workdir / "keep.txt").read_text("utf-8") == "the previous output\n"
    partial = (workdir / "keep.txt.partial").read_text("utf-8")
    assert _lines(partial) == reference.translate(sentences[:2])
    assert not list(workdir.glob(files.TEMP_PREFIX + "*"))


def test_invalid_utf8_skipped_gives_an_empty_line(runs, reference, sentences):
    code, stdout, stderr, raw = runs["skip"]
    assert code == 0, raw[-3000:]
    expected = reference.translate(sentences[:6])
    expected[2] = ""
    assert _lines(stdout) == expected
    assert len(stderr) == 1, raw
    assert re.match(
        r"keras-nmt translate: warning: stdin, line 3: invalid UTF-8 "
        r"\(byte 0xe9 at column 4\); translated as an empty line",
        stderr[0],
    ), stderr[0]


def _parse_n_best(stdout):
    rows = [line.split("\t", 2) for line in _lines(stdout)]
    assert all(len(row) == 3 for row in rows), rows
    return [(int(n), float(score), text) for n, score, text in rows]


def test_n_best_prints_k_numbered_lines_per_sentence(
    runs, reference, sentences
):
    code, stdout, stderr, raw = runs["n_best"]
    assert code == 0, raw[-3000:]
    rows = _parse_n_best(stdout)
    assert [n for n, _, _ in rows] == [
        n for n in range(1, len(sentences) + 1) for _ in range(3)
    ]
    expected = reference.translate_n_best(
        sentences, method="beam", beam_width=3, n_best=3
    )
    for number, hypotheses in enumerate(expected, 1):
        got = [row for row in rows if row[0] == number]
        assert [t for _, _, t in got] == [h.text for h in hypotheses]
        assert [s for _, s, _ in got] == pytest.approx(
            [h.score for h in hypotheses], abs=1e-4
        )
        scores = [s for _, s, _ in got]
        assert scores == sorted(scores, reverse=True)  # best first


def test_n_best_of_text_arguments_to_output(runs, reference, workdir):
    code, stdout, stderr, raw = runs["n_best_text"]
    assert code == 0, raw[-3000:]
    assert stdout == "" and stderr == []
    rows = _parse_n_best((workdir / "n-best.txt").read_text("utf-8"))
    assert [n for n, _, _ in rows] == [1, 1, 1, 2, 2, 2]
    best = reference.translate(
        ["Go now.", "I did it."], method="beam", beam_width=3
    )
    assert [rows[0][2], rows[3][2]] == best


def test_output_same_as_stdin_refused_in_one_line(runs, workdir):
    """`--output FILE < FILE`: the input is never overwritten."""
    code, stdout, stderr, raw = runs["same_stdin"]
    assert code == 1, raw[-3000:]
    assert stdout == "" and len(stderr) == 1, raw
    assert stderr[0] == (
        "keras-nmt translate: error: --output 'same/in.txt' is the input "
        "file, which is never overwritten; write the translations to "
        "another file."
    )
    assert (workdir / "same" / "in.txt").read_bytes() == b"Hola.\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--input", "same/in.txt", "--output", "same/./in.txt"],
            r"--output 'same/\./in\.txt' is the input file",
        ),
        (["--input", "in.txt", "Hola."], r"TEXT arguments or from --input"),
        (["--input", "missing.txt"], r"--input 'missing\.txt': no such file"),
        (["--output", "out"], r"--output 'out' is a directory"),
        (["--output", "no/out.txt"], r"the directory 'no' does not exist"),
    ],
)
def test_refused_in_one_line(
    runs, model, workdir, monkeypatch, capsys, args, message
):
    """Refused before the model loads (in this process: no stdin read)."""
    monkeypatch.chdir(workdir)
    assert cli.main(["translate", "--model", "missing-model", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("keras-nmt translate: error: ")
    assert re.search(message, line), line
    assert (workdir / "same" / "in.txt").read_bytes() == b"Hola.\n"


def test_closed_stdout_ends_quietly(model, workdir, sentences, reference):
    """`keras-nmt translate | head -1`: the reader closes the pipe."""
    process = _start(
        "translate", "--model", model, cwd=workdir, stdin=subprocess.PIPE
    )
    try:
        process.stdin.write(sentences[0].encode() + b"\n")
        process.stdin.flush()
        first = _read_until(process.stdout.fileno(), lambda d: b"\n" in d)
        process.stdout.close()  # like `head -1` once it has its line
        # More input: its translation meets the closed pipe.
        process.stdin.write("".join(s + "\n" for s in sentences).encode())
        process.stdin.close()
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=TIMEOUT)
    finally:
        process.kill()
    assert first.decode() == reference.translate(sentences[:1])[0] + "\n"
    assert code == 0, stderr[-3000:]
    assert "Broken pipe" not in stderr and "Traceback" not in stderr
    assert [
        line for line in stderr.splitlines() if not _TF_NOISE.match(line)
    ] == []


@pytest.mark.parametrize("to_file", [False, True])
def test_ctrl_c_while_waiting_for_input(
    model, workdir, sentences, reference, to_file
):
    out = workdir / "interrupted.txt"
    out.write_text("old\n", "utf-8")
    output = ("--output", out) if to_file else ()
    process = _start(
        "translate",
        "--model",
        model,
        *output,
        cwd=workdir,
        stdin=subprocess.PIPE,
    )
    try:
        process.stdin.write("".join(s + "\n" for s in sentences[:2]).encode())
        process.stdin.flush()
        if to_file:
            _wait_for_temporary_lines(workdir, 2)
            answered = b""
        else:
            answered = _read_until(
                process.stdout.fileno(), lambda d: d.count(b"\n") == 2
            )
        time.sleep(0.5)  # back to waiting for stdin
        process.send_signal(signal.SIGINT)
        code, stdout, stderr, raw = _finish(process)
    finally:
        process.kill()
    expected = reference.translate(sentences[:2])
    assert code == 130, raw[-3000:]
    assert len(stderr) == 1 and "Traceback" not in raw, raw
    assert stderr[0].startswith(
        "keras-nmt translate: interrupted after 2 translated line(s)"
    )
    if to_file:
        assert "interrupted.txt.partial" in stderr[0]
        assert out.read_text("utf-8") == "old\n"
        partial = out.with_name(out.name + ".partial").read_text("utf-8")
        assert _lines(partial) == expected
        assert not list(workdir.glob(files.TEMP_PREFIX + "*"))
    else:
        assert _lines(answered.decode() + stdout) == expected


def _wait_for_temporary_lines(directory, count):
    """Wait until the temporary file of --output holds `count` lines."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for path in directory.glob(files.TEMP_PREFIX + "*"):
            if path.read_bytes().count(b"\n") >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"no temporary file with {count} lines")


def test_terminal_answers_each_line_when_entered(model, workdir, reference):
    """On a TTY: a prompt, each line answered before the next is typed,
    Ctrl-D ends."""
    master, slave = os.openpty()
    process = _start(
        "translate",
        "--model",
        model,
        cwd=workdir,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        _read_until(master, lambda d: d.endswith(b"> "))
        answers = []
        for sentence in ("Go now.", "I did it."):
            os.write(master, sentence.encode() + b"\n")
            expected = reference.translate([sentence])[0].encode()
            screen = _read_until(
                master, lambda d, e=expected: e + b"\r\n> " in d
            )
            answers.append(screen)
        os.write(master, b"\x04")  # Ctrl-D at the start of a line
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        process.kill()
        os.close(master)
    assert all(b"Traceback" not in screen for screen in answers)


def test_progress_bar_on_a_terminal_stderr(model, workdir, sentences):
    master, slave = os.openpty()
    with open(workdir / "in.txt", "rb") as source:
        process = _start(
            "translate",
            "--model",
            model,
            "--output",
            "progress.txt",
            cwd=workdir,
            stdin=source,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
    os.close(slave)
    try:
        screen = _read_until(master, lambda d: b"lines/s)" in d)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        process.kill()
        os.close(master)
    screen = screen.decode()
    # While running: lines, rate, percent of the file and ETA; at the end
    # a summary.
    assert re.search(r"\d+ lines, [\d.]+ lines/s, \d+%, ETA \d+:\d\d", screen)
    assert re.search(rf"{len(sentences)} lines in \d+:\d\d", screen)
