"""The small English–Spanish demo corpus shipped with keras-nmt.

`spa-eng-small.tsv`: 5,000 short sentence pairs (`English<TAB>Spanish`, one
per line, UTF-8), a subset of the Tatoeba spa-eng file. Data from the
Tatoeba Project (tatoeba.org) via manythings.org/anki, licensed CC BY 2.0 FR
(https://creativecommons.org/licenses/by/2.0/fr/), attribution
"www.manythings.org/anki and tatoeba.org". The data licence differs from
the code's (Apache-2.0); see the `NOTICE` file next to it.

Read it with `keras_nmt.text.load_demo_pairs()`. This module imports
nothing heavy.
"""

import importlib.resources
import pathlib

SPA_ENG_SMALL = "spa-eng-small.tsv"
NOTICE = "NOTICE"

__all__ = ["NOTICE", "SPA_ENG_SMALL", "notice_path", "spa_eng_small_path"]


def _path(name: str) -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files(__name__) / name))


def spa_eng_small_path() -> pathlib.Path:
    """The path of the embedded demo corpus, `spa-eng-small.tsv`."""
    return _path(SPA_ENG_SMALL)


def notice_path() -> pathlib.Path:
    """The path of the `NOTICE` (source, licence, attribution) of the data."""
    return _path(NOTICE)
