"""Validating raw YAML rules and compiling them into a `RuleSet`.

Every problem in every rule is collected and raised together as one `RuleSetError`, so a broken file
is fixed in one round instead of one error per run. Keywords are normalised here, once, with the same
function the engine applies to each message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway.messages import Channel
from rules.actionparse import parse_actions
from rules.actions import OptOut
from rules.engine import CompiledRule, RuleSet
from rules.errors import RuleSetError
from rules.matching import Matcher, Phrase, address_key, compile_regex
from rules.normalize import normalize
from rules.validate import Reporter, Scope, describe_type
from rules.yamlload import line_of

__all__ = ["MATCH_KEYS", "RULE_KEYS", "compile_rules"]

RULE_KEYS = ("name", "enabled", "channel", "senders", "continue", "match", "actions")
MATCH_KEYS = ("exact", "starts_with", "contains", "not_contains", "any", "regex")
_CHANNELS = tuple(channel.value for channel in Channel)
_KEYWORD_MODES = ("exact", "starts_with", "contains", "not_contains")


def compile_rules(
    raw: list[Any] | None,
    *,
    filename: str = "config.yaml",
    allow_no_opt_out: bool = False,
    templates: Collection[str] | None = None,
) -> RuleSet:
    """Validate and compile the raw ``rules:`` list (as `load_yaml` returns it) into a `RuleSet`.

    ``filename`` is named in every problem. ``templates``, when given, are the template names replies
    may use. Unless ``allow_no_opt_out``, at least one enabled rule that applies to SMS must have an
    ``opt_out`` action. Raises `RuleSetError` listing every problem found.
    """
    reporter = Reporter(filename)
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        reporter.add(line_of(raw), None, f"rules must be a list of rules, not {describe_type(raw)}")
        raise RuleSetError(reporter.problems)
    compiled: list[CompiledRule] = []
    first_line: dict[str, int | None] = {}
    for position, item in enumerate(raw):
        rule = _compile_rule(reporter, item, position, line_of(raw, position), first_line, templates)
        if rule is not None:
            compiled.append(rule)
    # Checked only on an otherwise valid set: an opt-out rule with a typo must not be reported twice.
    if not reporter.problems and not allow_no_opt_out and not _has_sms_opt_out(compiled):
        reporter.add(
            line_of(raw),
            None,
            "no enabled rule for sms (or any channel) has an opt_out action, so STOP would be ignored; "
            "add one, or set compliance.allow_no_opt_out: true if opt-outs are handled elsewhere",
        )
    if reporter.problems:
        raise RuleSetError(reporter.problems)
    return RuleSet(compiled, filename)


def _has_sms_opt_out(rules: list[CompiledRule]) -> bool:
    return any(
        rule.enabled
        and rule.channel in (None, Channel.SMS.value)
        and any(isinstance(spec.action, OptOut) for spec in rule.actions)
        for rule in rules
    )


def _compile_rule(
    reporter: Reporter,
    item: object,
    position: int,
    item_line: int | None,
    first_line: dict[str, int | None],
    templates: Collection[str] | None,
) -> CompiledRule | None:
    """One rule, or None when it has problems (which are reported)."""
    if not isinstance(item, Mapping):
        reporter.add(
            item_line, f"rule #{position + 1}", f"a rule must be a mapping, not {describe_type(item)}"
        )
        return None
    problems_before = len(reporter.problems)
    line = line_of(item, default=item_line)
    name = item.get("name")
    named = isinstance(name, str) and bool(name.strip())
    scope = Scope(reporter, f"rule {name!r}" if named else f"rule #{position + 1}", line)
    if "name" not in item:
        scope.error("name is required")
    elif not isinstance(name, str) or not named:
        scope.error(f"name must be a non-empty string, not {describe_type(name)}", item, "name")
    elif name in first_line:
        earlier = first_line[name]
        where = f" (first used on line {earlier})" if earlier else ""
        scope.error(f"duplicate rule name {name!r}{where}", item, "name")
    else:
        first_line[name] = line_of(item, "name", line)
    scope.check_keys(item, RULE_KEYS, "rule")

    enabled = scope.boolean(item, "enabled", True)
    keep_going = scope.boolean(item, "continue", False)
    channel = _channel(scope, item)
    senders = _senders(scope, item)
    matcher = _matcher(scope, item)
    actions = parse_actions(scope, item, name if isinstance(name, str) else "", templates)
    if len(reporter.problems) > problems_before or matcher is None or not isinstance(name, str):
        reporter.sort_since(problems_before)
        return None
    return CompiledRule(
        name=name,
        matcher=matcher,
        actions=actions,
        enabled=enabled,
        channel=channel,
        senders=senders,
        keep_going=keep_going,
        line=line,
    )


def _channel(scope: Scope, rule: Mapping[Any, Any]) -> str | None:
    value = rule.get("channel")
    if value is None:
        return None
    if isinstance(value, str) and value in _CHANNELS:
        return value
    scope.error(f"channel must be one of {', '.join(_CHANNELS)}, not {describe_type(value)}", rule, "channel")
    return None


def _senders(scope: Scope, rule: Mapping[Any, Any]) -> frozenset[str] | None:
    """Our numbers the rule is limited to, as `address_key` forms; None means all of them."""
    if rule.get("senders") is None:
        return None
    keys: set[str] = set()
    everyone = False
    for number, line in scope.strings(rule, "senders"):
        if number.strip() == "*":
            everyone = True
            continue
        key = address_key(number)
        if key:
            keys.add(key)
        else:
            scope.at(line).error(f"sender {number!r} is not a phone number or address")
    return None if everyone else frozenset(keys)


def _phrases(scope: Scope, match: Mapping[Any, Any], mode: str) -> set[Phrase]:
    """The normalised keywords of one keyword mode, each as its words."""
    if mode not in match:
        return set()
    phrases: set[Phrase] = set()
    for keyword, line in scope.strings(match, mode, f"match {mode}"):
        phrase = tuple(normalize(keyword).split())
        if phrase:
            phrases.add(phrase)
        else:
            scope.at(line).error(
                f"match {mode} keyword {keyword!r} is empty once punctuation and symbols are removed"
            )
    return phrases


def _matcher(scope: Scope, rule: Mapping[Any, Any]) -> Matcher | None:
    match = rule.get("match")
    if match is None:
        scope.error("match is required (use `match: {any: true}` to match every message)", rule)
        return None
    if not isinstance(match, Mapping):
        scope.error(f"match must be a mapping, not {describe_type(match)}", rule, "match")
        return None
    scope = scope.at(line_of(match))
    scope.check_keys(match, MATCH_KEYS, "match")
    modes = {mode: _phrases(scope, match, mode) for mode in _KEYWORD_MODES}
    match_any = scope.boolean(match, "any", False)
    patterns: list[str] = []
    compiled: list[Any] = []
    if "regex" in match:
        for pattern, line in scope.strings(match, "regex", "match regex"):
            try:
                compiled.append(compile_regex(pattern))
                patterns.append(pattern)
            except ValueError as error:
                scope.at(line).error(f"invalid regex {pattern!r}: {error}")
    given = [key for key in MATCH_KEYS if key in match and match[key] is not False]
    if not given and not set(match) - set(MATCH_KEYS):
        scope.error(f"match has no conditions; give at least one of {', '.join(MATCH_KEYS)}", rule, "match")
        return None
    return Matcher(
        exact=frozenset(" ".join(phrase) for phrase in modes["exact"]),
        starts_with=frozenset(modes["starts_with"]),
        contains=frozenset(modes["contains"]),
        not_contains=frozenset(modes["not_contains"]),
        any=match_any,
        regex=tuple(compiled),
        patterns=tuple(patterns),
    )
