import dataclasses

import pytest

from keras_nmt.decoding.methods import METHODS
from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.decoding.methods import decode


class _Recorder:
    """Stands for a `Seq2SeqInference`: records the call `decode` makes."""

    def __getattr__(self, method):
        def call(source, **kwargs):
            return (method, source, kwargs)

        return call


# A value other than the default for every option.
_CHANGED = {
    "beam_width": 7,
    "length_penalty": 1.0,
    "coverage_penalty": 0.2,
    "temperature": 0.5,
    "top_k": 10,
    "top_p": 0.9,
    "min_length": 2,
    "no_repeat_ngram_size": 3,
    "max_length_ratio": 1.5,
    "n_best": 2,
}


def test_defaults_decode_as_before():
    options = DecodingOptions()
    assert options.coverage_penalty == 0.0
    assert options.min_length == 0
    assert options.no_repeat_ngram_size == 0
    assert options.max_length_ratio is None
    assert options.top_p is None
    assert set(_CHANGED) <= set(DecodingOptions.names())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_passes_exactly_the_options_it_uses(name):
    method = METHODS[name]
    base = DecodingOptions(method=name, beam_width=7)
    called, source, kwargs = decode(_Recorder(), "SOURCE", base)
    assert source == "SOURCE"
    assert (
        called
        == {
            "greedy": "greedy",
            "sample": "sample",
            "beam": "beam_search",
        }[name]
    )
    for field in set(_CHANGED) - {"beam_width"}:
        if field == "n_best" and name != "beam":
            continue  # refused with other methods
        changed = decode(
            _Recorder(), "SOURCE", base.replace(**{field: _CHANGED[field]})
        )
        if field in method.uses:
            assert changed[2][field] == _CHANGED[field], field
        else:
            assert changed == (called, source, kwargs), field
    assert set(kwargs) == set(method.uses)


def test_beam_search_gets_every_option():
    options = DecodingOptions(method="beam", **_CHANGED)
    _, _, kwargs = decode(_Recorder(), "SOURCE", options)
    assert kwargs == {
        name: _CHANGED[name]
        for name in (
            "beam_width",
            "length_penalty",
            "coverage_penalty",
            "min_length",
            "no_repeat_ngram_size",
            "max_length_ratio",
            "n_best",
        )
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"coverage_penalty": -0.1},
            r"coverage_penalty=-0\.1; expected a finite number >= 0",
        ),
        ({"min_length": -1}, r"min_length=-1; expected an integer >= 0"),
        ({"min_length": 1.5}, r"min_length=1\.5"),
        (
            {"no_repeat_ngram_size": -1},
            r"no_repeat_ngram_size=-1; expected an integer >= 0",
        ),
        ({"top_p": 0.0}, r"top_p=0\.0; expected None or a number in \(0, 1\]"),
        ({"top_p": 1.01}, r"top_p=1\.01"),
        ({"top_p": True}, r"top_p=True"),
        ({"top_p": "0.9"}, r"top_p='0\.9'"),
        (
            {"max_length_ratio": 0},
            r"max_length_ratio=0; expected None or a number > 0",
        ),
        ({"max_length_ratio": float("inf")}, r"max_length_ratio=inf"),
    ],
)
def test_invalid_options(changes, message):
    with pytest.raises(ValueError, match=r"^Invalid " + message):
        DecodingOptions(**changes)


def test_options_parse_and_round_trip():
    fields = {f.name: f for f in dataclasses.fields(DecodingOptions)}
    for name, text, value in [
        ("top_p", "0.9", 0.9),
        ("max_length_ratio", "1.5", 1.5),
        ("coverage_penalty", "0.2", 0.2),
        ("min_length", "3", 3),
        ("no_repeat_ngram_size", "2", 2),
    ]:
        check = fields[name].metadata["check"]
        assert check.normalize(check.parse(text)) == value
        assert fields[name].metadata["help"]
    options = DecodingOptions(method="sample", top_p=1, max_length_ratio=2)
    assert options.top_p == 1.0 and isinstance(options.top_p, float)
    assert DecodingOptions.from_dict(options.to_dict()) == options
    # A file saved before these options existed still loads.
    old = {"method": "beam", "beam_width": 4, "length_penalty": 0.6}
    assert DecodingOptions.from_dict(old).coverage_penalty == 0.0
