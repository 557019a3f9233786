import os
import pathlib
import subprocess
import sys

from keras_nmt import datasets
from keras_nmt.text import load_demo_pairs
from keras_nmt.text import read_pairs

FIXTURE_DIR = pathlib.Path(__file__).parent.parent / "data"


def demo_lines():
    text = datasets.spa_eng_small_path().read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_demo_corpus_is_in_the_package():
    path = datasets.spa_eng_small_path()
    assert path.name == "spa-eng-small.tsv"
    assert path.parent == pathlib.Path(datasets.__file__).parent
    assert datasets.notice_path().is_file()


def test_every_line_parses_and_is_short():
    lines = demo_lines()
    assert len(lines) == 5000
    for number, line in enumerate(lines, start=1):
        columns = line.split("\t")
        assert len(columns) == 2, f"line {number}: {line!r}"
        assert columns[0].strip() and columns[1].strip(), number
        assert len(columns[0].split()) <= 6, f"line {number}: {line!r}"
    pairs = read_pairs(datasets.spa_eng_small_path(), on_error="raise")
    assert len(pairs) == 5000


def test_number_of_english_sentences():
    # As stated in the NOTICE: 5,000 pairs of 4,330 English sentences.
    pairs = load_demo_pairs()
    assert len(set(pairs.groups)) == 4330


def test_load_demo_pairs_direction():
    spanish_to_english = load_demo_pairs()
    english_to_spanish = load_demo_pairs(reverse=False)
    assert spanish_to_english.sources == english_to_spanish.targets
    assert spanish_to_english.targets == english_to_spanish.sources
    assert spanish_to_english.groups == english_to_spanish.sources
    assert any("¿" in s for s in spanish_to_english.sources)


def test_notice_names_source_licence_and_attribution():
    notice = datasets.notice_path().read_text(encoding="utf-8")
    for needle in (
        "tatoeba.org",
        "manythings.org/anki",
        "CC BY 2.0 FR",
        "https://creativecommons.org/licenses/by/2.0/fr/",
        "Attribution: www.manythings.org/anki and tatoeba.org",
        "licensed differently from the keras-nmt code",
        "subset",
        "benchmarks/make_demo_subset.py",
    ):
        assert needle in notice, needle


def test_fixture_is_a_verbatim_subset_with_notice():
    fixture = (FIXTURE_DIR / "spa-eng-fixture.tsv").read_text("utf-8")
    lines = fixture[:-1].split("\n")
    assert len(lines) == 300
    assert set(lines) <= set(demo_lines())
    notice = (FIXTURE_DIR / "NOTICE").read_text(encoding="utf-8")
    assert "CC BY 2.0 FR" in notice
    assert "www.manythings.org/anki and tatoeba.org" in notice


def test_importing_datasets_does_not_import_tensorflow():
    # On a backend other than TensorFlow, nothing here may pull it in.
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    code = (
        "import sys, keras_nmt.datasets as d; "
        "d.spa_eng_small_path(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, env=env
    )
