"""The settings of `keras-nmt serve`, one frozen dataclass: defaults, help
and checks in one place, from which the command's flags derive. Plain
Python: no Keras, no TensorFlow."""

from __future__ import annotations

import dataclasses
import numbers

from keras_nmt.options import Check
from keras_nmt.options import Options
from keras_nmt.options import integer
from keras_nmt.options import number
from keras_nmt.options import option


def _host() -> Check:
    return Check(
        "a host name or IP address",
        lambda v: isinstance(v, str) and bool(v.strip()),
    )


def _port() -> Check:
    return Check(
        "an integer from 0 to 65535 (0: any free port)",
        lambda v: (
            isinstance(v, numbers.Integral)
            and not isinstance(v, bool)
            and 0 <= v <= 65535
        ),
        parse=int,
        normalize=int,
    )


@dataclasses.dataclass(frozen=True)
class ServerSettings(Options):
    """Where `keras-nmt serve` listens, what it accepts, how it batches.

    Example:

    >>> ServerSettings().replace(port=0).host
    '127.0.0.1'
    """

    host: str = option(
        "127.0.0.1",
        "address to listen on (127.0.0.1: this machine only; 0.0.0.0: "
        "every network, with no authentication)",
        _host(),
    )
    port: int = option(8080, "TCP port (0: any free port)", _port())
    max_sentences: int = option(
        64, "most sentences in one request", integer(), metavar="N"
    )
    max_chars: int = option(
        1000, "most characters in one sentence", integer(), metavar="N"
    )
    batch_wait_ms: float = option(
        5.0,
        "how long the first request of a batch waits for others with the "
        "same options, in milliseconds",
        number(0.0, below=1000.0),
        metavar="MS",
    )
    max_queue: int = option(
        256,
        "most requests waiting for the model; more are answered 503",
        integer(),
        metavar="N",
    )
    timeout: float = option(
        60.0,
        "seconds a request may wait for its translation before it is "
        "answered 503",
        number(0.0, above=True),
        metavar="SECONDS",
    )

    @property
    def max_body_bytes(self) -> int:
        """The largest request body accepted: every sentence at its longest,
        each character JSON-escaped (up to 12 bytes), and room for options."""
        return self.max_sentences * (12 * self.max_chars + 8) + 64 * 1024
