"""Match modes, filters, ordering and action building."""

from __future__ import annotations

import pytest

from gateway.messages import Channel
from rules import (
    AddToList,
    Forward,
    MoveContact,
    OptIn,
    OptOut,
    RemoveFromList,
    Reply,
    Stop,
    action_to_dict,
    evaluate,
    explain,
)
from tests.rules.helpers import OUR_NUMBER, compile_yaml, message


def fired(rules_yaml: str, text: str, **kwargs: object) -> list[str]:
    ruleset = compile_yaml(rules_yaml)
    return [firing.rule for firing in explain(ruleset, message(text, **kwargs))]  # type: ignore[arg-type]


MODES = """
- name: exact
  match: {exact: [GOOD BYE]}
  actions: [stop]
- name: starts
  match: {starts_with: [REMOVE ME]}
  actions: [stop]
- name: contains
  match: {contains: [wrong number]}
  actions: [stop]
- name: regex
  match: {regex: ['^\\d{5}$', 'order #?\\d+']}
  actions: [stop]
- name: not-contains
  match: {not_contains: [please, thanks]}
  actions: [stop]
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Good-bye!", "exact"),
        ("good bye now", "not-contains"),  # not exact, so only the catch-all not_contains fires
        ("Remove me", "starts"),
        ("remove me from this list", "starts"),
        ("please remove me", None),  # does not start with REMOVE ME, and says please
        ("please, wrong number", "contains"),
        ("Sorry, WRONG NUMBER.", "contains"),
        ("wrong numbers please", None),  # "numbers" is not "number"; has "please"
        ("12345", "regex"),
        ("123456 thanks", None),
        ("ORDER 42 thanks", "regex"),  # regexes are case-insensitive on normalised text
        ("hello", "not-contains"),
        ("thanks a lot", None),
        ("say please", None),
    ],
)
def test_each_match_mode(text: str, rule: str | None) -> None:
    assert fired(MODES, text) == ([rule] if rule else [])


def test_any_matches_everything_including_empty_text() -> None:
    rules = "- name: all\n  match: {any: true}\n  actions: [stop]\n"
    assert fired(rules, "") == ["all"]
    assert fired(rules, "🛑🛑") == ["all"]
    assert fired(rules, "anything at all") == ["all"]


def test_modes_are_ored_within_a_rule() -> None:
    rules = """
    - name: either
      match: {exact: [ONE], contains: [two], regex: ['^three']}
      actions: [stop]
    """
    for text in ("one", "x two y", "three four"):
        assert fired(rules, text) == ["either"]
    assert fired(rules, "four") == []


def test_first_match_wins() -> None:
    rules = """
    - name: first
      match: {contains: [stop]}
      actions: [{add_to_list: {list: A}}]
    - name: second
      match: {exact: [STOP]}
      actions: [{add_to_list: {list: B}}]
    """
    assert fired(rules, "STOP") == ["first"]


def test_continue_keeps_evaluating_until_a_rule_without_it() -> None:
    rules = """
    - name: tag
      continue: true
      match: {any: true}
      actions: [{add_to_list: {list: Seen}}]
    - name: forward
      continue: true
      match: {contains: [refund]}
      actions: [{forward: {url: 'https://example.com/hook'}}]
    - name: opt-out
      match: {starts_with: [STOP]}
      actions: [opt_out]
    - name: never
      match: {any: true}
      actions: [{add_to_list: {list: Never}}]
    """
    ruleset = compile_yaml(rules)
    assert evaluate(ruleset, message("STOP refund")) == [
        AddToList(rule="tag", list="Seen"),
        Forward(rule="forward", url="https://example.com/hook"),
        OptOut(rule="opt-out"),
    ]
    assert evaluate(ruleset, message("hello")) == [
        AddToList(rule="tag", list="Seen"),
        AddToList(rule="never", list="Never"),
    ]


def test_stop_action_halts_even_after_continue() -> None:
    rules = """
    - name: quiet
      continue: true
      match: {contains: [test]}
      actions: [{add_to_list: {list: Testers}}, stop]
    - name: everything
      match: {any: true}
      actions: [{reply: {text: hi}}]
    """
    ruleset = compile_yaml(rules)
    assert evaluate(ruleset, message("a test")) == [
        AddToList(rule="quiet", list="Testers"),
        Stop(rule="quiet"),
    ]
    assert evaluate(ruleset, message("hello")) == [Reply(rule="everything", text="hi")]


def test_disabled_rules_never_fire() -> None:
    rules = """
    - name: off
      enabled: false
      match: {exact: [STOP]}
      actions: [{reply: {text: off}}]
    - name: on
      match: {exact: [STOP]}
      actions: [opt_out]
    """
    assert fired(rules, "STOP") == ["on"]


def test_channel_filter() -> None:
    rules = """
    - name: email-only
      channel: email
      match: {exact: [STOP]}
      actions: [{reply: {text: email}}]
    - name: sms-only
      channel: sms
      match: {exact: [STOP]}
      actions: [opt_out]
    """
    assert fired(rules, "STOP", channel=Channel.EMAIL) == ["email-only"]
    assert fired(rules, "STOP", channel=Channel.SMS) == ["sms-only"]


@pytest.mark.parametrize(
    ("senders", "to", "fires"),
    [
        ('["+1 415 555 0199"]', "+14155550199", True),
        ('["14155550199"]', "+14155550199", True),
        ('["+14155550199"]', "14155550199", True),
        ('["+1 (415) 555-0199"]', "+1 415 555 0199", True),
        ('["+14155550100"]', "+14155550199", False),
        ('["*"]', "+19999999999", True),
        ('"*"', "+19999999999", True),
        ('["News@Example.com"]', "news@example.com", True),
        ('["+14155550100", "*"]', "+19999999999", True),
    ],
)
def test_senders_filter(senders: str, to: str, fires: bool) -> None:
    rules = f"""
    - name: ours
      senders: {senders}
      match: {{any: true}}
      actions: [stop]
    """
    assert fired(rules, "hi", to=to) == (["ours"] if fires else [])


def test_sender_filter_applies_to_keyword_hits_too() -> None:
    rules = """
    - name: shop
      senders: ['+14155550100']
      match: {exact: [STOP]}
      actions: [{reply: {text: shop}}]
    - name: generic
      match: {exact: [STOP]}
      actions: [opt_out]
    """
    assert fired(rules, "STOP", to="+14155550100") == ["shop"]
    assert fired(rules, "STOP", to=OUR_NUMBER) == ["generic"]


def test_rule_order_is_kept_between_indexed_and_scanned_rules() -> None:
    rules = """
    - name: r1
      match: {regex: [xyz]}
      actions: [stop]
    - name: r2
      match: {exact: [HELLO]}
      actions: [stop]
    - name: r3
      match: {any: true}
      actions: [stop]
    """
    assert fired(rules, "hello") == ["r2"]
    assert fired(rules, "xyz") == ["r1"]
    assert fired(rules, "other") == ["r3"]


def test_every_action_type_is_built() -> None:
    rules = """
    - name: all
      match: {any: true}
      actions:
        - opt_out: {all_scopes: true}
        - opt_in
        - reply: {template: opt_out}
        - reply: {text: Bye}
        - move_contact: {from: Customers, to: Opted out}
        - move_contact: {to: Opted out}
        - add_to_list: {list: VIP}
        - remove_from_list: {list: VIP}
        - forward: {url: 'http://example.com/x'}
        - stop:
    """
    assert evaluate(compile_yaml(rules), message("x")) == [
        OptOut(rule="all", all_scopes=True),
        OptIn(rule="all", all_scopes=False),
        Reply(rule="all", template="opt_out"),
        Reply(rule="all", text="Bye"),
        MoveContact(rule="all", to_list="Opted out", from_list="Customers"),
        MoveContact(rule="all", to_list="Opted out", from_list=None),
        AddToList(rule="all", list="VIP"),
        RemoveFromList(rule="all", list="VIP"),
        Forward(rule="all", url="http://example.com/x"),
        Stop(rule="all"),
    ]


def test_opt_in_all_scopes_if() -> None:
    rules = """
    - name: in
      match: {starts_with: [START]}
      actions: [{opt_in: {all_scopes_if: [START ALL]}}]
    """
    ruleset = compile_yaml(rules)
    assert evaluate(ruleset, message("start all")) == [OptIn(rule="in", all_scopes=True)]
    assert evaluate(ruleset, message("start")) == [OptIn(rule="in", all_scopes=False)]


def test_action_to_dict() -> None:
    assert action_to_dict(OptOut(rule="r", all_scopes=True)) == {
        "type": "opt_out",
        "rule": "r",
        "all_scopes": True,
    }
    assert action_to_dict(MoveContact(rule="r", to_list="B", from_list="A")) == {
        "type": "move_contact",
        "rule": "r",
        "to_list": "B",
        "from_list": "A",
    }


def test_catastrophic_regex_runs_in_linear_time() -> None:
    # (a+)+$ backtracks exponentially in a backtracking engine on "aaa…a x"; this input would never
    # finish there. With the linear-time engine it returns at once, and does not match.
    rules = """
    - name: evil
      match: {regex: ['(a+)+$']}
      actions: [stop]
    """
    ruleset = compile_yaml(rules)
    assert explain(ruleset, message("a" * 100_000 + " x")) == []
    assert [f.rule for f in explain(ruleset, message("x " + "a" * 100_000))] == ["evil"]


def test_many_keyword_rules_are_all_reachable() -> None:
    lines = [f"- name: kw{i}\n  match: {{exact: [KEYWORD{i}]}}\n  actions: [stop]\n" for i in range(2000)]
    ruleset = compile_yaml("".join(lines))
    for i in (0, 777, 1999):
        assert [f.rule for f in explain(ruleset, message(f"keyword{i}"))] == [f"kw{i}"]
    assert explain(ruleset, message("keyword2000")) == []


def test_ruleset_is_reusable_and_rules_keep_lines() -> None:
    ruleset = compile_yaml(MODES)
    assert len(ruleset) == 5
    assert ruleset.get("regex") is not None
    assert ruleset.get("missing") is None
    assert [rule.line for rule in ruleset] == [2, 5, 8, 11, 14]
    assert evaluate(ruleset, message("12345")) == evaluate(ruleset, message("12345"))
