"""Compiled rules and their evaluation.

`evaluate` is a pure function of a `RuleSet` and one message: it normalises the text once, asks the
rule set's keyword index which rules' keywords occur (dictionary probes whose number depends on the
message, never on how many rules there are), merges those with the few rules an index cannot answer,
and walks the result in rule order. First match wins unless a rule says ``continue: true``; a rule with
a ``stop`` action ends evaluation whatever its ``continue`` says.

A `RuleSet` is immutable, so the gateway can share one between threads and swap it on reload.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from gateway.messages import InboundMessage
from rules.actions import Action, Stop
from rules.matching import Matcher, Phrase, address_key
from rules.normalize import normalize

__all__ = [
    "ActionSpec",
    "CompiledRule",
    "Firing",
    "RuleSet",
    "action_to_dict",
    "evaluate",
    "explain",
]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of a rule, ready to hand out.

    Most actions are the same object for every message. ``opt_out``/``opt_in`` with ``all_scopes_if``
    has a second, all-scopes variant chosen when the message is or starts with one of ``triggers``.
    """

    action: Action
    widened: Action | None = None
    triggers: frozenset[Phrase] = frozenset()

    def resolve(self, words: Sequence[str]) -> Action:
        """The action for a message with these normalised words."""
        if self.widened is not None:
            words = tuple(words)
            for phrase in self.triggers:
                if words[: len(phrase)] == phrase:
                    return self.widened
        return self.action


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, validated. ``channel`` None means any channel; ``senders`` None means every number."""

    name: str
    matcher: Matcher
    actions: tuple[ActionSpec, ...]
    enabled: bool = True
    channel: str | None = None
    #: Our numbers/addresses (as `address_key` gives them) this rule is limited to.
    senders: frozenset[str] | None = None
    #: ``continue: true`` in YAML: keep evaluating later rules after this one fires.
    keep_going: bool = False
    #: 1-based line of the rule in its file, when it came from YAML.
    line: int | None = None
    #: Whether the rule ends evaluation with a ``stop`` action (derived from ``actions``).
    stops: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stops", any(isinstance(spec.action, Stop) for spec in self.actions))


class Firing(NamedTuple):
    """One rule that fired for a message, with the actions it produced."""

    rule: str
    actions: list[Action]


class _Index:
    """Keyword lookups over the enabled rules: normalised keyword -> indexes of rules using it."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        exact: dict[str, list[int]] = {}
        starts: dict[Phrase, list[int]] = {}
        contains: dict[Phrase, list[int]] = {}
        scan: list[int] = []
        for position, rule in enumerate(rules):
            if not rule.enabled:
                continue
            matcher = rule.matcher
            for keyword in matcher.exact:
                exact.setdefault(keyword, []).append(position)
            for phrase in matcher.starts_with:
                starts.setdefault(phrase, []).append(position)
            for phrase in matcher.contains:
                contains.setdefault(phrase, []).append(position)
            if not matcher.indexed_only:
                scan.append(position)
        self.exact = {key: tuple(value) for key, value in exact.items()}
        self.starts = {key: tuple(value) for key, value in starts.items()}
        self.contains = {key: tuple(value) for key, value in contains.items()}
        # Probe only the phrase lengths that exist, so one long keyword does not make every probe slow.
        self.starts_lengths = tuple(sorted({len(phrase) for phrase in starts}))
        self.contains_lengths = tuple(sorted({len(phrase) for phrase in contains}))
        #: Rules with a mode the index cannot answer; checked one by one, in order, only when reached.
        self.scan = tuple(scan)

    def hits(self, text: str, words: tuple[str, ...]) -> set[int]:
        """Indexes of the rules whose exact, starts_with or contains keywords the message matches."""
        found: set[int] = set()
        matched = self.exact.get(text)
        if matched:
            found.update(matched)
        count = len(words)
        for length in self.starts_lengths:
            if length > count:
                break
            matched = self.starts.get(words[:length])
            if matched:
                found.update(matched)
        for length in self.contains_lengths:
            if length > count:
                break
            lookup = self.contains.get
            for start in range(count - length + 1):
                matched = lookup(words[start : start + length])
                if matched:
                    found.update(matched)
        return found


class RuleSet:
    """An ordered, immutable collection of compiled rules with its keyword index.

    Build one with `rules.compile_rules`; constructing it directly skips validation.
    """

    __slots__ = ("_index", "filename", "rules")

    def __init__(self, rules: Iterable[CompiledRule], filename: str = "<rules>") -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        self.filename = filename
        self._index = _Index(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules from {self.filename!r})"

    def get(self, name: str) -> CompiledRule | None:
        """The rule called ``name``, if there is one."""
        return next((rule for rule in self.rules if rule.name == name), None)

    def fire(self, text: str, *, channel: str = "sms", recipient: str = "") -> Iterator[Firing]:
        """Yield the rules that fire for ``text`` sent on ``channel`` to our number ``recipient``.

        This is the engine itself; `evaluate` and `explain` are thin wrappers that take a message.
        """
        normalized = normalize(text)
        words = tuple(normalized.split())
        padded = f" {normalized} "
        index = self._index
        hits = index.hits(normalized, words)
        recipient_key: str | None = None
        previous = -1
        for position in _in_rule_order(hits, index.scan):
            if position == previous:  # a rule can be both a keyword hit and in the scan list
                continue
            previous = position
            rule = self.rules[position]
            if rule.channel is not None and rule.channel != channel:
                continue
            if rule.senders is not None:
                if recipient_key is None:
                    recipient_key = address_key(recipient)
                if recipient_key not in rule.senders:
                    continue
            if position not in hits and not rule.matcher.matches_unindexed(normalized, padded):
                continue
            yield Firing(rule.name, [spec.resolve(words) for spec in rule.actions])
            if rule.stops or not rule.keep_going:
                return


def _in_rule_order(hits: set[int], scan: tuple[int, ...]) -> Iterable[int]:
    """Keyword hits and scan-list rules merged in rule order (duplicates possible, adjacent)."""
    if not scan:
        return sorted(hits)
    if not hits:
        return scan
    return heapq.merge(sorted(hits), scan)


def explain(rules: RuleSet, message: InboundMessage) -> list[Firing]:
    """Which rules fire for ``message`` and the actions each produces, in order. No side effects."""
    return list(rules.fire(message.text, channel=str(message.channel), recipient=message.recipient))


def evaluate(rules: RuleSet, message: InboundMessage) -> list[Action]:
    """The actions ``message`` triggers, in order: the first matching rule's, plus those of later
    rules while the matching ones say ``continue: true`` and none has a ``stop`` action.

    Pure: nothing is performed. Each action names the rule it came from (``action.rule``); a `Stop`
    action is included so the record shows why evaluation ended, and needs no handling.
    """
    return [
        action
        for firing in rules.fire(message.text, channel=str(message.channel), recipient=message.recipient)
        for action in firing.actions
    ]


def action_to_dict(action: Action) -> dict[str, Any]:
    """A JSON-safe description of an action: ``{"type": "opt_out", "rule": ..., "all_scopes": false}``."""
    data: dict[str, Any] = {"type": action.type}
    for item in fields(action):
        data[item.name] = getattr(action, item.name)
    return data
