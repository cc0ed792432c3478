"""Every way a rule set can fail to compile, and what the error says."""

from __future__ import annotations

import re

import pytest

from gateway.errors import ConfigError, RuleError
from rules import RuleSetError, compile_rules
from tests.rules.helpers import compile_yaml


def problems(rules_yaml: str, **kwargs: object) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        compile_yaml(rules_yaml, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


@pytest.mark.parametrize(
    ("rules_yaml", "expected"),
    [
        (
            "- name: a\n  match: {exact: [X]}\n  actions: [stop]\n  continu: true\n",
            "rules.yaml:4: rule 'a': unknown key 'continu' in rule; did you mean 'continue'?",
        ),
        (
            "- name: a\n  match: {exakt: [X]}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': unknown key 'exakt' in match; did you mean 'exact'?",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions:\n    - reply: {template: help, txt: y}\n",
            "rules.yaml:4: rule 'a': unknown key 'txt' in reply; did you mean 'text'?",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions:\n    - opt-out\n",
            "rules.yaml:4: rule 'a': unknown action 'opt-out'; did you mean 'opt_out'?",
        ),
        (
            "- name: a\n  match:\n    regex: [ok, '(a)\\1']\n  actions: [stop]\n",
            "rules.yaml:3: rule 'a': invalid regex '(a)\\\\1': invalid escape sequence: \\1",
        ),
        (
            "- name: a\n  match:\n    regex:\n      - ok\n      - '(?=look)ahead'\n  actions: [stop]\n",
            "rules.yaml:5: rule 'a': invalid regex '(?=look)ahead': invalid perl operator: (?=",
        ),
        (
            "- match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:1: rule #1: name is required",
        ),
        (
            "- name: ''\n  match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:1: rule #1: name must be a non-empty string, not the string ''",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [stop]\n- name: a\n  match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:4: rule 'a': duplicate rule name 'a' (first used on line 1)",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{reply: {template: opt_outt}}]\n",
            "rules.yaml:3: rule 'a': reply template 'opt_outt' is not defined under templates "
            "(defined: help, opt_in, opt_out)",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{reply: {template: x, text: y}}]\n",
            "rules.yaml:3: rule 'a': reply needs exactly one of template or text",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{forward: {url: 'ftp://example.com/x'}}]\n",
            "rules.yaml:3: rule 'a': forward url must be an http(s) URL with a host, not 'ftp://example.com/x'",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{forward: {url: 'https://'}}]\n",
            "rules.yaml:3: rule 'a': forward url must be an http(s) URL with a host, not 'https://'",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{move_contact: {from: A}}]\n",
            "rules.yaml:3: rule 'a': move_contact to is required",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{add_to_list: VIP}]\n",
            "rules.yaml:3: rule 'a': add_to_list takes a mapping of options, not the string 'VIP'",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [stop, opt_out]\n",
            "rules.yaml:3: rule 'a': stop must be the last action",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: []\n",
            "rules.yaml:3: rule 'a': actions must be a non-empty list, not an empty list",
        ),
        (
            "- name: a\n  match: {any: true}\n",
            "rules.yaml:1: rule 'a': actions is required (a list such as [opt_out, {reply: {template: opt_out}}])",
        ),
        (
            "- name: a\n  actions: [stop]\n",
            "rules.yaml:1: rule 'a': match is required (use `match: {any: true}` to match every message)",
        ),
        (
            "- name: a\n  match: {}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': match has no conditions; give at least one of exact, starts_with, "
            "contains, not_contains, any, regex",
        ),
        (
            "- name: a\n  match: {exact: []}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': match exact must be a string or a non-empty list of strings, not an empty list",
        ),
        (
            "- name: a\n  match: {exact: ['!!!']}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': match exact keyword '!!!' is empty once punctuation and symbols are removed",
        ),
        (
            "- name: a\n  match: {exact: [1]}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': match exact entries must be strings, not the number 1 (quote it)",
        ),
        (
            "- name: a\n  channel: fax\n  match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': channel must be one of sms, email, not the string 'fax'",
        ),
        (
            "- name: a\n  senders: [+14155550100]\n  match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': senders entries must be strings, not the number 14155550100 (quote it)",
        ),
        (
            "- name: a\n  enabled: yes\n  match: {any: true}\n  actions: [stop]\n",
            "rules.yaml:2: rule 'a': enabled must be true or false, not the string 'yes'",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{opt_out: {all_scopes: true, all_scopes_if: [X]}}]\n",
            "rules.yaml:3: rule 'a': opt_out: all_scopes: true already covers every message; drop all_scopes_if",
        ),
        (
            "- name: a\n  match: {any: true}\n  actions: [{a: 1, b: 2}]\n",
            "rules.yaml:3: rule 'a': each action is an action name or a one-key mapping such as "
            "{reply: {template: opt_out}}, not a mapping",
        ),
        (
            "- 42\n",
            "rules.yaml:1: rule #1: a rule must be a mapping, not the number 42",
        ),
    ],
)
def test_load_error(rules_yaml: str, expected: str) -> None:
    assert problems(rules_yaml, templates={"opt_out", "opt_in", "help"}) == [expected]


def test_problems_are_collected_across_rules_in_file_order() -> None:
    # The YAML starts with an empty line, so "- name: first" is line 2.
    found = problems(
        """
        - name: first
          channel: fax
          match: {exakt: [X]}
          actions: [stop]
        - name: fine
          match: {any: true}
          actions: [stop]
        - name: third
          match: {regex: ['(']}
          actions: [{reply: {}}]
        """
    )
    assert found == [
        "rules.yaml:3: rule 'first': channel must be one of sms, email, not the string 'fax'",
        "rules.yaml:4: rule 'first': unknown key 'exakt' in match; did you mean 'exact'?",
        "rules.yaml:10: rule 'third': invalid regex '(': missing ): (",
        "rules.yaml:11: rule 'third': reply needs exactly one of template or text",
    ]


def test_error_string_lists_every_problem_one_per_line() -> None:
    with pytest.raises(RuleSetError) as caught:
        compile_yaml("- name: a\n  match: {}\n  actions: []\n")
    error = caught.value
    assert str(error).splitlines() == error.problems
    assert len(error.problems) == 2
    assert isinstance(error, RuleError) and isinstance(error, ConfigError)
    assert error.to_dict()["problems"] == error.problems


@pytest.mark.parametrize("raw", ["STOP", {"name": "a"}, 42])
def test_rules_must_be_a_list(raw: object) -> None:
    with pytest.raises(RuleSetError, match="rules must be a list of rules"):
        compile_rules(raw)  # type: ignore[arg-type]


def test_rules_built_in_code_have_no_line_numbers() -> None:
    with pytest.raises(RuleSetError) as caught:
        compile_rules([{"name": "a", "match": {"any": True}}], filename="code", allow_no_opt_out=True)
    assert caught.value.problems == [
        "code: rule 'a': actions is required (a list such as [opt_out, {reply: {template: opt_out}}])"
    ]


def test_templates_are_not_checked_when_not_given() -> None:
    ruleset = compile_yaml("- name: a\n  match: {any: true}\n  actions: [{reply: {template: anything}}]\n")
    assert len(ruleset) == 1


FLOOR = "no enabled rule for sms (or any channel) has an opt_out action"
FLOOR_PATTERN = re.escape(FLOOR)


@pytest.mark.parametrize(
    "rules_yaml",
    [
        "[]",
        "- name: help\n  match: {exact: [HELP]}\n  actions: [{reply: {text: hi}}]\n",
        "- name: off\n  enabled: false\n  match: {exact: [STOP]}\n  actions: [opt_out]\n",
        "- name: mail\n  channel: email\n  match: {exact: [STOP]}\n  actions: [opt_out]\n",
    ],
)
def test_compliance_floor_requires_an_sms_opt_out(rules_yaml: str) -> None:
    found = problems(rules_yaml, allow_no_opt_out=False)
    assert len(found) == 1 and FLOOR in found[0]
    assert found[0].startswith("rules.yaml")
    # The explicit override accepts the same rules.
    compile_yaml(rules_yaml, allow_no_opt_out=True)


@pytest.mark.parametrize("channel", ["", "  channel: sms\n"])
def test_compliance_floor_is_met_by_an_sms_or_any_channel_opt_out(channel: str) -> None:
    rules_yaml = f"- name: out\n{channel}  match: {{exact: [STOP]}}\n  actions: [opt_out]\n"
    assert len(compile_yaml(rules_yaml, allow_no_opt_out=False)) == 1


def test_compliance_floor_applies_to_none() -> None:
    with pytest.raises(RuleSetError, match=FLOOR_PATTERN):
        compile_rules(None)
    assert len(compile_rules(None, allow_no_opt_out=True)) == 0
