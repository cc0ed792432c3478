"""Small helpers for validating raw YAML values while collecting, not raising, every problem.

A rule file is checked in one pass and all problems are reported together, each as
``file:line: rule 'name': problem``; these helpers read one value each and record what is wrong.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rules.yamlload import line_of

__all__ = ["Reporter", "Scope", "describe_type"]


def describe_type(value: object) -> str:
    """How a YAML value reads in an error message: "a list", "a number", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


@dataclass
class Reporter:
    """Collects problems for one file."""

    filename: str
    problems: list[str] = field(default_factory=list)
    _lines: list[int] = field(default_factory=list, repr=False)

    def add(self, line: int | None, subject: str | None, message: str) -> None:
        """Record ``message`` at ``line`` (when known) about ``subject`` (e.g. "rule 'opt-out'")."""
        where = f"{self.filename}:{line}" if line else self.filename
        self.problems.append(f"{where}: {subject}: {message}" if subject else f"{where}: {message}")
        self._lines.append(line or 0)

    def sort_since(self, start: int) -> None:
        """Put the problems recorded since ``start`` in file order (checks run in a fixed order, not
        the order keys were written in)."""
        pairs = sorted(zip(self._lines[start:], self.problems[start:], strict=True), key=lambda pair: pair[0])
        self._lines[start:] = [line for line, _ in pairs]
        self.problems[start:] = [problem for _, problem in pairs]


@dataclass(frozen=True)
class Scope:
    """Where problems are being found: the subject to name and the line to use when none is better."""

    reporter: Reporter
    subject: str
    line: int | None

    def at(self, line: int | None) -> Scope:
        """The same subject with a more precise fallback line."""
        return replace(self, line=line or self.line)

    def error(self, message: str, container: object = None, key: object = None) -> None:
        """Record a problem at the line of ``container[key]`` (or of ``container``), else our line."""
        self.reporter.add(line_of(container, key, default=self.line), self.subject, message)

    def check_keys(self, mapping: Mapping[Any, Any], allowed: Collection[str], where: str) -> None:
        """Report every key of ``mapping`` that is not in ``allowed``, suggesting a close spelling."""
        for key in mapping:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(allowed)}"
            self.error(f"unknown key {key!r} in {where}{hint}", mapping, key)

    def boolean(self, mapping: Mapping[Any, Any], key: str, default: bool) -> bool:
        """``mapping[key]`` as a bool, ``default`` when absent."""
        value = mapping.get(key, default)
        if isinstance(value, bool):
            return value
        self.error(f"{key} must be true or false, not {describe_type(value)}", mapping, key)
        return default

    def text(self, mapping: Mapping[Any, Any], key: str, *, required: bool, what: str = "") -> str | None:
        """``mapping[key]`` as a non-empty string; None (and a problem if required) when absent."""
        label = what or key
        if key not in mapping or mapping[key] is None:
            if required:
                self.error(f"{label} is required", mapping)
            return None
        value = mapping[key]
        if isinstance(value, str) and value.strip():
            return value
        self.error(f"{label} must be a non-empty string, not {describe_type(value)}", mapping, key)
        return None

    def strings(self, mapping: Mapping[Any, Any], key: str, what: str = "") -> list[tuple[str, int | None]]:
        """``mapping[key]`` as a non-empty list of strings (one string is accepted as a list of one).

        Each string comes with its own line so a problem with item 12 points at item 12.
        """
        label = what or key
        value = mapping[key]
        if isinstance(value, str):
            return [(value, line_of(mapping, key, self.line))]
        if not isinstance(value, list) or not value:
            shown = "an empty list" if isinstance(value, list) else describe_type(value)
            self.error(f"{label} must be a string or a non-empty list of strings, not {shown}", mapping, key)
            return []
        items: list[tuple[str, int | None]] = []
        for position, item in enumerate(value):
            item_line = line_of(value, position, line_of(mapping, key, self.line))
            if isinstance(item, str):
                items.append((item, item_line))
            else:
                hint = " (quote it)" if isinstance(item, bool | int | float) or item is None else ""
                self.at(item_line).error(f"{label} entries must be strings, not {describe_type(item)}{hint}")
        return items
