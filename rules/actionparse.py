"""Turning a rule's ``actions:`` list into `ActionSpec` objects.

Each entry is an action name (``- stop``, ``- opt_out``) or a mapping with one key, the action name,
whose value holds its options (``- reply: {template: opt_out}``). Options are checked strictly: an
unknown key is a problem, because a misspelt option would otherwise be silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from rules.actions import (
    ACTION_TYPES,
    AddToList,
    Forward,
    MoveContact,
    OptIn,
    OptOut,
    RemoveFromList,
    Reply,
    Stop,
)
from rules.engine import ActionSpec
from rules.matching import Phrase
from rules.normalize import normalize
from rules.validate import Scope, describe_type
from rules.yamlload import line_of

__all__ = ["ACTION_NAMES", "parse_actions"]

#: Action names in the order the documentation lists them.
ACTION_NAMES: tuple[str, ...] = tuple(ACTION_TYPES.values())

_Builder = Callable[[Scope, Mapping[Any, Any], str, Collection[str] | None], ActionSpec | None]


def _consent(cls: type[OptOut] | type[OptIn]) -> _Builder:
    """Builder for ``opt_out``/``opt_in``: ``all_scopes`` or ``all_scopes_if`` keywords."""

    def build(
        scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
    ) -> ActionSpec | None:
        name = ACTION_TYPES[cls]
        scope.check_keys(options, ("all_scopes", "all_scopes_if"), name)
        all_scopes = scope.boolean(options, "all_scopes", False)
        if "all_scopes_if" not in options:
            return ActionSpec(cls(rule=rule, all_scopes=all_scopes))
        if all_scopes:
            scope.error(f"{name}: all_scopes: true already covers every message; drop all_scopes_if", options)
            return None
        triggers: set[Phrase] = set()
        for keyword, line in scope.strings(options, "all_scopes_if", f"{name} all_scopes_if"):
            phrase = tuple(normalize(keyword).split())
            if phrase:
                triggers.add(phrase)
            else:
                scope.at(line).error(f"{name} all_scopes_if keyword {keyword!r} is empty once normalised")
        if not triggers:
            return None
        return ActionSpec(
            cls(rule=rule, all_scopes=False),
            widened=cls(rule=rule, all_scopes=True),
            triggers=frozenset(triggers),
        )

    return build


def _reply(
    scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
) -> ActionSpec | None:
    scope.check_keys(options, ("template", "text"), "reply")
    if ("template" in options) == ("text" in options):
        scope.error("reply needs exactly one of template or text", options)
        return None
    if "text" in options:
        text = scope.text(options, "text", required=True, what="reply text")
        return ActionSpec(Reply(rule=rule, text=text)) if text else None
    template = scope.text(options, "template", required=True, what="reply template")
    if template is None:
        return None
    if templates is not None and template not in templates:
        known = ", ".join(sorted(templates)) or "none"
        scope.error(f"reply template {template!r} is not defined under templates (defined: {known})", options)
        return None
    return ActionSpec(Reply(rule=rule, template=template))


def _move_contact(
    scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
) -> ActionSpec | None:
    scope.check_keys(options, ("from", "to"), "move_contact")
    to_list = scope.text(options, "to", required=True, what="move_contact to")
    from_list = scope.text(options, "from", required=False, what="move_contact from")
    if to_list is None or ("from" in options and from_list is None):
        return None
    return ActionSpec(MoveContact(rule=rule, to_list=to_list, from_list=from_list))


def _list_action(cls: type[AddToList] | type[RemoveFromList]) -> _Builder:
    def build(
        scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
    ) -> ActionSpec | None:
        name = ACTION_TYPES[cls]
        scope.check_keys(options, ("list",), name)
        list_name = scope.text(options, "list", required=True, what=f"{name} list")
        return ActionSpec(cls(rule=rule, list=list_name)) if list_name else None

    return build


def _forward(
    scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
) -> ActionSpec | None:
    scope.check_keys(options, ("url",), "forward")
    url = scope.text(options, "url", required=True, what="forward url")
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        valid = (
            parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)
        )
    except ValueError:  # e.g. a malformed IPv6 literal
        valid = False
    if not valid:
        scope.error(f"forward url must be an http(s) URL with a host, not {url!r}", options, "url")
        return None
    return ActionSpec(Forward(rule=rule, url=url))


def _stop(
    scope: Scope, options: Mapping[Any, Any], rule: str, templates: Collection[str] | None
) -> ActionSpec | None:
    scope.check_keys(options, (), "stop")
    return ActionSpec(Stop(rule=rule))


_BUILDERS: dict[str, _Builder] = {
    "opt_out": _consent(OptOut),
    "opt_in": _consent(OptIn),
    "reply": _reply,
    "move_contact": _move_contact,
    "add_to_list": _list_action(AddToList),
    "remove_from_list": _list_action(RemoveFromList),
    "forward": _forward,
    "stop": _stop,
}
assert set(_BUILDERS) == set(ACTION_NAMES), "every action type needs a builder"


def parse_actions(
    scope: Scope, rule_map: Mapping[Any, Any], rule: str, templates: Collection[str] | None
) -> tuple[ActionSpec, ...]:
    """Validate ``rule_map["actions"]`` and build its specs; problems go to ``scope``.

    ``templates``, when given, are the names ``reply: {template: ...}`` may use.
    """
    raw = rule_map.get("actions")
    if raw is None:
        scope.error("actions is required (a list such as [opt_out, {reply: {template: opt_out}}])", rule_map)
        return ()
    if not isinstance(raw, list) or not raw:
        shown = "an empty list" if isinstance(raw, list) else describe_type(raw)
        scope.error(f"actions must be a non-empty list, not {shown}", rule_map, "actions")
        return ()
    specs: list[ActionSpec] = []
    for position, entry in enumerate(raw):
        here = scope.at(line_of(raw, position))
        if isinstance(entry, str):
            kind, options = entry, None
        elif isinstance(entry, Mapping) and len(entry) == 1:
            ((kind, options),) = entry.items()
        else:
            here.error(
                "each action is an action name or a one-key mapping such as {reply: {template: opt_out}}, "
                f"not {describe_type(entry)}"
            )
            continue
        builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
        if builder is None:
            close = difflib.get_close_matches(str(kind), ACTION_NAMES, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(ACTION_NAMES)}"
            here.error(f"unknown action {kind!r}; {hint}")
            continue
        if kind == "stop" and position != len(raw) - 1:
            here.error("stop must be the last action")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            here.error(f"{kind} takes a mapping of options, not {describe_type(options)}")
            continue
        spec = builder(here.at(line_of(options)), options, rule, templates)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)
