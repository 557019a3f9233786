"""`ServerSettings`: defaults, checks, the `serve` flags derived from it,
and a serving package that imports no framework."""

import dataclasses
import json
import subprocess
import sys

import pytest

from keras_nmt.cli.parser import build_parser
from keras_nmt.serving.settings import ServerSettings


def test_defaults_listen_on_this_machine_only():
    settings = ServerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.max_sentences, settings.max_chars) == (64, 1000)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"port": 65536}, r"Invalid port=65536; expected an integer from 0"),
        ({"port": True}, r"Invalid port=True"),
        ({"host": " "}, r"Invalid host=' '; expected a host name or IP"),
        ({"max_sentences": 0}, r"Invalid max_sentences=0; expected an int"),
        ({"max_chars": 2.5}, r"Invalid max_chars=2.5"),
        ({"batch_wait_ms": 1000}, r"expected a finite number >= 0 and < 1000"),
        ({"timeout": 0}, r"Invalid timeout=0"),
        ({"workers": 2}, r"ServerSettings has no option 'workers'"),
    ],
)
def test_invalid_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ServerSettings().replace(**changes)


def test_the_body_limit_fits_the_largest_valid_request():
    settings = ServerSettings(max_sentences=3, max_chars=5)
    # Astral characters are escaped as 12 bytes each by json.dumps.
    request = {"sentences": ["\U0001f600" * 5] * 3, "method": "beam"}
    assert len(json.dumps(request).encode()) <= settings.max_body_bytes


def test_serve_flags_derive_from_the_settings():
    args = build_parser().parse_args(
        ["serve", "--model", "m", "--port", "0", "--max-chars", "20"]
    )
    for field in dataclasses.fields(ServerSettings):
        assert hasattr(args, field.name), field.name
    assert (args.port, args.max_chars, args.host) == (0, 20, "127.0.0.1")


def test_the_serving_package_imports_no_framework():
    script = (
        "import json, sys\n"
        "import keras_nmt.serving.api, keras_nmt.serving.batching\n"
        "import keras_nmt.serving.server, keras_nmt.serving.settings\n"
        "import keras_nmt.serving as s; s.TranslationServer\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0]"
        " in ('keras', 'tensorflow', 'jax', 'torch', 'numpy'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []
