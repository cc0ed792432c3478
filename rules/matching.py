"""What one rule matches: keyword sets, regexes, and the address comparison used for ``senders``.

A `Matcher` answers "does this normalised text match?" on its own (`Matcher.matches`), but the engine
rarely asks it that: keyword modes are answered for all rules at once by the rule set's index, and only
the modes an index cannot answer (``regex``, ``not_contains``, ``any``) are checked rule by rule with
`Matcher.matches_unindexed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

__all__ = ["Matcher", "Phrase", "address_key", "compile_regex", "contains_phrase"]

#: A keyword after normalisation, as its words: ``"OPT-OUT"`` -> ``("opt", "out")``.
Phrase = tuple[str, ...]


def contains_phrase(padded_text: str, phrase: Phrase) -> bool:
    """Whether ``phrase`` occurs as whole words in text that was normalised and padded with spaces.

    Normalised text has exactly one space between words, so a substring test on space-padded strings
    is a whole-word test: "stop" is not found in " bus stopped ".
    """
    return f" {' '.join(phrase)} " in padded_text


def compile_regex(pattern: str) -> Any:
    """Compile ``pattern`` with the linear-time engine, or raise ``ValueError`` saying why not.

    Matching is case-insensitive because the text it runs on is already case-folded, so ``^STOP``
    would otherwise silently never match.
    """
    options = re2.Options()
    options.case_sensitive = False
    # Errors are reported to the caller; the engine's own logging would write to stderr.
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        detail = error.args[0] if error.args else "invalid pattern"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(str(detail)) from None


def address_key(address: str) -> str:
    """The form in which our numbers are compared: ``"+1 (555) 010-0199"`` -> ``"15550100199"``.

    Spaces and common phone punctuation are removed and a leading ``+`` is ignored, so numbers written
    with or without it compare equal. Email addresses are compared case-insensitively instead.
    """
    compact = "".join(address.split())
    if "@" in compact:
        return compact.lower()
    return compact.translate(_PHONE_PUNCTUATION).lstrip("+")


_PHONE_PUNCTUATION = str.maketrans("", "", "-().")


@dataclass(frozen=True, slots=True)
class Matcher:
    """The compiled ``match:`` block of one rule. Its modes are OR'ed."""

    exact: frozenset[str] = frozenset()
    starts_with: frozenset[Phrase] = frozenset()
    contains: frozenset[Phrase] = frozenset()
    not_contains: frozenset[Phrase] = frozenset()
    any: bool = False
    #: Compiled linear-time regexes, matched against the normalised text.
    regex: tuple[Any, ...] = ()
    #: The regexes' source text, for display.
    patterns: tuple[str, ...] = ()
    _not_contains_needles: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        needles = tuple(f" {' '.join(phrase)} " for phrase in sorted(self.not_contains))
        object.__setattr__(self, "_not_contains_needles", needles)

    @property
    def indexed_only(self) -> bool:
        """True when every mode this rule uses can be answered by the rule set's keyword index."""
        return not (self.any or self.regex or self.not_contains)

    def matches_unindexed(self, text: str, padded_text: str) -> bool:
        """Check only the modes an index cannot answer: ``any``, ``not_contains`` and ``regex``."""
        if self.any:
            return True
        if self._not_contains_needles and not any(
            needle in padded_text for needle in self._not_contains_needles
        ):
            return True
        return any(pattern.search(text) is not None for pattern in self.regex)

    def matches(self, text: str) -> bool:
        """Whether normalised ``text`` matches any mode. Rule by rule; the engine uses its index instead."""
        words = text.split()
        padded = f" {text} "
        if text in self.exact:
            return True
        if any(tuple(words[: len(phrase)]) == phrase for phrase in self.starts_with):
            return True
        if any(contains_phrase(padded, phrase) for phrase in self.contains):
            return True
        return self.matches_unindexed(text, padded)
