"""Requests batched together for one model: a worker thread owns the
`Translator`, and requests with the same options that arrive within a few
milliseconds of each other are translated in one call.

Plain Python (threads and a queue); the translator is only called, so this
module imports no framework.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

from keras_nmt.decoding.methods import DecodingOptions

_STOP = object()


class BatcherClosed(RuntimeError):
    """The batcher was closed: no more translations."""


class BatcherBusy(RuntimeError):
    """More requests are waiting than the batcher's `max_queue`."""


class Result(NamedTuple):
    """The translation of one sentence.

    Attributes:
        text: the translation (`Translator.translate`'s).
        score: its decoding score.
        hypotheses: `(text, score)` of the `n_best` best translations, best
            first (`Translator.translate_n_best`'s); `[(text, score)]` for
            `n_best=1`.
        translation: the `Translation` of `translate_with_attention` (text,
            tokens, attention map, score) when attention was asked for, else
            `None`.
    """

    text: str
    score: float
    hypotheses: list[tuple[str, float]]
    translation: Any = None


@dataclasses.dataclass
class _Job:
    sentences: list[str]
    key: tuple[DecodingOptions, bool]
    future: concurrent.futures.Future


@dataclasses.dataclass
class BatchStats:
    """What the worker has done: `requests` answered in `batches`
    translator calls (a batch is one call per option set; attention maps
    add one call per sentence), and the most requests in one batch."""

    requests: int = 0
    sentences: int = 0
    batches: int = 0
    largest_batch: int = 0


class Batcher:
    """Translate requests in batches on one worker thread.

    The `Translator` is used by the worker thread only, so it is never
    called from two threads at once. The first request to arrive waits up
    to `max_wait` seconds for others; then every waiting request with the
    same decoding options and attention flag (up to `max_batch` sentences,
    the first request always included) is translated in one
    `translate_n_best` call, and each request gets the results of its own
    sentences, in order. Requests with other options wait for the next
    batch, in order of arrival. Attention maps come from
    `translate_with_attention`, which takes one sentence per call.

    Args:
        translator: a `keras_nmt.Translator`.
        max_wait: seconds the first request of a batch waits for others.
        max_batch: most sentences per batch (default: the translator's
            `batch_size`); a larger request is translated alone.
        max_queue: most requests waiting; `submit` raises `BatcherBusy`
            beyond it.

    Example:

    >>> with Batcher(translator) as batcher:  # doctest: +SKIP
    ...     results = batcher.translate(["Hola."], DecodingOptions())
    """

    def __init__(
        self,
        translator,
        *,
        max_wait: float = 0.005,
        max_batch: int | None = None,
        max_queue: int = 256,
    ):
        if max_batch is None:
            max_batch = translator.batch_size
        self.translator = translator
        self.max_wait = float(max_wait)
        self.max_batch = int(max_batch)
        self.stats = BatchStats()
        self._queue = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._lock = threading.Lock()  # orders `submit` before `close`
        self._worker = threading.Thread(
            target=self._loop, name="keras-nmt-batcher", daemon=True
        )
        self._worker.start()

    def check(self, options: DecodingOptions) -> None:
        """Raise `ValueError` if `options` cannot work with this model (a
        beam wider than the vocabulary, ...), before any decoding."""
        self.translator.translate([], **options.to_dict())

    def submit(
        self,
        sentences: Sequence[str],
        options: DecodingOptions,
        attention: bool = False,
    ) -> concurrent.futures.Future:
        """Queue `sentences` for translation.

        Returns:
            A `Future` whose result is one `Result` per sentence, in order;
            its exception is the translator's (`ValueError` for options it
            refuses) or `BatcherClosed`. Cancelling it before its batch
            starts skips the request.

        Raises:
            BatcherBusy: if `max_queue` requests are already waiting.
            BatcherClosed: after `close()`.
        """
        job = _Job(
            list(sentences),
            (options, bool(attention)),
            concurrent.futures.Future(),
        )
        # Under the lock, a job is queued before `close` queues the stop
        # mark, so the worker answers it or fails it: none is left waiting.
        with self._lock:
            if self._closed.is_set():
                raise BatcherClosed("The translation worker has stopped.")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise BatcherBusy(
                    f"{self._queue.maxsize} requests are already waiting "
                    "for the model; try again shortly."
                ) from None
        return job.future

    def translate(
        self,
        sentences: Sequence[str],
        options: DecodingOptions,
        attention: bool = False,
        timeout: float | None = None,
    ) -> list[Result]:
        """`submit(...)` and wait for its results."""
        return self.submit(sentences, options, attention).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker once its current batch is done; requests still
        waiting fail with `BatcherClosed`."""
        with self._lock:
            closing = not self._closed.is_set()
            self._closed.set()
        if closing:
            while self._worker.is_alive():
                try:
                    self._queue.put(_STOP, timeout=0.1)
                    break
                except queue.Full:
                    continue
        self._worker.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ---- the worker ------------------------------------------------------

    def _loop(self) -> None:
        pending = collections.deque()
        while True:
            if not pending:
                job = self._queue.get()
                if job is _STOP:
                    break
                pending.append(job)
                deadline = time.monotonic() + self.max_wait
            else:  # requests already waiting: only take what has arrived
                deadline = time.monotonic()
            if self._gather(pending, deadline) or self._closed.is_set():
                break
            group = self._take_group(pending)
            if group:
                self._run(group)
        # Closed: whatever still waits is answered, not left hanging.
        self._fail(pending)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                self._fail([job])

    def _gather(self, pending: collections.deque, deadline: float) -> bool:
        """Move queued jobs into `pending`: wait for more until `deadline`
        unless the first job's batch is already full, then take what has
        arrived (at most `max_queue`). True when told to stop."""
        key = pending[0].key
        size = sum(len(j.sentences) for j in pending if j.key == key)
        while True:
            timeout = deadline - time.monotonic()
            try:
                if timeout > 0 and size < self.max_batch:
                    job = self._queue.get(timeout=timeout)
                else:
                    job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is _STOP:
                return True
            pending.append(job)
            if job.key == key:
                size += len(job.sentences)

    def _take_group(self, pending: collections.deque) -> list[_Job]:
        """Remove from `pending` the first job and the later ones with its
        key that fit in `max_batch` sentences; cancelled jobs are
        dropped."""
        key = pending[0].key
        group, rest, size = [], [], 0
        for job in pending:
            fits = not group or size + len(job.sentences) <= self.max_batch
            if job.key != key or not fits:
                rest.append(job)
            elif job.future.set_running_or_notify_cancel():
                group.append(job)
                size += len(job.sentences)
        pending.clear()
        pending.extend(rest)
        return group

    def _run(self, group: list[_Job]) -> None:
        options, attention = group[0].key
        sentences = [s for job in group for s in job.sentences]
        try:
            results = self._translate(sentences, options, attention)
        except Exception as error:  # each request gets it; the worker goes on
            for job in group:
                job.future.set_exception(error)
            return
        stats = self.stats
        stats.requests += len(group)
        stats.sentences += len(sentences)
        stats.batches += 1
        stats.largest_batch = max(stats.largest_batch, len(group))
        begin = 0
        for job in group:
            end = begin + len(job.sentences)
            job.future.set_result(results[begin:end])
            begin = end

    def _translate(
        self, sentences: list[str], options: DecodingOptions, attention: bool
    ) -> list[Result]:
        kwargs = options.to_dict()
        n_best = None
        if not attention or options.n_best > 1:
            n_best = self.translator.translate_n_best(sentences, **kwargs)
        if not attention:
            return [
                Result(best[0][0], best[0][1], [tuple(h) for h in best])
                for best in n_best
            ]
        results = []
        for i, sentence in enumerate(sentences):
            translation = self.translator.translate_with_attention(
                sentence, **kwargs
            )
            hypotheses = (
                [tuple(h) for h in n_best[i]]
                if n_best is not None
                else [(translation.text, translation.score)]
            )
            results.append(
                Result(
                    translation.text, translation.score, hypotheses, translation
                )
            )
        return results

    def _fail(self, jobs) -> None:
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(
                    BatcherClosed("The server is shutting down.")
                )
