"""Text normalisation shared by rule keywords and inbound messages.

Keywords and messages go through the same function, so a rule written as ``OPT-OUT`` matches a text of
"opt out", "Opt-Out!" or the same in full-width letters. The result is lower case, without accents,
with every run of punctuation, symbols, emoji and whitespace turned into one space, and zero-width
characters dropped (so "STOP" with a zero-width space pasted inside still reads "stop").

Most messages are plain ASCII, so that case takes a fast path through one byte translation table; the
Unicode path caches the per-character decision so ``unicodedata.category`` runs once per distinct
character, not once per character seen.
"""

from __future__ import annotations

import unicodedata

__all__ = ["normalize", "words"]

_SEPARATOR = " "
_DROP = ""

# Categories dropped without leaving a word break. Marks (Mn, Me) are what NFKD splits accents into;
# format characters (Cf) are zero-width joiners, soft hyphens, bidi controls and the like, which people
# do not see and so must not split a word either.
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})

# Letters, numbers and spacing marks (Mc, vowel signs in Indic scripts) are the content of words.
_KEPT_PREFIXES = ("L", "N")


def _classify(char: str) -> str:
    """What one character of NFKD, case-folded text becomes: itself, nothing, or a word separator."""
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return _DROP
    if category.startswith(_KEPT_PREFIXES) or category == "Mc":
        return char
    # Punctuation, symbols (emoji are So), separators, controls, private-use, surrogates and code points
    # this Python's Unicode tables do not know yet (newer emoji) all split words. Mapping surrogates away
    # also guarantees the result can be encoded as UTF-8 for the regex engine.
    return _SEPARATOR


class _CharMap(dict[int, str]):
    """A ``str.translate`` table filled on demand, one entry per distinct code point seen.

    The size is capped so a message built to contain every code point cannot grow it without bound;
    past the cap characters are still classified, just not remembered.
    """

    _LIMIT = 65_536

    def __missing__(self, code_point: int) -> str:
        result = _classify(chr(code_point))
        if len(self) < self._LIMIT:
            self[code_point] = result
        return result


_CHAR_MAP = _CharMap()


def _ascii_table() -> bytes:
    """The ASCII fast path's byte table, derived from `_classify` so both paths always agree."""
    table = bytearray(range(128))
    for code in range(128):
        mapped = _classify(chr(code).lower())
        # No ASCII character is dropped (none is Mn/Me/Cf), so each maps to exactly one byte.
        assert len(mapped) == 1
        table[code] = ord(mapped)
    return bytes(table) + bytes(range(128, 256))


_ASCII_TABLE = _ascii_table()


def normalize(text: str) -> str:
    """Return ``text`` in the form rules compare: case-folded, accent-free, one space between words.

    Steps: NFKC (full-width and compatibility forms become plain letters), case-fold, NFKD and drop the
    combining marks (``ARRÊT`` -> ``arret``), drop zero-width/format characters, turn punctuation,
    symbols and emoji into spaces, collapse whitespace and strip it from both ends.
    """
    if text.isascii():
        folded = text.encode("ascii").translate(_ASCII_TABLE).decode("ascii")
    else:
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = unicodedata.normalize("NFKD", folded).translate(_CHAR_MAP)
        # Recompose what NFKD split but that is not an accent (Hangul syllables, for instance), so the
        # result reads naturally and a second normalisation gives the same text.
        folded = unicodedata.normalize("NFC", folded)
    return " ".join(folded.split())


def words(normalized: str) -> tuple[str, ...]:
    """Split text that `normalize` returned into its words (an empty tuple for empty text)."""
    return tuple(normalized.split())
