"""normalize(): the one function keywords and messages both go through."""

from __future__ import annotations

import pytest

from rules import normalize, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", "stop"),
        ("  STOP ", "stop"),
        ("Stop.", "stop"),
        ("stop!!", "stop"),
        ("STOP 🛑", "stop"),
        ("🛑STOP🛑", "stop"),
        ("STOP.Thanks", "stop thanks"),
        ("STOP,thanks!", "stop thanks"),
        ("ARRÊT", "arret"),
        ("Arrête", "arrete"),
        ("ÉÇÀÜ", "ecau"),
        ("OPT-OUT", "opt out"),
        ("opt\u2013out", "opt out"),  # en dash
        ("ＳＴＯＰ", "stop"),  # full-width letters
        ("S\u200bTOP", "stop"),  # zero-width space inside the word
        ("\ufeffSTOP", "stop"),  # byte-order mark
        ("ST\u00adOP", "stop"),  # soft hyphen
        ("stop\u00a0all", "stop all"),  # no-break space
        ("stop\t\n all", "stop all"),
        ("Straße", "strasse"),
        ("ﬁn", "fin"),  # ligature
        ("don't stop", "don t stop"),
        ("1️⃣ STOP", "1 stop"),  # keycap: the digit stays, the marks go
        ("👍🏽", ""),
        ("!!!", ""),
        ("", ""),
        ("한국어", "한국어"),
        ("Стоп", "стоп"),
        ("stop\x00now", "stop now"),
        ("\ud800stop", "stop"),  # a lone surrogate is a separator, never output
    ],
)
def test_normalize_table(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_keyword_and_message_normalise_alike() -> None:
    assert normalize("OPT-OUT") == normalize("opt out") == normalize("Opt-Out!") == "opt out"


def test_words_splits_normalised_text() -> None:
    assert words(normalize("Stop.  ALL, please")) == ("stop", "all", "please")
    assert words("") == ()


def test_output_is_encodable_for_the_regex_engine() -> None:
    assert normalize("a\udcffb").encode("utf-8") == b"a b"
