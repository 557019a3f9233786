"""`TranslationServer`: the translation API and page on an HTTP socket.

Built on the standard library's `http.server.ThreadingHTTPServer`: a small
JSON API in front of a single model worker needs no new dependency (the
batcher, not the HTTP layer, decides the throughput: one thread per
connection only waits for its batch), and a production deployment can put
it behind any reverse proxy (TLS, authentication, rate limits).
"""

from __future__ import annotations

import http.server
import socket
import sys
import time
from collections.abc import Callable

from keras_nmt.serving.api import TranslationApi
from keras_nmt.serving.api import error_response
from keras_nmt.serving.batching import Batcher
from keras_nmt.serving.settings import ServerSettings
from keras_nmt.version import __version__

_BODY_METHODS = ("POST", "PUT", "PATCH")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # Seconds a client may take to send a request (and idle between
    # requests on a kept-alive connection) before the connection closes.
    timeout = 30

    def do_GET(self):
        self._answer()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _answer(self) -> None:
        start = time.perf_counter()
        length, refused = self._body_length()
        if refused is not None:
            self._send(refused, start)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            self._send(
                error_response(
                    400,
                    f"The body ended after {len(body)} of its {length} "
                    "bytes (Content-Length).",
                ),
                start,
            )
            return
        try:
            response = self.server.api.handle(self.command, self.path, body)
        except Exception as error:  # a bug: one line, not a traceback
            message = f"Internal error ({type(error).__name__}: {error})."
            self.server.log_line(f"{self.command} {self.path}: {message}")
            response = error_response(500, message)
        self._send(response, start)

    def handle_expect_100(self):
        """`Expect: 100-continue`: refuse a body we would not read before
        the client sends it."""
        _, refused = self._body_length()
        if refused is not None:
            self._send(refused, time.perf_counter())
            return False
        return super().handle_expect_100()

    def _body_length(self):
        """`(length, None)` for a body that can be read, or `(0, error
        response)`, after which the connection is closed."""
        length = self.headers.get("Content-Length")
        refused = None
        if self.headers.get("Transfer-Encoding"):
            refused = error_response(
                411, "Chunked bodies are not accepted; send a Content-Length."
            )
        elif length is None:
            if self.command in _BODY_METHODS:
                refused = error_response(
                    411, f"{self.command} needs a Content-Length header."
                )
            length = 0
        elif not length.strip().isdigit():
            refused = error_response(
                400, f"Invalid Content-Length {length!r}; expected bytes."
            )
        elif int(length) > self.server.api.settings.max_body_bytes:
            refused = error_response(
                413,
                f"The body has {int(length)} bytes; this server reads at "
                f"most {self.server.api.settings.max_body_bytes} (from its "
                "--max-sentences and --max-chars).",
            )
        if refused is not None:
            self.close_connection = True  # the body is left unread
            return 0, refused
        return int(length), None

    def _send(self, response, start: float) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Logged before the body goes out: a client holding its answer
        # finds the line already written.
        milliseconds = 1000 * (time.perf_counter() - start)
        self.server.log_line(
            f'{self.client_address[0]} "{self.command} {self.path}" '
            f"{response.status} {len(response.body)} {milliseconds:.1f} ms"
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def version_string(self):
        return f"keras-nmt/{__version__}"

    def log_request(self, code="-", size="-"):
        pass  # `_answer` logs each request, with its time

    def log_message(self, format, *args):
        self.server.log_line(format % args)


class TranslationServer(http.server.ThreadingHTTPServer):
    """Serve a `Translator`: the JSON API and the page, on `host:port`.

    One thread per connection parses and checks requests; one `Batcher`
    worker translates them, several at once when they arrive together.
    Closing the server (`server_close()`, or leaving a `with` block) stops
    the worker; requests still waiting are answered 503.

    Args:
        translator: a `keras_nmt.Translator`.
        settings: a `ServerSettings` (default: 127.0.0.1:8080 and the
            default limits); port 0 picks a free port (see `url`).
        model_dir: the model directory, reported by `/health`.
        log: called with one line per request and per connection error
            (default: none).

    Raises:
        OSError: if the address cannot be bound (in use, not local).

    Example:

    >>> settings = ServerSettings(port=0)
    >>> server = TranslationServer(translator, settings)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever).start()  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:39181/'
    >>> server.shutdown(); server.server_close()  # doctest: +SKIP
    """

    daemon_threads = True
    request_queue_size = 64  # the listen backlog: bursts of connections

    def __init__(
        self,
        translator,
        settings: ServerSettings | None = None,
        *,
        model_dir: str = "",
        log: Callable[[str], None] | None = None,
    ):
        settings = settings if settings is not None else ServerSettings()
        self.log = log
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        batcher = Batcher(
            translator,
            max_wait=settings.batch_wait_ms / 1000,
            max_queue=settings.max_queue,
        )
        self.api = TranslationApi(
            batcher, model_dir=model_dir, settings=settings
        )
        try:
            super().__init__((settings.host, settings.port), _Handler)
        except BaseException:
            batcher.close()
            raise

    @property
    def url(self) -> str:
        """`http://HOST:PORT/` of the bound socket."""
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def log_line(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def handle_error(self, request, client_address):
        """A connection failed (the client went away, timed out...): one
        line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            return
        self.log_line(
            f"{client_address[0]} connection error: "
            f"{type(error).__name__}: {error}"
        )

    def server_close(self):
        super().server_close()
        self.api.batcher.close()
