"""Shared helpers for the rule engine tests."""

from __future__ import annotations

import textwrap
from collections.abc import Collection

from gateway.messages import Channel, InboundMessage
from rules import RuleSet, compile_rules, load_default_rules, load_yaml

TEMPLATES = frozenset({"opt_out", "opt_in", "help"})
OUR_NUMBER = "+14155550199"


def message(text: str, *, channel: Channel = Channel.SMS, to: str = OUR_NUMBER) -> InboundMessage:
    """An inbound message from a fixed person to ``to``."""
    return InboundMessage(
        provider="test",
        provider_message_id="m-1",
        sender="+14155550100",
        recipient=to,
        text=text,
        channel=channel,
    )


def compile_yaml(
    text: str,
    *,
    allow_no_opt_out: bool = True,
    templates: Collection[str] | None = None,
) -> RuleSet:
    """Compile rules written as YAML (dedented), from a file called rules.yaml."""
    raw = load_yaml(textwrap.dedent(text), "rules.yaml")
    return compile_rules(raw, filename="rules.yaml", allow_no_opt_out=allow_no_opt_out, templates=templates)


def default_ruleset() -> RuleSet:
    """The shipped default rules, compiled with the templates they use."""
    return compile_rules(load_default_rules(), filename="default_rules.yaml", templates=TEMPLATES)
