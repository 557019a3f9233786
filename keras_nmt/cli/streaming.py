"""`keras-nmt translate` without TEXT: translate a stream of lines, writing
each chunk as soon as it is translated."""

from __future__ import annotations

import sys


def translate_stream(translator, args) -> int:
    """Translate stdin line by line in chunks of the translator's batch
    size; each chunk is written and flushed when done."""
    chunk: list[str] = []
    for line in sys.stdin:
        chunk.append(line.rstrip("\n"))
        if len(chunk) == translator.batch_size:
            _write(translator.translate(chunk))
            chunk = []
    if chunk:
        _write(translator.translate(chunk))
    return 0


def _write(lines: list[str]) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
