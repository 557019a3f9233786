"""`Batcher`: requests that arrive together share one translator call, each
gets its own sentences' results, options never mix, failures reach every
request of the batch, and closing answers everyone.

Most tests drive a fake translator whose translations name their sentence
and options, and which can be held inside a call (a gate), so batches form
deterministically; the last one uses the real (tiny) translator.
"""

import concurrent.futures
import random
import threading
import time

import numpy as np
import pytest

from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.serving.batching import Batcher
from keras_nmt.serving.batching import BatcherBusy
from keras_nmt.serving.batching import BatcherClosed
from tests.serving.fake import GREEDY
from tests.serving.fake import TIMEOUT
from tests.serving.fake import FakeTranslator
from tests.serving.fake import fake_text as _text

BEAM = DecodingOptions(method="beam", beam_width=3, n_best=2)


@pytest.fixture
def fake():
    return FakeTranslator()


def _hold(fake, batcher):
    """Keep the worker busy in a call on a first request; returns it."""
    fake.gate.clear()
    first = batcher.submit(["first"], GREEDY)
    assert fake.entered.wait(TIMEOUT)
    return first


def test_requests_waiting_together_share_one_call(fake):
    with Batcher(fake, max_wait=0.001) as batcher:
        first = _hold(fake, batcher)
        waiting = [
            batcher.submit([f"s{i}a", f"s{i}b"][: 1 + i % 2], GREEDY)
            for i in range(3)
        ]
        fake.gate.set()
        results = [f.result(TIMEOUT) for f in waiting]
        assert first.result(TIMEOUT)[0].text == "first|greedy|0"
    assert [call[1] for call in fake.calls] == [
        ["first"],
        ["s0a", "s1a", "s1b", "s2a"],
    ]
    for i, result in enumerate(results):
        sentences = [f"s{i}a", f"s{i}b"][: 1 + i % 2]
        assert [r.text for r in result] == [
            _text(s, GREEDY.to_dict()) for s in sentences
        ]
        assert [r.hypotheses for r in result] == [
            [(r.text, r.score)] for r in result
        ]
        assert all(r.translation is None for r in result)
    assert batcher.stats.requests == 4 and batcher.stats.batches == 2
    assert batcher.stats.largest_batch == 3


def test_first_request_waits_for_others_that_arrive_within_max_wait(fake):
    with Batcher(fake, max_wait=0.5) as batcher:
        futures = [batcher.submit([f"s{i}"], GREEDY) for i in range(3)]
        for future in futures:
            future.result(TIMEOUT)
    assert [call[1] for call in fake.calls] == [["s0", "s1", "s2"]]


def test_other_options_wait_for_their_own_batch_in_order(fake):
    with Batcher(fake, max_wait=0.001) as batcher:
        _hold(fake, batcher)
        jobs = [
            (["g1"], GREEDY, False),
            (["b1"], BEAM, False),
            (["g2"], GREEDY, False),
            (["a1"], GREEDY, True),
            (["b2"], BEAM, False),
            (["a2"], GREEDY, True),
        ]
        futures = [batcher.submit(*job) for job in jobs]
        fake.gate.set()
        results = [f.result(TIMEOUT) for f in futures]
    calls = [(kind, sentences) for kind, sentences, _ in fake.calls[1:]]
    assert calls == [
        ("n_best", ["g1", "g2"]),
        ("n_best", ["b1", "b2"]),
        ("attention", ["a1"]),
        ("attention", ["a2"]),
    ]
    for (sentences, options, attention), result in zip(
        jobs, results, strict=True
    ):
        (r,) = result
        assert r.text == _text(sentences[0], options.to_dict())
        assert len(r.hypotheses) == options.n_best
        assert (r.translation is not None) == attention


def test_attention_with_n_best_gets_both(fake):
    options = BEAM
    with Batcher(fake) as batcher:
        (result,) = batcher.translate(["s"], options, attention=True)
    assert [kind for kind, _, _ in fake.calls] == ["n_best", "attention"]
    assert result.hypotheses == [
        (_text("s", options.to_dict(), k), -float(1 + k)) for k in range(2)
    ]
    assert result.translation.attention.shape == (2, 3)


def test_batches_hold_at_most_max_batch_sentences(fake):
    with Batcher(fake, max_wait=0.001, max_batch=4) as batcher:
        _hold(fake, batcher)
        sizes = [3, 2, 1, 6, 1]
        futures = [
            batcher.submit([f"r{i}s{j}" for j in range(n)], GREEDY)
            for i, n in enumerate(sizes)
        ]
        fake.gate.set()
        for future in futures:
            future.result(TIMEOUT)
    # r0 (3) + r2 (1) fill 4; r1 (2) and r4 (1) next; r3 (6) alone.
    assert [len(call[1]) for call in fake.calls[1:]] == [4, 3, 6]
    assert [call[1][0][:2] for call in fake.calls[1:]] == ["r0", "r1", "r3"]


def test_a_failure_reaches_every_request_of_its_batch_only(fake):
    with Batcher(fake, max_wait=0.001) as batcher:
        _hold(fake, batcher)
        failing = [batcher.submit([f"s{i}"], GREEDY) for i in range(2)]
        fake.fail_with = RuntimeError("out of memory")
        fake.gate.set()
        for future in failing:
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(TIMEOUT)
        fake.fail_with = None
        (after,) = batcher.translate(["later"], GREEDY, timeout=TIMEOUT)
    assert after.text == "later|greedy|0"


def test_a_cancelled_request_is_skipped(fake):
    with Batcher(fake, max_wait=0.001) as batcher:
        _hold(fake, batcher)
        cancelled = batcher.submit(["gone"], GREEDY)
        kept = batcher.submit(["kept"], GREEDY)
        assert cancelled.cancel()
        fake.gate.set()
        kept.result(TIMEOUT)
    assert ["gone"] not in [call[1] for call in fake.calls]
    assert fake.calls[-1][1] == ["kept"]


def test_check_refuses_options_the_model_cannot_use(fake):
    with Batcher(fake) as batcher:
        batcher.check(BEAM)
        with pytest.raises(ValueError, match="beam_width too large"):
            batcher.check(BEAM.replace(beam_width=11))
    assert fake.calls == []


def test_too_many_waiting_requests_are_refused(fake):
    with Batcher(fake, max_wait=0.001, max_queue=2) as batcher:
        _hold(fake, batcher)
        queued = [batcher.submit([f"s{i}"], GREEDY) for i in range(2)]
        with pytest.raises(BatcherBusy, match="2 requests are already"):
            batcher.submit(["one too many"], GREEDY)
        fake.gate.set()
        for future in queued:
            future.result(TIMEOUT)


def test_close_answers_waiting_requests_and_refuses_new_ones(fake):
    batcher = Batcher(fake, max_wait=0.001)
    first = _hold(fake, batcher)
    waiting = [batcher.submit([f"s{i}"], GREEDY) for i in range(3)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    fake.gate.set()  # the running batch completes
    closer.join(TIMEOUT)
    assert first.result(TIMEOUT)[0].text == "first|greedy|0"
    for future in waiting:
        with pytest.raises(BatcherClosed, match="shutting down"):
            future.result(TIMEOUT)
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"], GREEDY)


def test_concurrent_requests_each_get_their_own_results(fake):
    """8 threads x 40 requests of 1-3 sentences with two option sets:
    every request gets exactly its sentences' translations, in order."""
    errors = []

    def client(k):
        rng = random.Random(k)
        for r in range(40):
            sentences = [f"t{k}r{r}s{j}" for j in range(rng.randint(1, 3))]
            options = BEAM if rng.random() < 0.3 else GREEDY
            try:
                results = batcher.translate(sentences, options, timeout=30)
                expected = [_text(s, options.to_dict()) for s in sentences]
                assert [r.text for r in results] == expected
            except Exception as error:  # reported below
                errors.append(error)

    with Batcher(fake, max_wait=0.002) as batcher:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert batcher.stats.requests == 8 * 40
    assert batcher.stats.batches < batcher.stats.requests  # some shared
    assert all(len(call[1]) <= fake.batch_size for call in fake.calls)


def test_with_the_real_translator_results_equal_direct_calls(
    reference, model_dir, sentences
):
    from keras_nmt.translator import Translator

    translator = Translator.load(model_dir)
    requests = [sentences[0:3], sentences[3:4], sentences[4:6]]
    with Batcher(translator, max_wait=0.001) as batcher:
        futures = [batcher.submit(r, GREEDY) for r in requests]
        futures.append(batcher.submit(sentences[6:8], BEAM))
        futures.append(batcher.submit(sentences[8:9], GREEDY, attention=True))
        results = [f.result(120) for f in futures]
    for request, result in zip(requests, results, strict=False):
        assert [r.text for r in result] == reference.translate(request)
    beam = reference.translate_n_best(sentences[6:8], **BEAM.to_dict())
    assert [[h[0] for h in r.hypotheses] for r in results[3]] == [
        [h.text for h in hypotheses] for hypotheses in beam
    ]
    expected = reference.translate_with_attention(sentences[8])
    (got,) = results[4]
    assert got.translation.text == expected.text
    assert got.translation.target_tokens == expected.target_tokens
    np.testing.assert_allclose(
        got.translation.attention, expected.attention, atol=1e-6
    )
    assert isinstance(futures[0], concurrent.futures.Future)
