"""The `--out` directory of a training run: what is ours there, who may
write it, and how a new run replaces an old model without ever losing it.

Guarantees (see the README's "Interrupted training"):

- A directory we did not write is never written into: a non-empty `--out`
  without our marker file (`.keras-nmt-run`) is refused.
- One run at a time: the marker file is also an exclusive lock (`flock`),
  held for the whole run; a second run into the same directory fails at
  once.
- A trained model is replaced only on request (`overwrite=True`), and then
  only once the new run has saved its first checkpoint: until then the new
  run trains in a staging directory beside `--out`, which is deleted if the
  run fails or is interrupted.
- Only what we wrote is ever deleted (the backup folder carries a marker of
  its own, and only our backup files are removed from it).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import math
import os
import pathlib
import shutil
import uuid

from keras_nmt import files
from keras_nmt.translator import CONFIG_FILE

try:  # POSIX; elsewhere runs are not locked.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MARKER_FILE = ".keras-nmt-run"
BACKUP_DIR = "backup"
BACKUP_MARKER_FILE = ".keras-nmt-backup"
BACKUP_STATE_FILE = "state.json"
BACKUP_WEIGHTS_GLOB = "state-*.weights.h5"
HISTORY_FILE = "history.csv"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PATTERN = "epoch-{epoch:04d}.weights.h5"
CHECKPOINTS_GLOB = "epoch-*.weights.h5"


class RunDirectoryError(ValueError):
    """`--out` cannot be used for this run (the message says why and what
    to do)."""


class RunDirectory:
    """The output directory of one training run (the chief's).

    Use it as a context manager: `prepare(resume, overwrite)` on entry,
    then `dir` is where the run writes (the staging directory until the
    first checkpoint when a trained model is being replaced); `promote()`
    after the first checkpoint; on exit the lock is released and an
    unpromoted staging directory deleted.

    Args:
        path: the `--out` directory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.dir = self.path
        self._staging: pathlib.Path | None = None
        self._locks: list = []

    # ---- what is there --------------------------------------------------

    def is_ours(self) -> bool:
        return (self.path / MARKER_FILE).is_file()

    def has_model(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    def has_backup(self) -> bool:
        return (self.path / BACKUP_DIR / BACKUP_STATE_FILE).is_file()

    @property
    def backup_dir(self) -> pathlib.Path:
        return self.dir / BACKUP_DIR

    @property
    def checkpoints_dir(self) -> pathlib.Path:
        return self.dir / CHECKPOINTS_DIR

    @property
    def staged(self) -> bool:
        """Whether the run still writes to a staging directory."""
        return self._staging is not None

    # ---- the run --------------------------------------------------------

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Check that this run may use the directory, lock it, and choose
        where the run writes (`self.dir`).

        Raises:
            RunDirectoryError: for a directory that is not ours, is in use,
                holds a model (without `overwrite`), or has nothing to
                resume.
        """
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(
                f"--out '{path}' is a file; expected a directory (new, "
                "empty, or written by `keras-nmt train`)."
            )
        if path.is_dir() and any(path.iterdir()) and not self.is_ours():
            raise RunDirectoryError(
                f"--out '{path}' is not empty and was not written by "
                f"`keras-nmt train` (it has no {MARKER_FILE}); its files are "
                "never overwritten. Choose a new or empty directory."
            )
        path.mkdir(parents=True, exist_ok=True)
        self._lock(path)
        files.remove_temporary_files(path)
        if resume:
            if not self.has_backup():
                raise RunDirectoryError(self.nothing_to_resume())
            return
        if self.has_model():
            if not overwrite:
                raise RunDirectoryError(
                    f"--out '{path}' holds a trained model. Pass --overwrite "
                    "to replace it with a new run (it is replaced only once "
                    "the new run has completed its first epoch), --resume "
                    "to continue an interrupted run there, or choose "
                    "another directory."
                )
            staging = path.parent / (
                f"{files.TEMP_PREFIX}{path.name}-new-{uuid.uuid4().hex[:12]}"
            )
            staging.mkdir()
            self._lock(staging)
            self._staging = self.dir = staging
        else:  # ours, with no model: a run stopped before its first epoch
            self.remove_backup()

    def nothing_to_resume(self) -> str:
        """What is true of a directory without a backup, in one line."""
        where = f"'{self.path}'"
        if self.has_model():
            return (
                f"Nothing to resume in {where}: its run completed (or was "
                "stopped before the first backup of a new run, which left "
                "the previous model in place). Train without --resume, "
                "with --overwrite to replace the model."
            )
        return (
            f"Nothing to resume in {where}: no run there got as far as its "
            "first backup. Train without --resume to start over."
        )

    def promote(self) -> None:
        """Swap the staging directory in for `path` (after the first
        checkpoint): the previous model is replaced only now."""
        if self._staging is None:
            return
        files.replace_directory(self._staging, self.path)
        self._staging = None
        self.dir = self.path

    def close(self) -> None:
        """Release the locks; delete an unpromoted staging directory."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
            self.dir = self.path
        for handle in self._locks:
            handle.close()
        self._locks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def remove_backup(self) -> None:
        """Delete our backup files (only ours: the folder must carry our
        marker, and other files in it are kept)."""
        backup = self.backup_dir
        if not (backup / BACKUP_MARKER_FILE).is_file():
            return
        for name in (BACKUP_STATE_FILE, BACKUP_MARKER_FILE):
            (backup / name).unlink(missing_ok=True)
        for weights in backup.glob(BACKUP_WEIGHTS_GLOB):
            weights.unlink(missing_ok=True)
        files.remove_temporary_files(backup)
        with contextlib.suppress(OSError):
            backup.rmdir()  # only if nothing else is left

    def _lock(self, directory: pathlib.Path) -> None:
        marker = directory / MARKER_FILE
        handle = open(marker, "a+", encoding="utf-8")  # noqa: SIM115
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                handle.close()
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise RunDirectoryError(
                    f"--out '{self.path}' is in use by another `keras-nmt "
                    "train` run (its lock is held). Wait for it to finish, "
                    "or choose another directory."
                ) from None
        self._locks.append(handle)


# ---- history.csv (written by keras.callbacks.CSVLogger) ------------------


def read_history(path: pathlib.Path) -> list[dict]:
    """The rows of a CSVLogger file (an unfinished last line is dropped)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def keep_history(path: pathlib.Path, epochs: int) -> list[dict]:
    """Keep the rows of the first `epochs` epochs in the CSVLogger file
    (rows of an epoch that the resumed run trains again are dropped)."""
    rows = read_history(path)
    kept = [row for row in rows if epoch_of(row) < epochs]
    if path.is_file() and rows:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
        files.write_text_atomically(path, out.getvalue())
    return kept


def epoch_of(row: dict) -> float:
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return math.inf


def best_value(rows: list[dict], monitor: str) -> float | None:
    """The best finite value of `monitor` in CSVLogger rows (the highest
    for `val_bleu`, else the lowest)."""
    from keras_nmt.training.selection import MODES
    from keras_nmt.training.selection import best_of

    return best_of([row.get(monitor) for row in rows], MODES[monitor])
