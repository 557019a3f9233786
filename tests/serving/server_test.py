"""`TranslationServer` over a real socket on 127.0.0.1 (port 0): answers
equal the reference translator's, HTTP details (keep-alive, HEAD, bodies
that cannot be read), and a load test: 8 concurrent clients, each checking
that it gets the translations of its own sentences."""

import http.client
import json
import random
import socket
import threading
import time

import numpy as np
import pytest

from keras_nmt.serving.server import TranslationServer
from keras_nmt.serving.settings import ServerSettings
from tests.serving.fake import FakeTranslator

TIMEOUT = 120
CLIENTS = 8
LOAD_SECONDS = 5.0
LOAD_REQUESTS = 200
BEAM = {"method": "beam", "beam_width": 3}


def _connect(server):
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT)


def _request(connection, method, path, payload=None, headers=None):
    """`(status, headers, body bytes)` of one request on `connection`."""
    body = None if payload is None else json.dumps(payload).encode("utf-8")
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def _raw(server, data: bytes) -> bytes:
    """Send raw bytes; everything the server answers before closing."""
    with socket.create_connection(server.server_address[:2], TIMEOUT) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_listens_on_loopback_by_default(server):
    assert ServerSettings().host == "127.0.0.1"
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and port > 0
    assert server.url == f"http://127.0.0.1:{port}/"


def test_translations_over_the_socket_equal_the_reference(
    server, reference, sentences
):
    connection = _connect(server)
    batch = sentences[10:13]
    status, headers, body = _request(
        connection, "POST", "/translate", {"sentences": batch, **BEAM}
    )
    assert status == 200, body
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    answer = json.loads(body)
    assert [t["text"] for t in answer["translations"]] == reference.translate(
        batch, **BEAM
    )
    # The same connection again (keep-alive), with attention.
    status, _, body = _request(
        connection,
        "POST",
        "/translate",
        {"sentences": batch[:1], "attention": True},
    )
    assert status == 200, body
    (got,) = json.loads(body)["translations"]
    expected = reference.translate_with_attention(batch[0])
    assert got["text"] == expected.text
    assert got["target_tokens"] == expected.target_tokens
    np.testing.assert_allclose(got["attention"], expected.attention, atol=1e-6)
    connection.close()


@pytest.mark.parametrize(
    "method, path, payload, status, message",
    [
        ("POST", "/translate", {"sentences": "Hola."}, 400, "array of strings"),
        ("POST", "/translate", {"sentences": ["a"], "x": 1}, 400, '"x"'),
        ("POST", "/translate", {"sentences": ["a" * 201]}, 413, "201 char"),
        ("GET", "/translate", None, 405, "use POST"),
        ("GET", "/missing", None, 404, "Nothing at '/missing'"),
    ],
)
def test_refusals_over_the_socket(
    server, method, path, payload, status, message
):
    connection = _connect(server)
    got, headers, body = _request(connection, method, path, payload)
    assert got == status
    assert message in json.loads(body)["error"]
    assert int(headers["Content-Length"]) == len(body)
    if status == 405:
        assert headers["Allow"] == "POST"
    connection.close()


def test_head_sends_the_headers_without_the_body(server):
    connection = _connect(server)
    _, get_headers, page = _request(connection, "GET", "/")
    status, headers, body = _request(connection, "HEAD", "/")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == str(len(page))
    assert headers["Content-Type"] == get_headers["Content-Type"]
    connection.close()


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ("", 411, b"POST needs a Content-Length header"),
        ("Transfer-Encoding: chunked\r\n", 411, b"Chunked bodies"),
        ("Content-Length: abc\r\n", 400, b"Invalid Content-Length 'abc'"),
        ("Content-Length: 999999999\r\n", 413, b"The body has 999999999 bytes"),
    ],
)
def test_bodies_that_cannot_be_read_close_the_connection(
    server, headers, status, message
):
    request = f"POST /translate HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
    # No body is sent: the server answers from the headers alone.
    answer = _raw(server, request.encode("ascii"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close" in head
    assert message in body
    # The server closed the connection: `_raw` returned.


def test_expect_100_continue_is_refused_before_the_body_is_sent(server):
    request = (
        "POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999"
        "\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _raw(server, request.encode("ascii"))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer


def test_a_body_shorter_than_its_length_is_refused(server):
    request = (
        "POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
    )
    with socket.create_connection(server.server_address[:2], TIMEOUT) as s:
        s.sendall(request.encode("ascii") + b'{"sentences": []}')
        s.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"The body ended after 17 of its 50 bytes" in answer


def test_load_each_client_gets_its_own_translations(
    server, reference, sentences, capsys
):
    """8 client threads for 5 s or 200 requests in all, each sending 1-3 of
    its own sentences (a quarter of the requests with beam search): every
    answer equals the reference's translations of exactly those sentences,
    in order; requests are shared between batches."""
    pools = [sentences[k * 6 : (k + 1) * 6] for k in range(CLIENTS)]
    expected = {
        method: dict(
            zip(
                sentences,
                reference.translate(sentences, **options),
                strict=True,
            )
        )
        for method, options in (("greedy", {}), ("beam", BEAM))
    }
    _warm_up(server, sentences)
    stats = server.api.batcher.stats
    before = (stats.requests, stats.batches)
    sent = []  # one (latency seconds, sentences) per answered request
    problems = []
    issued = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def client(k):
        rng = random.Random(k)
        connection = _connect(server)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued[0] >= LOAD_REQUESTS:
                        return
                    issued[0] += 1
                batch = rng.sample(pools[k], rng.randint(1, 3))
                method = "beam" if rng.random() < 0.25 else "greedy"
                options = BEAM if method == "beam" else {}
                start = time.perf_counter()
                status, _, body = _request(
                    connection,
                    "POST",
                    "/translate",
                    {"sentences": batch, **options},
                )
                latency = time.perf_counter() - start
                texts = (
                    [t["text"] for t in json.loads(body)["translations"]]
                    if status == 200
                    else None
                )
                want = [expected[method][s] for s in batch]
                with lock:
                    if texts == want:
                        sent.append((latency, len(batch)))
                    else:
                        problems.append((k, batch, method, status, body))
        finally:
            connection.close()

    start = time.perf_counter()
    threads = [
        threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOAD_SECONDS + TIMEOUT)
    elapsed = time.perf_counter() - start
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    requests = stats.requests - before[0]
    batches = stats.batches - before[1]
    assert requests == len(sent) >= CLIENTS
    assert batches < requests, "concurrent requests should share batches"
    latencies = np.array([latency for latency, _ in sent]) * 1000
    with capsys.disabled():
        print(
            f"\nserving load: {CLIENTS} clients, {len(sent)} requests "
            f"({sum(n for _, n in sent)} sentences, 25% beam) in "
            f"{elapsed:.1f} s: {len(sent) / elapsed:.1f} requests/s, "
            f"latency p50 {np.percentile(latencies, 50):.0f} ms, "
            f"p99 {np.percentile(latencies, 99):.0f} ms; "
            f"{requests / batches:.1f} requests per batch"
        )


def _warm_up(server, sentences):
    """Compile the server's decoding shapes (1, 2, 4, 8 rows; greedy and
    beam) before the timed part."""
    connection = _connect(server)
    for options in ({}, BEAM):
        for rows in (1, 2, 4, 8):
            status, _, body = _request(
                connection,
                "POST",
                "/translate",
                {"sentences": sentences[:rows], **options},
            )
            assert status == 200, body
    connection.close()


@pytest.fixture
def fake_server():
    """A server of the fake translator: 2 s timeout, 1 waiting request."""
    fake = FakeTranslator()
    lines = []
    settings = ServerSettings(port=0, timeout=2.0, max_queue=1)
    served = TranslationServer(fake, settings, log=lines.append)
    thread = threading.Thread(
        target=served.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield fake, served, lines
    finally:
        fake.gate.set()
        served.shutdown()
        served.server_close()
        thread.join(10)


def _post_in_thread(server, payload, results):
    def post():
        connection = _connect(server)
        status, headers, body = _request(
            connection, "POST", "/translate", payload
        )
        results.append((status, headers, json.loads(body)))
        connection.close()

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_a_failing_translator_is_a_500_and_the_server_goes_on(fake_server):
    fake, served, lines = fake_server
    fake.fail_with = RuntimeError("out of memory")
    connection = _connect(served)
    status, _, body = _request(
        connection, "POST", "/translate", {"sentences": ["a"]}
    )
    assert status == 500
    assert json.loads(body)["error"] == (
        "Internal error (RuntimeError: out of memory)."
    )
    assert any("Internal error (RuntimeError" in line for line in lines)
    fake.fail_with = None
    status, _, body = _request(
        connection, "POST", "/translate", {"sentences": ["a"]}
    )
    assert status == 200
    assert json.loads(body)["translations"][0]["text"] == "a|greedy|0"
    connection.close()


def test_busy_and_too_slow_are_503(fake_server):
    """The worker held on a first request (which times out after 2 s): of
    two more, one waits (the queue holds 1) and times out, the other is
    refused at once."""
    fake, served, _ = fake_server
    fake.gate.clear()
    first = []
    holding = _post_in_thread(served, {"sentences": ["first"]}, first)
    assert fake.entered.wait(TIMEOUT)
    results = []
    threads = [
        _post_in_thread(served, {"sentences": [name]}, results)
        for name in ("b", "c")
    ]
    for thread in threads:
        thread.join(TIMEOUT)
    fake.gate.set()
    holding.join(TIMEOUT)
    assert first[0][0] == 503
    assert first[0][2]["error"].startswith("The translation took longer")
    assert [status for status, _, _ in results] == [503, 503]
    messages = sorted(answer["error"] for _, _, answer in results)
    assert messages[0].startswith("1 requests are already waiting")
    assert messages[1].startswith("The translation took longer than 2 s")
    assert all(headers["Retry-After"] == "1" for _, headers, _ in results)
    assert [call[1] for call in fake.calls] == [["first"]]  # b, c skipped
