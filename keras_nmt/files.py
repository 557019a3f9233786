"""Crash-safe file writing: a file or directory is written completely
under a temporary name next to its final place, flushed to disk, then renamed
over the real name (`os.replace`, atomic on POSIX and Windows), so a reader
never sees a half-written file under the real name, and a crash leaves the
old version or the new one, whole.

Used by `Translator.save`, `export_saved_model` and the training run
directory.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import uuid

# Files and directories being written start with this prefix until they are
# complete and renamed; a crash may leave some, which
# `remove_temporary_files` deletes (and only those).
TEMP_PREFIX = ".keras-nmt-tmp-"


def fsync(path: pathlib.Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_directory(directory: pathlib.Path) -> None:
    """Make renames in `directory` durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_path(directory, name: str, suffix: str = "") -> pathlib.Path:
    """A new name in `directory` for what becomes `name` once complete
    (created by the caller, so it gets the usual permissions)."""
    unique = uuid.uuid4().hex[:12]
    return pathlib.Path(directory) / f"{TEMP_PREFIX}{name}-{unique}{suffix}"


def write_atomically(path, write, suffix: str = "") -> None:
    """Crash-safe `write(path)`: never a partial file at `path`.

    Calls `write(temporary)` with a new path in the same directory (named
    `TEMP_PREFIX + path.stem + "-..." + suffix`), flushes the file to disk,
    then renames it over `path` with `os.replace`, which is atomic: readers
    see the old file or the new one, whole. On an error the temporary file
    is deleted and the error raised.

    Args:
        path: the file to write.
        write: a function that writes the file at the path it is given.
        suffix: the ending the writer needs (e.g. `".keras"`).
    """
    path = pathlib.Path(path)
    temporary = temporary_path(path.parent, path.stem, suffix)
    try:
        write(temporary)
        fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def save_model_atomically(model, path: str | os.PathLike) -> None:
    """`model.save(path)` (a `.keras` file) that never leaves a partial file
    at `path`: the previous file stays until the new one is complete."""
    write_atomically(path, model.save, suffix=".keras")


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` through a temporary file and a rename."""
    write_atomically(
        path, lambda p: p.write_text(text, encoding="utf-8"), suffix=".tmp"
    )


def remove_temporary_files(
    directory: str | os.PathLike, name: str | None = None
) -> None:
    """Delete what interrupted crash-safe writes left in `directory`: every
    entry named `TEMP_PREFIX...`, or only `TEMP_PREFIX + name + "-..."`."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return
    prefix = TEMP_PREFIX if name is None else f"{TEMP_PREFIX}{name}-"
    for entry in directory.iterdir():
        if not entry.name.startswith(prefix):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def replace_directory(new: pathlib.Path, path: pathlib.Path) -> None:
    """Rename the complete directory `new` to `path`, replacing (and then
    deleting) a previous `path`."""
    if path.exists():
        old = path.parent / f"{TEMP_PREFIX}{path.name}-old-{uuid.uuid4().hex}"
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)
    fsync_directory(path.parent)
