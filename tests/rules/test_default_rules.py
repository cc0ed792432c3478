"""The shipped default rules against a table of real-world texts."""

from __future__ import annotations

import pytest

from rules import OptIn, OptOut, Reply, RuleSet, evaluate, explain
from tests.rules.helpers import message

OPT_OUT = "opt-out"
OPT_IN = "opt-in"
HELP = "help"
NONE = None

CASES: list[tuple[str, str | None]] = [
    # Plain keywords, with the noise people add.
    ("STOP", OPT_OUT),
    ("Stop.", OPT_OUT),
    ("  STOP ", OPT_OUT),
    ("stop!!", OPT_OUT),
    ("STOP 🛑", OPT_OUT),
    ("ＳＴＯＰ", OPT_OUT),
    ("S\u200bTOP", OPT_OUT),
    ("ARRÊT", OPT_OUT),
    ("arrête", OPT_OUT),
    ("unsubscribe", OPT_OUT),
    ("Unsub", OPT_OUT),
    ("cancel", OPT_OUT),
    ("END.", OPT_OUT),
    ("Quit", OPT_OUT),
    ("revoke", OPT_OUT),
    ("optout", OPT_OUT),
    ("OPT OUT", OPT_OUT),
    ("opt-out", OPT_OUT),
    ("Opt-Out!", OPT_OUT),
    ("remove", OPT_OUT),
    ("TD", OPT_OUT),
    ("parar", OPT_OUT),
    ("Alto", OPT_OUT),
    ("baja", OPT_OUT),
    ("detener", OPT_OUT),
    ("stopp", OPT_OUT),
    ("STOP ALL", OPT_OUT),
    ("stopall", OPT_OUT),
    # Starts with a keyword, as whole words.
    ("Stop please", OPT_OUT),
    ("STOP. Thanks", OPT_OUT),
    ("STOP.Thanks", OPT_OUT),
    ("unsubscribe me", OPT_OUT),
    ("Opt out of these", OPT_OUT),
    ("revoke consent", OPT_OUT),
    # Deliberate: a number after STOP is still a STOP (people add codes and names).
    ("STOP 12345", OPT_OUT),
    # Not opt-outs.
    ("stopped", NONE),
    ("unstoppable", NONE),
    ("bus stop", NONE),
    ("don't stop", NONE),
    ("Please stop", NONE),  # no default rule looks past the first word
    ("cancel my order", NONE),  # CANCEL counts only alone
    ("the end", NONE),
    ("ending", NONE),
    ("stop-gap measures", OPT_OUT),  # a hyphen splits words, so this starts with STOP
    ("Stoppage", NONE),
    ("", NONE),
    ("🛑", NONE),
    ("hello", NONE),
    # Opt-in and help.
    ("start", OPT_IN),
    ("START!", OPT_IN),
    ("yes", OPT_IN),
    ("Yes.", OPT_IN),
    ("unstop", OPT_IN),
    ("resume", OPT_IN),
    ("start now", NONE),
    ("yesterday", NONE),
    ("help", HELP),
    ("HELP?", HELP),
    ("info", HELP),
    ("aide", HELP),
    ("Ayuda", HELP),
    ("information", NONE),
    ("help me stop", NONE),
]


@pytest.mark.parametrize(("text", "rule"), CASES, ids=[repr(text) for text, _ in CASES])
def test_default_rules_table(defaults: RuleSet, text: str, rule: str | None) -> None:
    fired = [firing.rule for firing in explain(defaults, message(text))]
    assert fired == ([rule] if rule else [])


def test_default_rule_names(defaults: RuleSet) -> None:
    assert [rule.name for rule in defaults] == ["opt-out", "opt-in", "help"]


@pytest.mark.parametrize(
    ("text", "all_scopes"),
    [
        ("STOP", False),
        ("stop please", False),
        ("STOPALL", True),
        ("stop all", True),
        ("STOP ALL!", True),
        ("StopAll now", True),
        ("stop all of it", True),
        ("stop allergies", False),  # "all" must be a whole word
        ("unsubscribe all", False),
    ],
)
def test_stopall_opts_out_of_every_scope(defaults: RuleSet, text: str, all_scopes: bool) -> None:
    actions = evaluate(defaults, message(text))
    assert actions == [
        OptOut(rule="opt-out", all_scopes=all_scopes),
        Reply(rule="opt-out", template="opt_out"),
    ]


def test_opt_in_actions(defaults: RuleSet) -> None:
    assert evaluate(defaults, message("START")) == [
        OptIn(rule="opt-in", all_scopes=False),
        Reply(rule="opt-in", template="opt_in"),
    ]


def test_help_actions(defaults: RuleSet) -> None:
    assert evaluate(defaults, message("HELP")) == [Reply(rule="help", template="help")]
