import pytest
import tensorflow as tf

from keras_nmt.text.standardize import add_start_end
from keras_nmt.text.standardize import join_tokens
from keras_nmt.text.standardize import standardize

# Expected outputs written out by hand: combining marks as escapes
# (U+0301 acute, U+0300 grave, U+0302 circumflex, U+0303 tilde,
# U+0306 breve, U+0308 diaeresis, U+0323 dot below, U+3099 dakuten).
CASES = [
    # Spanish: accents decompose (NFKD), ¿ and ? become tokens.
    ("¿Todavía está en casa?", "¿ todavi\u0301a esta\u0301 en casa ?"),
    ("El niño y el camión.", "el nin\u0303o y el camio\u0301n ."),
    ("¡Hola, señor!", "¡ hola , sen\u0303or !"),
    # French: apostrophes are punctuation; grave, acute, diaeresis kept.
    ("L'été à Noël", "l ' e\u0301te\u0301 a\u0300 noe\u0308l"),
    # German: full case folding turns ß into ss.
    ("Ich weiß es nicht.", "ich weiss es nicht ."),
    ("STRASSE Straße", "strasse strasse"),
    # Vietnamese: stacked marks in canonical order.
    (
        "Tiếng Việt rất hay!",
        "tie\u0302\u0301ng vie\u0323\u0302t ra\u0302\u0301t hay !",
    ),
    # Cyrillic, including й -> и + breve.
    ("Привет, мир! Мой дом.", "привет , мир ! мои\u0306 дом ."),
    # Greek.
    ("Γειά σου Κόσμε;", "γεια\u0301 σου κο\u0301σμε ;"),
    # CJK: kept, not segmented; the ideographic full stop is punctuation.
    ("我爱你。", "我爱你 。"),
    # Japanese: で -> て + dakuten; fullwidth ！ -> ! (compatibility).
    ("日本語です！", "日本語て\u3099す !"),
    # Symbols, emoji and controls are dropped; numbers kept.
    ("Precio: 5€ + IVA 😀", "precio : 5 iva"),
    ("a\x00b\x07c", "a b c"),
    # Whitespace of every kind collapses; compatibility forms fold.
    ("  a\t\n b\u00a0c\u3000d  ", "a b c d"),
    ("ﬁn ①", "fin 1"),
    ("Wait...", "wait . . ."),
    ("", ""),
    ("😀 €", ""),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_standardize(text, expected):
    result = standardize(tf.constant([text])).numpy()[0].decode("utf-8")
    assert result == expected


def test_standardize_keeps_shape_and_accepts_python_strings():
    result = standardize([["Hi!", "Yo"], ["A b", "c"]])
    assert result.shape == (2, 2)
    assert result.dtype == tf.string
    assert standardize("Hi!").numpy() == b"hi !"


def test_standardize_rejects_non_strings():
    with pytest.raises(ValueError, match="received dtype int32"):
        standardize(tf.constant([1, 2]))


def test_add_start_end():
    result = add_start_end(standardize(["¿Qué?"])).numpy()[0].decode()
    assert result == "[START] ¿ que\u0301 ? [END]"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("¿Todavía está en casa?", "¿todavía está en casa?"),
        ("¡Hola, señor!", "¡hola, señor!"),
        ("El camión.", "el camión."),
        ("Ich weiß es nicht.", "ich weiss es nicht."),
        ("I don't know; why?", "i don't know; why?"),
        ("L'été à Noël: oui.", "l'été à noël: oui."),
        ("Tiếng Việt rất hay!", "tiếng việt rất hay!"),
        ("Привет, мир! Мой дом.", "привет, мир! мой дом."),
        ("Γειά σου Κόσμε;", "γειά σου κόσμε;"),
        ("我爱你。", "我爱你。"),
        ("Wait...", "wait..."),
        ("(Really?)", "(really?)"),
    ],
)
def test_round_trip(text, expected):
    tokens = tf.strings.split(standardize([text]))
    assert join_tokens(tokens).numpy()[0].decode("utf-8") == expected


def test_join_tokens_composes_nfc_and_drops_markers():
    tokens = [
        ["[START]", "el", "camio\u0301n", ".", "[END]", "", ""],
        ["[START]", "[UNK]", "!", "[END]"],
        [],
    ]
    result = [s.decode() for s in join_tokens(tokens).numpy()]
    assert result == ["el camión.", "[UNK]!", ""]
    assert len(result[0]) == len("el camión.")  # composed: 10 code points


def test_join_tokens_dense_tensor_and_custom_drop():
    tokens = tf.constant([["a", "b", "<pad>"], ["c", "<pad>", "<pad>"]])
    result = join_tokens(tokens, drop=("<pad>",)).numpy().tolist()
    assert result == [b"a b", b"c"]


def test_join_tokens_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"shape \(batch, length\)"):
        join_tokens(tf.constant(["a", "b"]))


def test_works_inside_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(text):
        return join_tokens(tf.strings.split(standardize(text)))

    result = round_trip(tf.constant(["¿Qué tal?"])).numpy()[0].decode()
    assert result == "¿qué tal?"
