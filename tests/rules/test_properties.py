"""Property tests: normalisation laws, no crashes, and the index agreeing with a naive evaluator."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.messages import Channel
from rules import RuleSet, compile_rules, evaluate, explain, normalize
from tests.rules.helpers import default_ruleset, message

DEFAULTS = default_ruleset()
EXTRA = compile_rules(
    [
        {"name": "re", "match": {"regex": [r"^\d+$", r"(a+)+$"]}, "actions": ["stop"]},
        {"name": "nc", "match": {"not_contains": ["please"]}, "continue": True, "actions": ["opt_in"]},
        {"name": "c", "match": {"contains": ["wrong number"]}, "actions": ["opt_out"]},
    ],
)


@given(st.text())
def test_normalize_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text())
def test_normalized_text_is_trimmed_single_spaced_and_utf8(text: str) -> None:
    once = normalize(text)
    assert once == once.strip()
    assert "  " not in once
    assert not any(char.isspace() and char != " " for char in once)
    once.encode("utf-8")


@given(st.text(), st.sampled_from(list(Channel)), st.text(max_size=20))
def test_evaluate_never_raises(text: str, channel: Channel, to: str) -> None:
    for ruleset in (DEFAULTS, EXTRA):
        actions = evaluate(ruleset, message(text, channel=channel, to=to))
        assert all(action.rule for action in actions)


# --- the index against a naive, rule-by-rule reading of the rules -----------------------------------

WORDS = ["stop", "all", "opt", "out", "please", "me", "x"]
SEPARATORS = [" ", "  ", "-", ". ", "!", " 🛑 ", "\u200b "]
PATTERNS = [r"^\d+$", r"\bme$", r"opt\s+out"]
NUMBERS = ["+14155550100", "+14155550199"]


@st.composite
def phrases(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
    return " ".join(word.upper() if draw(st.booleans()) else word for word in chosen)


@st.composite
def texts(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from([*WORDS, "12", "stopped"]), max_size=6))
    out = draw(st.sampled_from(["", " ", "¡"]))
    for word in chosen:
        out += (word.upper() if draw(st.booleans()) else word) + draw(st.sampled_from(SEPARATORS))
    return out


@st.composite
def raw_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    rules = []
    for number in range(draw(st.integers(min_value=1, max_value=8))):
        match: dict[str, Any] = {}
        for mode in draw(
            st.lists(
                st.sampled_from(["exact", "starts_with", "contains", "not_contains", "any", "regex"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        ):
            if mode == "any":
                match[mode] = True
            elif mode == "regex":
                match[mode] = draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2))
            else:
                match[mode] = draw(st.lists(phrases(), min_size=1, max_size=3))
        rule: dict[str, Any] = {
            "name": f"r{number}",
            "match": match,
            "actions": [{"add_to_list": {"list": "L"}}],
        }
        if draw(st.booleans()):
            rule["continue"] = True
        if draw(st.integers(0, 4)) == 0:
            rule["actions"].append("stop")
        if draw(st.integers(0, 4)) == 0:
            rule["enabled"] = False
        if draw(st.integers(0, 3)) == 0:
            rule["channel"] = draw(st.sampled_from(["sms", "email"]))
        if draw(st.integers(0, 3)) == 0:
            rule["senders"] = [draw(st.sampled_from(NUMBERS))]
        rules.append(rule)
    return rules


def naive_fired(raw: list[dict[str, Any]], text: str, channel: str, to: str) -> list[str]:
    """What the rules say, read literally, one rule at a time (no index, no shared code but normalize)."""
    norm = normalize(text)
    padded = f" {norm} "
    fired = []
    for rule in raw:
        if not rule.get("enabled", True) or rule.get("channel", channel) != channel:
            continue
        if "senders" in rule and to not in rule["senders"]:
            continue
        match = rule["match"]
        keys = {
            mode: [normalize(k) for k in match.get(mode, [])] for mode in ("exact", "starts_with", "contains")
        }
        avoid = [normalize(k) for k in match.get("not_contains", [])]
        hit = (
            norm in keys["exact"]
            or any(f"{norm} ".startswith(f"{k} ") for k in keys["starts_with"])
            or any(f" {k} " in padded for k in keys["contains"])
            or ("not_contains" in match and not any(f" {k} " in padded for k in avoid))
            or match.get("any", False)
            or any(re.search(p, norm, re.IGNORECASE | re.ASCII) for p in match.get("regex", []))
        )
        if hit:
            fired.append(rule["name"])
            if "stop" in rule["actions"] or not rule.get("continue", False):
                break
    return fired


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw_rules(),
    st.lists(texts(), min_size=1, max_size=5),
    st.sampled_from(["sms", "email"]),
    st.sampled_from(NUMBERS),
)
def test_index_agrees_with_naive_evaluation(
    raw: list[dict[str, Any]], messages: list[str], channel: str, to: str
) -> None:
    ruleset: RuleSet = compile_rules(raw, allow_no_opt_out=True)
    for text in messages:
        got = [firing.rule for firing in explain(ruleset, message(text, channel=Channel(channel), to=to))]
        assert got == naive_fired(raw, text, channel, to), text
