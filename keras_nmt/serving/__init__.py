"""`keras-nmt serve`: a trained translator behind a small HTTP JSON API and
a web page that shows its attention.

- `ServerSettings`: the server's settings (address, request limits,
  batching), one home for the defaults, checks and `serve` flags.
- `Batcher`: one worker thread that owns the `Translator`; requests with the
  same options that arrive within a few milliseconds are translated in one
  call and the results split back to each request.
- `TranslationApi`: the HTTP API without sockets: a method, path and body
  in, a status and body out (the routes, the checks, the JSON).
- `TranslationServer`: the API on a socket (`http.server`).

Every name loads on first use; `import keras_nmt.serving` imports no
framework.
"""

from keras_nmt import lazy

_EXPORTS = {
    "Batcher": "keras_nmt.serving.batching",
    "ServerSettings": "keras_nmt.serving.settings",
    "TranslationApi": "keras_nmt.serving.api",
    "TranslationServer": "keras_nmt.serving.server",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy.attach(__name__, _EXPORTS)
