"""The HTTP API of `keras-nmt serve`, without sockets: a request's method,
path and body in, a `Response` out. `keras_nmt.serving.server` puts it on
a socket; tests call it directly.

Routes:

    GET  /               the web page (static/index.html)
    GET  /static/NAME    its script and style sheet
    GET  /health         {"status": "ok", "model", "version", "options",
                          "limits", "stats"}
    POST /translate      {"sentences": [str, ...], "attention": bool,
                          and any `DecodingOptions` field by its name:
                          "method", "beam_width", "n_best", ...}
                         -> {"translations": [{"text", "score",
                          "hypotheses" (n_best > 1), "source_tokens",
                          "target_tokens", "attention" (with attention)}],
                          "options": the decoding options used}

Errors are `{"error": message, "status": code}` with a one-line message
that says what was wrong and what is expected: 400 (bad JSON, wrong types,
unknown or invalid options), 404, 405, 411, 413 (too many or too long
sentences, too large a body), 503 (busy, shutting down or timed out).
"""

from __future__ import annotations

import concurrent.futures
import importlib.resources
import json
import math
import urllib.parse
from typing import Any
from typing import NamedTuple

from keras_nmt.decoding.methods import METHODS
from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.serving.batching import BatcherBusy
from keras_nmt.serving.batching import BatcherClosed
from keras_nmt.serving.settings import ServerSettings
from keras_nmt.version import __version__

JSON_TYPE = "application/json; charset=utf-8"
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything the page needs is served from here: no CDN, no inline script.
_PAGE_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)
_REQUEST_FIELDS = ("sentences", "attention")
_EXAMPLE = '{"sentences": ["Hola."], "method": "beam"}'


class Response(NamedTuple):
    """An HTTP response: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()

    def json(self) -> Any:
        """The body, parsed (for JSON responses)."""
        return json.loads(self.body)


class ApiError(Exception):
    """A request the API refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str, headers=()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


class TranslateRequest(NamedTuple):
    """A checked `POST /translate` body."""

    sentences: list[str]
    options: DecodingOptions
    attention: bool


def _json_type(value) -> str:
    """What a parsed JSON value is, in the words of JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_translate_request(
    body: bytes, settings: ServerSettings, defaults: DecodingOptions
) -> TranslateRequest:
    """Check a `POST /translate` body.

    Args:
        body: the raw request body (JSON, UTF-8).
        settings: the limits (`max_sentences`, `max_chars`).
        defaults: the decoding options the request's options replace.

    Raises:
        ApiError: 400 for invalid JSON, wrong types, unknown or invalid
            options; 413 for too many or too long sentences.
    """
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(
            400,
            f"The body is not valid JSON ({error}); send a JSON object such "
            f"as {_EXAMPLE}.",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f"The body must be a JSON object; received {_json_type(data)}. "
            f"Send e.g. {_EXAMPLE}.",
        )
    unknown = sorted(set(data) - {*_REQUEST_FIELDS, *DecodingOptions.names()})
    if unknown:
        names = ", ".join(json.dumps(name) for name in unknown)
        known = ", ".join(json.dumps(name) for name in DecodingOptions.names())
        raise ApiError(
            400,
            f'Unknown option(s) {names}; a request holds "sentences", '
            f'"attention" and the decoding options {known}.',
        )
    sentences = _sentences(data, settings)
    attention = data.get("attention", False)
    if not isinstance(attention, bool):
        raise ApiError(
            400,
            f'"attention" must be true or false; received '
            f"{_json_type(attention)} ({json.dumps(attention):.40}).",
        )
    changes = {k: v for k, v in data.items() if k not in _REQUEST_FIELDS}
    try:
        options = defaults.replace(**changes)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    return TranslateRequest(sentences, options, attention)


def _sentences(data: dict, settings: ServerSettings) -> list[str]:
    if "sentences" not in data:
        raise ApiError(
            400, f'The request has no "sentences"; send e.g. {_EXAMPLE}.'
        )
    sentences = data["sentences"]
    if not isinstance(sentences, list):
        raise ApiError(
            400,
            '"sentences" must be an array of strings; received '
            f"{_json_type(sentences)}. For one sentence send "
            '{"sentences": ["..."]}.',
        )
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise ApiError(
                400,
                f'"sentences"[{i}] must be a string; received '
                f"{_json_type(sentence)} ({json.dumps(sentence):.40}).",
            )
    if len(sentences) > settings.max_sentences:
        raise ApiError(
            413,
            f"Too many sentences: {len(sentences)}; this server translates "
            f"at most {settings.max_sentences} per request (its "
            "--max-sentences). Send them in several requests.",
        )
    for i, sentence in enumerate(sentences):
        if len(sentence) > settings.max_chars:
            raise ApiError(
                413,
                f'"sentences"[{i}] has {len(sentence)} characters; this '
                f"server translates at most {settings.max_chars} per "
                "sentence (its --max-chars). Split the text into sentences.",
            )
    return sentences


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def translation_json(result, options: DecodingOptions, attention: bool):
    """The JSON object of one sentence's `batching.Result`."""
    out = {"text": result.text, "score": _number(result.score)}
    if options.n_best > 1:
        out["hypotheses"] = [
            {"text": text, "score": _number(score)}
            for text, score in result.hypotheses
        ]
    if attention:
        translation = result.translation
        out["source_tokens"] = list(translation.source_tokens)
        out["target_tokens"] = list(translation.target_tokens)
        out["attention"] = translation.attention.tolist()
    return out


def _json_response(data, status: int = 200, headers=()) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return Response(
        status,
        (body + "\n").encode("utf-8"),
        JSON_TYPE,
        (("Cache-Control", "no-store"), *headers),
    )


def error_response(status: int, message: str, headers=()) -> Response:
    """The JSON error answer: `{"error": message, "status": status}`."""
    return _json_response(
        {"error": " ".join(message.split()), "status": status},
        status,
        headers,
    )


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files shipped in `keras_nmt/serving/static`: name ->
    (content, content type)."""
    directory = importlib.resources.files("keras_nmt.serving") / "static"
    files = {}
    for entry in directory.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    return files


class TranslationApi:
    """The routes of `keras-nmt serve`, callable without a socket.

    Args:
        batcher: the `Batcher` that owns the translator.
        model_dir: the model directory, reported by `/health`.
        settings: the `ServerSettings` (limits, timeout).

    Example:

    >>> api = TranslationApi(batcher, model_dir="my-model")  # doctest: +SKIP
    >>> api.handle("POST", "/translate", b'{"sentences": ["Hola."]}').json()
    {'translations': [{'text': 'hello.', 'score': -0.3}], 'options': {...}}
    """

    def __init__(
        self,
        batcher,
        *,
        model_dir: str = "",
        settings: ServerSettings | None = None,
    ):
        self.batcher = batcher
        self.model_dir = str(model_dir)
        self.settings = settings if settings is not None else ServerSettings()
        self.static = _static_files()
        self._routes = {
            "/": {"GET": self._page},
            "/health": {"GET": self._health},
            "/translate": {"POST": self._translate},
        }

    @property
    def defaults(self) -> DecodingOptions:
        """The decoding options a request's options replace."""
        return self.batcher.translator.options

    def handle(self, method: str, target: str, body: bytes = b"") -> Response:
        """Answer one request.

        Args:
            method: the HTTP method (`HEAD` is answered as `GET`; the
                server leaves out the body).
            target: the request target (path, maybe with a query string).
            body: the request body.
        """
        path = urllib.parse.urlsplit(target).path
        routes = self._routes.get(path)
        if routes is None and path.startswith("/static/"):
            name = path[len("/static/") :]
            if name in self.static:
                routes = {"GET": lambda body, name=name: self._file(name)}
        if routes is None:
            return error_response(
                404,
                f"Nothing at {path!r}. This server answers GET / (the page), "
                "GET /health and POST /translate.",
            )
        method = "GET" if method == "HEAD" else method
        if method not in routes:
            allowed = [*routes, *(["HEAD"] if "GET" in routes else [])]
            allowed = ", ".join(allowed)
            return error_response(
                405,
                f"{method} is not allowed on {path}; use {allowed}.",
                (("Allow", allowed),),
            )
        try:
            return routes[method](body)
        except ApiError as error:
            return error_response(error.status, error.message, error.headers)

    # ---- routes ----------------------------------------------------------

    def _file(self, name: str) -> Response:
        content, content_type = self.static[name]
        return Response(200, content, content_type, _PAGE_HEADERS)

    def _page(self, body: bytes) -> Response:
        return self._file("index.html")

    def _health(self, body: bytes) -> Response:
        stats = self.batcher.stats
        return _json_response(
            {
                "status": "ok",
                "model": self.model_dir,
                "version": __version__,
                "methods": list(METHODS),
                "options": self.defaults.to_dict(),
                "limits": {
                    "max_sentences": self.settings.max_sentences,
                    "max_chars": self.settings.max_chars,
                },
                "stats": {
                    "requests": stats.requests,
                    "sentences": stats.sentences,
                    "batches": stats.batches,
                    "largest_batch": stats.largest_batch,
                },
            }
        )

    def _translate(self, body: bytes) -> Response:
        request = parse_translate_request(body, self.settings, self.defaults)
        results = self._results(request) if request.sentences else []
        return _json_response(
            {
                "translations": [
                    translation_json(r, request.options, request.attention)
                    for r in results
                ],
                "options": request.options.to_dict(),
            }
        )

    def _results(self, request: TranslateRequest) -> list:
        """The batcher's results for `request`, or an `ApiError`."""
        try:
            self.batcher.check(request.options)
            future = self.batcher.submit(
                request.sentences, request.options, request.attention
            )
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        except BatcherBusy as error:
            raise ApiError(503, str(error), (("Retry-After", "1"),)) from None
        except BatcherClosed as error:
            raise ApiError(503, str(error)) from None
        timeout = self.settings.timeout
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ApiError(
                503,
                f"The translation took longer than {timeout:g} s (the "
                "server is busy); try again, or send fewer sentences.",
                (("Retry-After", "1"),),
            ) from None
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        except BatcherClosed as error:
            raise ApiError(503, str(error)) from None
