"""`keras-nmt serve` end to end in subprocesses: it prints its address,
answers, and stops cleanly on Ctrl-C (130) and SIGTERM (0) with one line;
an address in use or a missing model is one line with status 1. The runs
start together, as each subprocess spends seconds importing TensorFlow."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from keras_nmt import cli

TIMEOUT = 300
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWE]\d{4} \d\d:\d\d:\d\d)"
)
_ACCESS = re.compile(r'^127\.0\.0\.1 "(GET|POST) /\S*" \d{3} \d+ [\d.]+ ms$')


def _start(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("KERAS_NMT_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "keras_nmt", "serve", *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _address(process) -> str:
    """The URL from the process' first stdout line."""
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + TIMEOUT
    while b"\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no address printed; stdout so far: {data!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"exited early: {process.stderr.read()[-3000:]!r}"
            data += chunk
    line = data.decode().splitlines()[0]
    match = re.fullmatch(r"Serving \S+ at (http://127\.0\.0\.1:\d+/) .*", line)
    assert match, line
    return match.group(1)


def _finish(process):
    """`(status, stderr lines without TensorFlow's, raw stderr)`."""
    _, stderr = process.communicate(timeout=TIMEOUT)
    stderr = stderr.decode("utf-8", "replace")
    lines = [line for line in stderr.splitlines() if not _TF_NOISE.match(line)]
    return process.returncode, lines, stderr


def _open(request):
    """The JSON answer; an HTTP error fails with the server's message."""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        pytest.fail(f"HTTP {error.code}: {error.read().decode()[:2000]}")


def _get(url):
    return _open(url)


def _post(url, payload):
    return _open(
        urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
    )


@pytest.fixture(scope="module")
def runs(model_dir):
    """Each run's `(status, stderr lines, raw stderr, what it answered)`."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    started = {
        "interrupt": _start("--model", model_dir, "--port", 0),
        "terminate": _start(
            "--model", model_dir, "--port", 0, "--quiet", "--method", "beam"
        ),
        "in_use": _start("--model", model_dir, "--port", port),
        "no_model": _start("--model", "/nonexistent", "--port", 0),
    }
    answers = {}
    try:
        for name, stop in (
            ("interrupt", signal.SIGINT),
            ("terminate", signal.SIGTERM),
        ):
            process = started[name]
            url = _address(process)
            answers[name] = (
                _get(url + "health"),
                _post(url + "translate", {"sentences": ["Go now."]}),
            )
            process.send_signal(stop)
        results = {
            name: (*_finish(process), answers.get(name))
            for name, process in started.items()
        }
    finally:
        for process in started.values():
            process.kill()
        taken.close()
    results["port"] = port
    return results


def test_ctrl_c_stops_with_one_line(runs, model_dir):
    status, lines, raw, (health, answer) = runs["interrupt"]
    assert status == 130, raw[-3000:]
    assert "Traceback" not in raw
    assert [line for line in lines if not _ACCESS.match(line)] == [
        "keras-nmt serve: interrupted"
    ], raw[-3000:]
    assert len([line for line in lines if _ACCESS.match(line)]) == 2, raw
    assert health["status"] == "ok" and health["model"] == str(model_dir)
    assert answer["options"]["method"] == "greedy"
    assert isinstance(answer["translations"][0]["text"], str)


def test_sigterm_stops_with_status_0(runs):
    status, lines, raw, (health, answer) = runs["terminate"]
    assert status == 0, raw[-3000:]
    assert "Traceback" not in raw
    # --quiet: no request lines.
    assert lines == ["keras-nmt serve: stopped (SIGTERM)"], raw[-3000:]
    # --method beam: the default of requests that do not name a method.
    assert health["options"]["method"] == "beam"
    assert answer["options"]["method"] == "beam"


def test_address_in_use_is_one_line(runs):
    status, lines, raw, _ = runs["in_use"]
    assert status == 1 and "Traceback" not in raw, raw[-3000:]
    assert lines == [
        f"keras-nmt serve: error: Cannot listen on 127.0.0.1:{runs['port']} "
        "(Address already in use); choose another --port (0: any free port) "
        "or --host."
    ]


def test_missing_model_is_one_line(runs):
    status, lines, raw, _ = runs["no_model"]
    assert status == 1 and "Traceback" not in raw
    assert len(lines) == 1
    assert lines[0].startswith(
        "keras-nmt serve: error: Translator directory not found: '/nonexistent'"
    )


def test_help_names_the_api_and_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "POST /translate",
        "GET  /health",
        "--host HOST",
        "(default: 127.0.0.1)",
        "--port PORT",
        "--max-sentences N",
        "--max-chars N",
        "--batch-wait-ms MS",
        "--beam-width",
    ):
        assert text in out


def test_usage_errors_import_no_framework():
    script = (
        "import sys\n"
        "from keras_nmt.cli import main\n"
        "try:\n"
        "    main(['serve', '--model', 'm', '--port', '70000'])\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, 'keras' in sys.modules,"
        " 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.stdout.split() == ["2", "False", "False"]
    assert "--port: expected an integer from 0 to 65535" in result.stderr
