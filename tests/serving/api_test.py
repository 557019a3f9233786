"""`TranslationApi` in-process (no socket): answers equal the reference
translator's direct calls, every refusal is a 4xx with a one-line message
that names the problem, and the page and its files are served."""

import json
import re

import numpy as np
import pytest

import keras_nmt
from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.serving.api import JSON_TYPE
from tests.serving.conftest import SETTINGS


def _post(api, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return api.handle("POST", "/translate", body)


def _ok(response):
    assert response.status == 200, response.body
    assert response.content_type == JSON_TYPE
    return response.json()


def test_greedy_equals_translate(api, reference, sentences):
    batch = sentences[:5]
    answer = _ok(_post(api, {"sentences": batch}))
    translations = answer["translations"]
    assert [t["text"] for t in translations] == reference.translate(batch)
    scores = [h[0].score for h in reference.translate_n_best(batch)]
    np.testing.assert_allclose(
        [t["score"] for t in translations], scores, rtol=1e-5
    )
    assert all(set(t) == {"text", "score"} for t in translations)
    assert answer["options"] == DecodingOptions().to_dict()


def test_beam_n_best_equals_translate_n_best(api, reference, sentences):
    options = {"method": "beam", "beam_width": 3, "n_best": 3}
    batch = sentences[5:8]
    answer = _ok(_post(api, {"sentences": batch, **options}))
    expected = reference.translate_n_best(batch, **options)
    for got, hypotheses in zip(answer["translations"], expected, strict=True):
        assert [h["text"] for h in got["hypotheses"]] == [
            h.text for h in hypotheses
        ]
        np.testing.assert_allclose(
            [h["score"] for h in got["hypotheses"]],
            [h.score for h in hypotheses],
            rtol=1e-5,
        )
        assert got["text"] == hypotheses[0].text
    assert [t["text"] for t in answer["translations"]] == reference.translate(
        batch, **options
    )
    assert answer["options"] == DecodingOptions(**options).to_dict()


@pytest.mark.parametrize(
    "options",
    [{}, {"method": "beam", "beam_width": 3, "n_best": 2}],
    ids=["greedy", "beam-n-best"],
)
def test_attention_equals_translate_with_attention(
    api, reference, sentences, options
):
    batch = [sentences[8], "", sentences[9]]
    answer = _ok(_post(api, {"sentences": batch, "attention": True, **options}))
    for sentence, got in zip(batch, answer["translations"], strict=True):
        expected = reference.translate_with_attention(sentence, **options)
        assert got["text"] == expected.text
        assert got["source_tokens"] == expected.source_tokens
        assert got["target_tokens"] == expected.target_tokens
        assert ("hypotheses" in got) == bool(options)
        if not expected.target_tokens:  # no words: no attention map
            assert got["attention"] == [] and got["source_tokens"] == []
            continue
        attention = np.asarray(got["attention"], dtype="float32")
        assert attention.shape == (
            len(expected.target_tokens),
            len(expected.source_tokens),
        )
        np.testing.assert_allclose(attention, expected.attention, atol=1e-6)
        assert got["score"] == pytest.approx(expected.score, rel=1e-5)
    first = np.asarray(answer["translations"][0]["attention"])
    assert first.max() > 0.5, "the fixture model's attention is peaked"


def test_no_sentences_no_translations(api):
    answer = _ok(_post(api, {"sentences": [], "method": "beam"}))
    assert answer["translations"] == []
    assert answer["options"]["method"] == "beam"


def test_health(api, model_dir):
    answer = _ok(api.handle("GET", "/health"))
    assert answer["status"] == "ok"
    assert answer["model"] == str(model_dir)
    assert answer["version"] == keras_nmt.__version__
    assert answer["options"] == DecodingOptions().to_dict()
    assert answer["methods"] == ["greedy", "sample", "beam"]
    assert answer["limits"] == {"max_sentences": 16, "max_chars": 200}
    assert set(answer["stats"]) == {
        "requests",
        "sentences",
        "batches",
        "largest_batch",
    }


_LONG = "x" * (SETTINGS.max_chars + 1)


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"not json", 400, r"^The body is not valid JSON \(Expecting value"),
        (b"", 400, r"^The body is not valid JSON"),
        (b'{"sentences": ["caf\xe9"]}', 400, r"not valid JSON.*utf-8"),
        (
            b'{"sentences": ["a"], "temperature": NaN}',
            400,
            r"not valid JSON \(NaN is not valid JSON\)",
        ),
        (b'["a"]', 400, r"must be a JSON object; received an array"),
        (b"{}", 400, r'^The request has no "sentences"; send e\.g\. \{'),
        (
            {"sentences": "Hola."},
            400,
            r'^"sentences" must be an array of strings; received a string',
        ),
        (
            {"sentences": ["a", 3]},
            400,
            r'^"sentences"\[1\] must be a string; received a number \(3\)',
        ),
        (
            {"sentences": ["a", None]},
            400,
            r'^"sentences"\[1\] must be a string; received null',
        ),
        (
            {"sentences": ["a"], "attention": "yes"},
            400,
            r'^"attention" must be true or false; received a string \("yes"\)',
        ),
        (
            {"sentences": ["a"], "foo": 1, "beam": 4},
            400,
            r'^Unknown option\(s\) "beam", "foo"; .* "beam_width", ',
        ),
        (
            {"sentences": ["a"], "method": "fast"},
            400,
            r"^Invalid method='fast'; expected one of \['greedy'",
        ),
        (
            {"sentences": ["a"], "beam_width": 2.5},
            400,
            r"^Invalid beam_width=2\.5; expected an integer >= 1",
        ),
        (
            {"sentences": ["a"], "beam_width": True},
            400,
            r"^Invalid beam_width=True",
        ),
        (
            {"sentences": ["a"], "temperature": "hot"},
            400,
            r"^Invalid temperature='hot'; expected a finite number",
        ),
        (
            {"sentences": ["a"], "n_best": 3},
            400,
            r"^Invalid n_best=3 with method='greedy'",
        ),
        (
            {"sentences": ["a"], "method": "beam", "beam_width": 100000},
            400,
            r"^Invalid beam_width=100000: the target vocabulary has \d+",
        ),
        (
            {"sentences": ["a"] * (SETTINGS.max_sentences + 1)},
            413,
            r"^Too many sentences: 17; this server translates at most 16 ",
        ),
        (
            {"sentences": ["a", _LONG]},
            413,
            r'^"sentences"\[1\] has 201 characters; this server translates '
            r"at most 200 per sentence \(its --max-chars\)",
        ),
    ],
    ids=lambda value: None if not isinstance(value, int) else str(value),
)
def test_refusals_say_what_is_wrong(api, body, status, message):
    before = api.batcher.stats.requests
    response = _post(api, body)
    assert response.status == status, response.body
    answer = response.json()
    assert answer["status"] == status
    assert "\n" not in answer["error"]
    assert re.search(message, answer["error"]), answer["error"]
    assert api.batcher.stats.requests == before  # nothing was translated


@pytest.mark.parametrize(
    "method, path, status, allow",
    [
        ("GET", "/nope", 404, None),
        ("POST", "/static/../api.py", 404, None),
        ("GET", "/static/missing.js", 404, None),
        ("GET", "/translate", 405, "POST"),
        ("PUT", "/translate", 405, "POST"),
        ("POST", "/health", 405, "GET, HEAD"),
        ("DELETE", "/", 405, "GET, HEAD"),
    ],
)
def test_other_paths_and_methods(api, method, path, status, allow):
    response = api.handle(method, path, b"{}")
    assert response.status == status
    assert dict(response.headers).get("Allow") == allow
    message = response.json()["error"]
    if status == 404:
        assert "GET / (the page), GET /health and POST /translate" in message
    else:
        assert message.startswith(f"{method} is not allowed on {path}; use ")


def test_page_and_its_files(api):
    page = api.handle("GET", "/?utm=1")
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    html = page.body.decode("utf-8")
    # Everything comes from this server: no CDN, no inline script.
    assert 'src="/static/app.js"' in html and 'href="/static/style.css"' in html
    assert "http://" not in html and "https://" not in html
    assert "<script>" not in html
    headers = dict(page.headers)
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    files = (("app.js", "text/javascript"), ("style.css", "text/css"))
    for name, kind in files:
        response = api.handle("GET", f"/static/{name}")
        assert response.status == 200
        assert response.content_type.startswith(kind)
        assert b"http://" not in response.body.replace(b"http://HOST", b"")
    head = api.handle("HEAD", "/")
    assert head.status == 200 and head.body == page.body  # dropped by server
