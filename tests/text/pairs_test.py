import collections
import pathlib
import shutil
import warnings

import keras
import pytest

from keras_nmt.text import pairs as pairs_module
from keras_nmt.text.pairs import DataFormatError
from keras_nmt.text.pairs import SentencePairs
from keras_nmt.text.pairs import load_demo_pairs
from keras_nmt.text.pairs import load_spa_eng
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.pairs import spa_eng_path
from keras_nmt.text.pairs import split_pairs

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"


def write(tmp_path, content, name="pairs.tsv"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# --- reading ---------------------------------------------------------------


def test_two_and_three_columns(tmp_path):
    path = write(
        tmp_path,
        "Go.\tVe.\n"
        "Hi.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123\n",
    )
    pairs = read_pairs(path)
    assert pairs.sources == ["Go.", "Hi."]
    assert pairs.targets == ["Ve.", "Hola."]
    assert pairs.groups == ["Go.", "Hi."]
    assert len(pairs) == 2


def test_reverse_swaps_source_and_target_but_not_groups(tmp_path):
    path = write(tmp_path, "Go.\tVe.\nGo.\tVete.\n")
    pairs = read_pairs(path, reverse=True)
    assert pairs.sources == ["Ve.", "Vete."]
    assert pairs.targets == ["Go.", "Go."]
    assert pairs.groups == ["Go.", "Go."]


def test_whitespace_around_sentences_is_stripped(tmp_path):
    path = write(tmp_path, "  Go. \t Ve.  \n")
    pairs = read_pairs(path)
    assert (pairs.sources, pairs.targets) == (["Go."], ["Ve."])


def test_crlf_bom_and_blank_lines(tmp_path):
    path = write(
        tmp_path,
        b"\xef\xbb\xbfGo.\tVe.\r\n\r\n   \nHi.\tHola.\r\n\n\n",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # blank lines never warn
        pairs = read_pairs(path)
    assert pairs.sources == ["Go.", "Hi."]
    assert pairs.targets == ["Ve.", "Hola."]


def test_non_ascii_sentences(tmp_path):
    path = write(tmp_path, "Who?\t¿Quién?\nThe truck.\tEl camión.\n")
    pairs = read_pairs(path)
    assert pairs.targets == ["¿Quién?", "El camión."]


@pytest.mark.parametrize(
    "line, match",
    [
        (
            "Go. Ve.",
            r"line 2: found 1 tab-separated column\(s\).*expected 2 or 3",
        ),
        ("a\tb\tc\td", r"line 2: found 4 tab-separated column\(s\)"),
        ("\tVe.", r"line 2: column 1 is empty or only whitespace"),
        ("Go.\t", r"line 2: column 2 is empty or only whitespace"),
        ("Go.\t   \tx", r"line 2: column 2 is empty or only whitespace"),
    ],
)
def test_malformed_line_raises_with_line_number(tmp_path, line, match):
    path = write(tmp_path, f"Hi.\tHola.\n{line}\nBye.\tAdiós.\n")
    with pytest.raises(DataFormatError, match=match) as info:
        read_pairs(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path, "Hi.\tHola.\n\n\nbroken\n")
    with pytest.raises(DataFormatError, match="line 4:"):
        read_pairs(path)


def test_latin1_file_reports_invalid_utf8_and_line(tmp_path):
    content = "Hi.\tHola.\nWho?\t¿Quién?\n".encode("latin-1")
    path = write(tmp_path, content)
    with pytest.raises(
        DataFormatError, match=r"line 2: invalid UTF-8 .*byte 0xbf"
    ) as info:
        read_pairs(path)
    assert "iconv" in str(info.value)


def test_skip_mode_counts_skips_in_one_warning(tmp_path):
    lines = ["Hi.\tHola."]
    lines += ["broken"] * 7
    lines += ["Bye.\tAdiós.", "\tempty"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as record:
        pairs = read_pairs(path, on_error="skip")
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 8 malformed line(s)" in message
    assert "line 2, 3, 4, 5, 6, ..." in message
    assert pairs.sources == ["Hi.", "Bye."]


def test_skip_mode_skips_invalid_utf8(tmp_path):
    path = write(tmp_path, b"Hi.\tHola.\nWho?\t\xbfQui\xe9n?\n")
    with pytest.warns(UserWarning, match=r"skipped 1 .*line 2\)"):
        pairs = read_pairs(path, on_error="skip")
    assert pairs.targets == ["Hola."]


@pytest.mark.parametrize("content", ["", "\n", "  \n\n"])
def test_empty_file_is_an_error(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(DataFormatError, match="no sentence pairs found"):
        read_pairs(path)


def test_no_valid_pair_in_skip_mode_is_an_error(tmp_path):
    path = write(tmp_path, "a\nb\n")
    with pytest.warns(UserWarning, match="skipped 2"):
        with pytest.raises(DataFormatError, match="2 malformed line"):
            read_pairs(path, on_error="skip")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_pairs(path)


def test_max_pairs_reads_the_first_pairs(tmp_path):
    path = write(tmp_path, "a\tA\nb\tB\nc\tC\nbroken\n")
    pairs = read_pairs(path, max_pairs=2)
    assert pairs.sources == ["a", "b"]


@pytest.mark.parametrize("max_pairs", [0, -1, 1.5, True])
def test_invalid_max_pairs(tmp_path, max_pairs):
    path = write(tmp_path, "a\tA\n")
    with pytest.raises(ValueError, match="max_pairs"):
        read_pairs(path, max_pairs=max_pairs)


def test_invalid_on_error(tmp_path):
    path = write(tmp_path, "a\tA\n")
    with pytest.raises(ValueError, match="on_error='ignore'"):
        read_pairs(path, on_error="ignore")


def test_sentence_pairs_checks_lengths():
    with pytest.raises(ValueError, match=r"lengths \(2, 1, 2\)"):
        SentencePairs(["a", "b"], ["A"], ["a", "b"])


def test_fixture_parses():
    pairs = read_pairs(FIXTURE)
    assert len(pairs) == 300


# --- splitting ---------------------------------------------------------------


def synthetic_pairs(n_groups=2000, per_group=3):
    sources, targets, groups = [], [], []
    for g in range(n_groups):
        for k in range(1 + g % per_group):
            groups.append(f"sentence {g}")
            sources.append(f"frase {g} version {k}")
            targets.append(f"sentence {g}")
    return SentencePairs(sources, targets, groups)


def test_split_is_deterministic():
    pairs = read_pairs(FIXTURE)
    assert split_pairs(pairs, seed=3) == split_pairs(pairs, seed=3)


def test_split_pins_assignments_across_platforms():
    # sha256-based: these must never change between platforms, Python
    # versions or PYTHONHASHSEED values (a regression guard).
    letters = list("abcdefghijklmnopqrst")
    pairs = SentencePairs(letters, letters, letters)
    parts = split_pairs(pairs, fractions=(0.5, 0.25, 0.25), seed=0)
    assert [part.groups for part in parts] == [
        list("acdefhilnpqst"),
        list("bgkor"),
        list("jm"),
    ]


def test_no_group_crosses_splits_and_nothing_is_lost():
    pairs = synthetic_pairs()
    parts = split_pairs(pairs, seed=7)
    group_sets = [set(part.groups) for part in parts]
    assert not group_sets[0] & group_sets[1]
    assert not group_sets[0] & group_sets[2]
    assert not group_sets[1] & group_sets[2]
    rejoined = collections.Counter()
    for part in parts:
        rejoined.update(
            zip(part.sources, part.targets, part.groups, strict=True)
        )
    assert rejoined == collections.Counter(
        zip(pairs.sources, pairs.targets, pairs.groups, strict=True)
    )


def test_split_keeps_input_order():
    pairs = synthetic_pairs(200)
    position = {s: i for i, s in enumerate(pairs.sources)}
    for part in split_pairs(pairs, seed=1):
        indices = [position[s] for s in part.sources]
        assert indices == sorted(indices)


def test_split_fractions_are_roughly_right():
    pairs = synthetic_pairs(4000)
    n_groups = len(set(pairs.groups))
    train, validation, test = split_pairs(pairs, fractions=(0.7, 0.2, 0.1))
    for part, fraction in ((train, 0.7), (validation, 0.2), (test, 0.1)):
        assert abs(len(set(part.groups)) / n_groups - fraction) < 0.03
        assert abs(len(part) / len(pairs) - fraction) < 0.04


def test_different_seed_gives_different_split():
    pairs = synthetic_pairs(500)
    a = split_pairs(pairs, seed=0)
    b = split_pairs(pairs, seed=1)
    assert set(a.test.groups) != set(b.test.groups)


def test_zero_test_fraction_gives_empty_test():
    pairs = synthetic_pairs(300)
    train, validation, test = split_pairs(pairs, fractions=(0.9, 0.1, 0.0))
    assert len(test) == 0
    assert len(train) + len(validation) == len(pairs)


@pytest.mark.parametrize(
    "fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)]
)
def test_invalid_fractions(fractions):
    with pytest.raises(ValueError, match="sum to 1"):
        split_pairs(synthetic_pairs(10), fractions=fractions)


# --- locating spa-eng ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["file", "spa-eng/spa.txt", "spa.txt"])
def test_load_spa_eng_from_path(tmp_path, layout):
    if layout == "file":
        target = tmp_path / "anything.txt"
        argument = target
    else:
        target = tmp_path / layout
        argument = tmp_path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE, target)
    pairs = load_spa_eng(argument)
    assert len(pairs) == 300
    # Spanish -> English by default: targets are the English column.
    assert pairs.targets == pairs.groups


def test_load_spa_eng_from_environment(tmp_path, monkeypatch):
    (tmp_path / "spa-eng").mkdir()
    shutil.copy(FIXTURE, tmp_path / "spa-eng" / "spa.txt")
    monkeypatch.setenv("KERAS_NMT_DATA", str(tmp_path))
    pairs = load_spa_eng(reverse=False, max_pairs=10)
    assert len(pairs) == 10
    assert pairs.sources == pairs.groups


def test_load_spa_eng_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_NMT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="KERAS_NMT_DATA"):
        load_spa_eng()
    with pytest.raises(FileNotFoundError, match="spa-eng/spa.txt"):
        load_spa_eng(tmp_path / "missing")


def test_download_branch_uses_get_file(tmp_path, monkeypatch):
    # No network in tests: stand in for keras.utils.get_file.
    extracted = tmp_path / "spa-eng.zip_extracted"
    (extracted / "spa-eng").mkdir(parents=True)
    shutil.copy(FIXTURE, extracted / "spa-eng" / "spa.txt")
    calls = []

    def fake_get_file(fname, origin, extract):
        calls.append((fname, origin, extract))
        return str(extracted)

    monkeypatch.delenv("KERAS_NMT_DATA", raising=False)
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert spa_eng_path() == extracted / "spa-eng" / "spa.txt"
    assert calls == [("spa-eng.zip", pairs_module.SPA_ENG_URL, True)]


def test_load_demo_pairs():
    pairs = load_demo_pairs()
    assert len(pairs) == 5000
    assert pairs.targets == pairs.groups  # English targets
    english_first = load_demo_pairs(reverse=False, max_pairs=3)
    assert english_first.sources == pairs.targets[:3]
