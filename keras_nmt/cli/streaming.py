"""`keras-nmt translate` without TEXT: translate a stream of lines.

Input: stdin, or `--input FILE`, one sentence per line. It is read as bytes
and each line is decoded here as UTF-8 (its `\\n` or `\\r\\n` removed), so a
line that is not UTF-8 is reported with its number and column:

- `--on-invalid stop` (default): the lines before it are translated and
  written, then the command stops with status 1 and one line on stderr,
  `FILE, line N: invalid UTF-8 (byte 0x.. at column C); ...`.
- `--on-invalid skip`: it is translated as an empty line (so output line N
  still answers input line N), reported on stderr, and the stream goes on.

Chunks: up to the translator's `batch_size` lines are decoded at once, but
a chunk never waits for more input: it holds the complete lines available
when its first line arrives (a full chunk from a file, often one line from
a terminal or a slow pipe). Each chunk is written and flushed as soon as it
is translated.

On a terminal (stdin a TTY): a `> ` prompt on stderr before each wait for
input, each line answered when entered, Ctrl-D to end. A progress bar
(lines, lines/s, and percent and ETA when the input is a regular file) is
drawn on stderr when stderr is a TTY and the translations go elsewhere (a
file or a pipe); nothing extra is printed when stderr is not a TTY.

Output: one translation per input line on stdout, or with `--output FILE`
into a temporary file next to FILE (`keras_nmt.files.temporary_path`),
renamed to FILE once the input is done, so FILE never holds a partial
output. Interrupted (Ctrl-C) or stopped by an error, the lines translated
so far are kept in `FILE.partial` and FILE is left as it was. `--output`
is never the input file. With `--n-best K`, each input line gives K lines,
best first, `LINE<TAB>SCORE<TAB>TEXT` (see `translation_lines`).

How it ends (the lines already written stay written in every case):

- 0: end of input, or stdout was closed by its reader (`... | head -1`):
  reading stops and the command exits quietly, without a "Broken pipe"
  message.
- 130: Ctrl-C (SIGINT); one line on stderr saying how many lines were
  translated and where they are.
- 1: invalid UTF-8 (with `stop`) or an error such as a full disk; one line
  on stderr (printed by `keras_nmt.cli.main`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import select
import stat
import sys
import time
from collections.abc import Callable

from keras_nmt import files
from keras_nmt.cli.parser import PROG

# `--input -` / `--output -`: stdin / stdout.
STDIO = "-"
PROMPT = "> "
PARTIAL_SUFFIX = ".partial"
INTERRUPTED = 130
_READ_BLOCK = 1 << 16
# The progress bar is redrawn at most this often (seconds).
_REDRAW_EVERY = 0.2


class StreamError(ValueError):
    """A user error of the stream (a one-line message for the CLI)."""


class InvalidInput(StreamError):
    """A line of the input that is not valid UTF-8."""


def translation_lines(
    translator, sentences: list[str], first: int, n_best: bool
) -> list[str]:
    """The output lines for `sentences`, input lines `first, first + 1...`.

    Without `n_best`: one translation per sentence. With `n_best`: the
    translator's `options.n_best` hypotheses per sentence, best first, one
    per line as `LINE<TAB>SCORE<TAB>TEXT`, where LINE is the 1-based number
    of the input line and SCORE the hypothesis' score with 4 decimals (the
    length-penalised log-probability for beam search), e.g.
    `3<TAB>-4.1234<TAB>where is tom?`. The text comes last, so
    `line.split("\\t", 2)` parses every line.
    """
    if not n_best:
        return translator.translate(sentences)
    return [
        f"{number}\t{hypothesis.score:.4f}\t{hypothesis.text}"
        for number, hypotheses in enumerate(
            translator.translate_n_best(sentences), first
        )
        for hypothesis in hypotheses
    ]


def decode_line(raw: bytes, number: int, source: str) -> str:
    """Line `number` of `source` without its line break, as a `str`.

    Raises:
        InvalidInput: if it is not UTF-8; the message names the first
            invalid byte and its (1-based, in bytes) column.
    """
    line = raw[:-1] if raw.endswith(b"\n") else raw
    line = line[:-1] if line.endswith(b"\r") else line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{source}, line {number}: invalid UTF-8 (byte "
            f"{line[error.start]:#04x} at column {error.start + 1})"
        ) from None


class LineReader:
    """The lines of a file descriptor, as bytes, as soon as they are
    complete (the last one may lack its `\\n`).

    Reads with `os.read`, so a terminal or a pipe delivers what has been
    written so far instead of a full buffer.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.lines_read = 0
        self.bytes_read = 0  # of the lines returned
        info = os.fstat(fd)
        self.regular_file = stat.S_ISREG(info.st_mode)
        self.size = None  # bytes left to read, for a regular file
        if self.regular_file:
            with contextlib.suppress(OSError):
                self.size = info.st_size - os.lseek(fd, 0, os.SEEK_CUR)
        self._buffer = bytearray()
        self._scanned = 0  # no line break in _buffer[:_scanned]
        self._eof = False

    def chunk(self, size: int, waiting: Callable | None = None) -> list[bytes]:
        """Up to `size` lines: waits for the first one, then takes those
        already available without waiting. Empty at the end of the input.

        `waiting()` is called before each wait for a first line.
        """
        lines: list[bytes] = []
        while len(lines) < size:
            line = self._pop_line()
            if line is not None:
                lines.append(line)
            elif self._eof or (lines and not self._ready()):
                break
            else:
                if waiting is not None and not lines and not self._buffer:
                    waiting()
                self._fill()
        return lines

    def _pop_line(self) -> bytes | None:
        end = self._buffer.find(b"\n", self._scanned) + 1
        if not end:
            self._scanned = len(self._buffer)
            if not (self._eof and self._buffer):
                return None
            end = len(self._buffer)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._scanned = 0
        self.lines_read += 1
        self.bytes_read += end
        return line

    def _ready(self) -> bool:
        """Whether a read would return at once."""
        if self.regular_file:
            return True
        try:
            return bool(select.select([self.fd], [], [], 0)[0])
        except (OSError, ValueError):  # e.g. a pipe on Windows
            return False

    def _fill(self) -> None:
        data = os.read(self.fd, _READ_BLOCK)
        self._eof = not data
        self._buffer += data


class StandardOutput:
    """Translations to stdout, flushed at each write."""

    def __init__(self):
        sys.stdout.flush()
        self._binary = getattr(sys.stdout, "buffer", None)

    def is_terminal(self) -> bool:
        return sys.stdout.isatty()

    def write(self, text: str) -> None:
        if self._binary is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            self._binary.write(text.encode("utf-8"))
            self._binary.flush()

    def commit(self) -> None:
        pass

    def keep_partial(self) -> str:
        """Where the lines written so far are."""
        return "written to stdout"


class AtomicFileOutput:
    """Translations to `path` through a temporary file in its directory:
    renamed to `path` when complete (`commit`), or to `path.partial` when
    stopped early (`keep_partial`)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.temporary = files.temporary_path(
            self.path.parent, self.path.name, ".tmp"
        )
        self._file = open(self.temporary, "wb")  # noqa: SIM115

    def is_terminal(self) -> bool:
        return False

    def write(self, text: str) -> None:
        self._file.write(text.encode("utf-8"))
        self._file.flush()

    def commit(self) -> None:
        self._rename(self.path)

    def keep_partial(self) -> str:
        partial = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        try:
            self._rename(partial)
        except OSError as error:
            return f"still in {self.temporary} ({error})"
        return f"kept in {partial} ({self.path} left as it was)"

    def _rename(self, path: pathlib.Path) -> None:
        self._file.close()
        files.fsync(self.temporary)
        os.replace(self.temporary, path)
        files.fsync_directory(path.parent)


class Progress:
    """A progress line on stderr (lines, lines/s; percent and ETA when the
    input size is known), redrawn in place; does nothing when disabled."""

    def __init__(self, enabled: bool, total_bytes: int | None):
        self.enabled = enabled
        self.total_bytes = total_bytes or None
        self.start = time.monotonic()
        self._drawn = 0  # characters of the line on screen
        self._last = 0.0

    def update(self, lines: int, bytes_done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < _REDRAW_EVERY:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        text = f"{lines:,} lines, {lines / elapsed:.1f} lines/s"
        if self.total_bytes is not None and bytes_done:
            fraction = min(bytes_done / self.total_bytes, 1.0)
            eta = elapsed * (1 - fraction) / fraction
            text += f", {fraction:.0%}, ETA {_duration(eta)}"
        self._draw(text)

    def clear(self) -> None:
        """Remove the line (before a message on stderr)."""
        if self._drawn:
            self._draw("")
            self._drawn = 0

    def finish(self, lines: int) -> None:
        """Replace the line with a summary that stays."""
        if not self._drawn:
            return
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self._draw(
            f"{lines:,} lines in {_duration(elapsed)} "
            f"({lines / elapsed:.1f} lines/s)"
        )
        _write_stderr("\n")
        self._drawn = 0

    def _draw(self, text: str) -> None:
        _write_stderr("\r" + text.ljust(self._drawn) + "\r" + text)
        self._drawn = len(text)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def _write_stderr(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text)
        sys.stderr.flush()


def say(message: str) -> None:
    """One line `keras-nmt translate: message` on stderr."""
    _write_stderr(f"{PROG} translate: {message}\n")


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so that
    Python's final flush at exit does not complain of a broken pipe."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class StreamTranslator:
    """Reads, translates and writes the stream, chunk by chunk (see the
    module docstring for what it promises)."""

    def __init__(self, translator, reader, source, output, args):
        self.translator = translator
        self.reader = reader
        self.source = source
        self.output = output
        self.on_invalid = args.on_invalid
        self.n_best = args.n_best is not None
        self.interactive = os.isatty(reader.fd)
        self.progress = Progress(
            enabled=_stderr_is_terminal()
            and not self.interactive
            and not output.is_terminal(),
            total_bytes=reader.size,
        )
        self.written = 0  # input lines whose translations are written

    def run(self) -> int:
        """Translate everything; returns the exit status (0 or 130)."""
        try:
            self._translate_all()
        except BrokenPipeError:
            self.progress.clear()
            silence_stdout()
            return 0
        except KeyboardInterrupt:
            self.progress.clear()
            kept = self.output.keep_partial()
            if self.interactive:
                _write_stderr("\n")
            say(f"interrupted after {self.written} translated line(s), {kept}")
            return INTERRUPTED
        except (ValueError, OSError) as error:
            self.progress.clear()
            kept = self.output.keep_partial()
            hint = ""
            if isinstance(error, InvalidInput):
                hint = (
                    " (--on-invalid skip writes an empty line for an invalid "
                    "line and goes on)"
                )
            raise StreamError(
                f"{error}; the {self.written} line(s) translated before it "
                f"are {kept}{hint}"
            ) from error
        except BaseException:
            self.progress.clear()
            self.output.keep_partial()
            raise
        self.output.commit()
        self.progress.finish(self.written)
        return 0

    def _translate_all(self) -> None:
        prompt = self._prompt if self.interactive else None
        while raw := self.reader.chunk(self.translator.batch_size, prompt):
            first = self.reader.lines_read - len(raw) + 1
            sentences, invalid = self._decode(raw, first)
            if sentences:
                lines = translation_lines(
                    self.translator, sentences, first, self.n_best
                )
                self.output.write("".join(line + "\n" for line in lines))
                self.written += len(sentences)
            if invalid is not None:
                raise invalid
            self.progress.update(self.written, self.reader.bytes_read)
        if self.interactive:
            _write_stderr("\n")  # after the last prompt

    def _decode(self, raw, first) -> tuple[list[str], InvalidInput | None]:
        """The sentences of `raw`; with `stop`, only those before the first
        invalid line, and its error."""
        sentences = []
        for number, line in enumerate(raw, first):
            try:
                sentences.append(decode_line(line, number, self.source))
            except InvalidInput as error:
                if self.on_invalid == "stop":
                    return sentences, error
                self.progress.clear()
                say(f"warning: {error}; translated as an empty line")
                sentences.append("")
        return sentences, None

    def _prompt(self) -> None:
        _write_stderr(PROMPT)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def check_paths(args) -> None:
    """Refuse an impossible --input / --output before the model loads.

    Raises:
        StreamError: TEXT together with --input, a missing --input, an
            --output that is a directory, lies in a missing directory, or
            is the input file.
    """
    reads_stdin = not args.text and args.input in (None, STDIO)
    if args.text and args.input is not None:
        raise StreamError(
            "Sentences come from TEXT arguments or from --input, not both; "
            "drop one of them."
        )
    if args.input not in (None, STDIO):
        if not os.path.exists(args.input):
            raise StreamError(f"--input {args.input!r}: no such file.")
        if os.path.isdir(args.input):
            raise StreamError(
                f"--input {args.input!r} is a directory; expected a text file."
            )
    if args.output in (None, STDIO):
        return
    output = pathlib.Path(args.output)
    if output.is_dir():
        raise StreamError(
            f"--output {args.output!r} is a directory; --output names the "
            "file to write."
        )
    if not output.parent.is_dir():
        raise StreamError(
            f"--output {args.output!r}: the directory {str(output.parent)!r} "
            "does not exist; create it first."
        )
    if reads_stdin:
        same = output.exists() and os.path.samestat(os.fstat(0), output.stat())
    else:
        same = args.input is not None and output.exists()
        same = same and os.path.samefile(args.input, output)
    if same:
        raise StreamError(
            f"--output {args.output!r} is the input file, which is never "
            "overwritten; write the translations to another file."
        )


def write_translations(lines: list[str], path: str | None) -> None:
    """All of `lines` to stdout (quietly stopping if its reader has gone)
    or atomically to `path`."""
    text = "".join(line + "\n" for line in lines)
    if path not in (None, STDIO):
        files.write_text_atomically(path, text)
        return
    try:
        StandardOutput().write(text)
    except BrokenPipeError:
        silence_stdout()


def translate_stream(translator, args) -> int:
    """Translate the lines of stdin or `args.input` into stdout or
    `args.output`, chunk by chunk (see the module docstring).

    Returns:
        The exit status: 0 at the end of the input or once stdout is
        closed by its reader, 130 if interrupted.

    Raises:
        StreamError: on invalid UTF-8 (with `--on-invalid stop`) or an
            error while reading or writing, after writing every line before
            it (kept in `FILE.partial` with `--output FILE`).
    """
    with contextlib.ExitStack() as stack:
        if args.input in (None, STDIO):
            fd, source = 0, "stdin"
        else:
            file = stack.enter_context(open(args.input, "rb"))
            fd, source = file.fileno(), args.input
        reader = LineReader(fd)
        if args.output in (None, STDIO):
            output = StandardOutput()
        else:
            output = AtomicFileOutput(args.output)
        return StreamTranslator(translator, reader, source, output, args).run()
