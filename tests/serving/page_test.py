"""The web page in a real headless Chromium, driven by Playwright: it loads,
a typed sentence translates, and hovering (or tapping, on a phone-sized
touch screen) a target token lights up the source tokens by that row of the
API's attention matrix, a source token the target tokens by its column.

Needs the `playwright` package (the `test` extra) and Debian's Chromium
(`apt-get update && apt-get install -y chromium`; another binary with
`KERAS_NMT_CHROMIUM=/path`). Without them the tests are skipped, except
when the `CI` environment variable is set: then they fail and say what is
missing.
"""

import json
import os
import re

import numpy as np
import pytest

CHROMIUM = os.environ.get("KERAS_NMT_CHROMIUM", "/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
# Headless as root, with no network but loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000
# Chromium rounds a computed colour's alpha (to 8 bits); the pages ask for
# reduced motion, so colours are final at once (no transition).
ALPHA_TOLERANCE = 0.006


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the Python package playwright is missing (pip install playwright)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"no Chromium at {CHROMIUM} (install it with: {INSTALL}; or set "
            "KERAS_NMT_CHROMIUM to a Chromium binary)"
        )
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing is not None:
        message = f"The page tests need a headless browser: {missing}."
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # A new temporary profile (user data dir) per launch.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def sentence(reference, sentences):
    """A sentence whose attention rows differ clearly, so a highlight by
    the wrong row would be caught."""
    for candidate in sentences:
        attention = reference.translate_with_attention(candidate).attention
        if len(attention) >= 3:
            rows = attention[:, None, :] - attention[None, :, :]
            spread = np.abs(rows).max(axis=-1)
            np.fill_diagonal(spread, 1.0)
            if spread.min() > 0.02 and attention.max() > 0.5:
                return candidate
    pytest.fail("no sentence with distinct attention rows in the fixture")


def _api_translation(api, payload):
    response = api.handle(
        "POST", "/translate", json.dumps(payload).encode("utf-8")
    )
    assert response.status == 200, response.body
    return response.json()["translations"][0]


def _open(page, server):
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    # Not `wait_for_function`: its polling evaluates a string, which the
    # page's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    page.locator("#model").filter(has_text=re.compile("^Model ")).wait_for()
    return errors


def _translate(page, text):
    page.fill("#source", text)
    page.click("#translate")
    page.wait_for_selector("#result:not([hidden]) #target-tokens .token")


def _weights(page, selector):
    """The `data-weight`s of the elements of `selector` and the alphas of
    their highlight colours (`None` for those not highlighted)."""
    pairs = page.eval_on_selector_all(
        selector,
        "els => els.map(e => [e.dataset.weight ?? null, "
        "getComputedStyle(e).backgroundColor])",
    )
    weights = [None if w is None else float(w) for w, _ in pairs]
    alphas = [None if w is None else _alpha(c) for w, c in pairs]
    return weights, alphas


def _alpha(color: str) -> float:
    match = re.fullmatch(r"rgba?\(37, 99, 235(?:, ([\d.]+))?\)", color)
    assert match, f"not the highlight colour: {color}"
    return float(match.group(1) or 1.0)


def _check_row(page, attention, i):
    """Target token i hovered: the source tokens carry row i."""
    weights, alphas = _weights(page, "#source-tokens .token")
    np.testing.assert_allclose(weights, attention[i], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(alphas, attention[i], atol=ALPHA_TOLERANCE)


def test_typed_sentence_translates_and_hover_shows_attention(
    browser, server, api, reference, sentence
):
    page = browser.new_page(
        viewport={"width": 1200, "height": 900}, reduced_motion="reduce"
    )
    errors = _open(page, server)
    _translate(page, sentence)
    expected = _api_translation(
        api, {"sentences": [sentence], "attention": True}
    )
    direct = reference.translate_with_attention(sentence)
    assert page.text_content("#translation") == expected["text"] == direct.text
    assert (
        page.eval_on_selector_all(
            "#source-tokens .token", "els => els.map(e => e.textContent)"
        )
        == expected["source_tokens"]
    )
    targets = page.eval_on_selector_all(
        "#target-tokens .token", "els => els.map(e => e.textContent)"
    )
    assert targets == expected["target_tokens"]
    attention = np.asarray(expected["attention"])
    np.testing.assert_allclose(attention, direct.attention, atol=1e-6)

    for i in range(len(targets)):
        page.hover(f"#target-tokens .token[data-index='{i}']")
        _check_row(page, attention, i)
        active = page.eval_on_selector_all(
            "#target-tokens .token",
            "els => els.map(e => e.classList.contains('active'))",
        )
        assert active == [k == i for k in range(len(targets))]
        # The target side is not lit by a target token.
        assert _weights(page, "#target-tokens .token")[0] == [None] * len(
            targets
        )

    for j in range(attention.shape[1]):
        page.hover(f"#source-tokens .token[data-index='{j}']")
        weights, alphas = _weights(page, "#target-tokens .token")
        np.testing.assert_allclose(weights, attention[:, j], rtol=1e-6)
        np.testing.assert_allclose(
            alphas, attention[:, j], atol=ALPHA_TOLERANCE
        )

    # Leaving the tokens clears the highlight.
    page.hover("h1")
    weights, _ = _weights(page, "#source-tokens .token, #target-tokens .token")
    assert weights == [None] * len(weights)

    # The heatmap: one cell per weight, coloured by it; a hovered cell
    # lights up its row.
    cells = page.eval_on_selector_all(
        "#heatmap .cell",
        "els => els.map(e => [+e.dataset.row, +e.dataset.column, "
        "getComputedStyle(e).backgroundColor])",
    )
    assert len(cells) == attention.size
    for row, column, color in cells:
        assert abs(_alpha(color) - attention[row, column]) <= ALPHA_TOLERANCE
    page.hover("#heatmap .cell[data-row='1'][data-column='0']")
    _check_row(page, attention, 1)
    assert errors == []
    page.close()


def test_beam_search_shows_the_n_best(browser, server, reference, sentence):
    page = browser.new_page(reduced_motion="reduce")
    errors = _open(page, server)
    page.check("input[name='method'][value='beam']")
    page.fill("#beam-width", "3")
    page.fill("#n-best", "2")
    _translate(page, sentence)
    page.wait_for_selector("#hypotheses:not([hidden]) li")
    items = page.eval_on_selector_all(
        "#hypotheses li", "els => els.map(e => e.firstChild.textContent)"
    )
    (expected,) = reference.translate_n_best(
        [sentence], method="beam", beam_width=3, n_best=2
    )
    assert [item.strip() for item in items] == [h.text for h in expected]
    assert page.text_content("#translation") == expected[0].text

    # A refusal is shown, in the API's words.
    page.fill("#n-best", "4")
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == (
        "Invalid n_best=4 with beam_width=3; beam search keeps beam_width "
        "hypotheses, so n_best must be <= beam_width."
    )
    assert errors == []
    page.close()


def test_phone_sized_touch_screen(browser, server, api, sentence):
    context = browser.new_context(
        viewport={"width": 375, "height": 667},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        reduced_motion="reduce",
    )
    page = context.new_page()
    errors = _open(page, server)
    _translate(page, sentence)
    expected = _api_translation(
        api, {"sentences": [sentence], "attention": True}
    )
    attention = np.asarray(expected["attention"])

    # A tap pins target token 2's attention; a second tap releases it.
    page.tap("#target-tokens .token[data-index='2']")
    _check_row(page, attention, 2)
    page.tap("#target-tokens .token[data-index='0']")
    _check_row(page, attention, 0)
    page.tap("#target-tokens .token[data-index='0']")
    weights, _ = _weights(page, "#source-tokens .token")
    assert weights == [None] * len(weights)

    # Nothing wider than the screen: the page never scrolls sideways (a
    # wide heatmap scrolls inside its own box).
    assert page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    )
    button = page.eval_on_selector(
        "#translate", "e => e.getBoundingClientRect().width"
    )
    assert button > 300  # full width on a phone
    assert errors == []
    context.close()
