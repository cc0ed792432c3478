"""``rules`` commands: check the configured rules, and try messages against them without side effects.

Mounted by the main command line as ``optout rules check`` and ``optout rules test``. The configuration
is ``--config``, else ``$OPTOUT_CONFIG``, else ``config.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

import click

from gateway.errors import ConfigError
from gateway.messages import Channel, InboundMessage
from rules.configfile import compile_config
from rules.engine import Firing, RuleSet, action_to_dict, explain
from rules.errors import RuleSetError

__all__ = ["rules_cli"]

_CHANNELS = [channel.value for channel in Channel]

config_option = click.option(
    "--config",
    "config_path",
    envvar="OPTOUT_CONFIG",
    default="config.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Configuration file (default: $OPTOUT_CONFIG, else config.yaml).",
)


@click.group(name="rules")
def rules_cli() -> None:
    """Check the inbound-message rules and try messages against them."""


def _load(config_path: str) -> RuleSet:
    """Compile the configured rules, or print every problem and exit with status 1."""
    try:
        return compile_config(config_path)
    except RuleSetError as error:
        for problem in error.problems:
            click.echo(problem, err=True)
    except ConfigError as error:
        click.echo(str(error), err=True)
    raise click.exceptions.Exit(1)


@rules_cli.command("check")
@config_option
def check_rules(config_path: str) -> None:
    """Validate the rules: print "ok: N rules", or one problem per line and exit 1."""
    ruleset = _load(config_path)
    disabled = sum(1 for rule in ruleset if not rule.enabled)
    suffix = f" ({disabled} disabled)" if disabled else ""
    click.echo(f"ok: {len(ruleset)} rules{suffix}")


def _format_firings(firings: list[Firing]) -> str:
    if not firings:
        return "no rule matched"
    parts = []
    for firing in firings:
        actions = []
        for action in firing.actions:
            options = {
                key: value for key, value in action_to_dict(action).items() if key not in ("type", "rule")
            }
            shown = ", ".join(
                f"{key}={json.dumps(value, ensure_ascii=False)}"
                for key, value in options.items()
                if value is not None
            )
            actions.append(f"{action.type}({shown})")
        parts.append(f"{firing.rule}: {', '.join(actions)}")
    return "; ".join(parts)


def _messages(texts: Iterable[str], messages_file: IO[str] | None) -> Iterable[str]:
    if messages_file is None:
        return texts
    # One message per line; blank lines are layout, not messages.
    return (line.rstrip("\r\n") for line in messages_file if line.strip())


@rules_cli.command("test")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@click.option("--from", "sender", default="", help="The sender's number or address.")
@click.option(
    "--to", "recipient", default="", help="Our number or address the message was sent to (for `senders`)."
)
@click.option("--channel", type=click.Choice(_CHANNELS), default="sms", show_default=True)
@click.option(
    "--file",
    "messages_file",
    type=click.File("r", encoding="utf-8"),
    help="Read messages from this file, one per line ('-' for standard input).",
)
@click.argument("texts", nargs=-1)
def try_rules(
    config_path: str,
    as_json: bool,
    sender: str,
    recipient: str,
    channel: str,
    messages_file: IO[str] | None,
    texts: tuple[str, ...],
) -> None:
    """Show which rule fires for each message TEXT and what it would do. Nothing is sent or stored."""
    if bool(texts) == (messages_file is not None):
        raise click.UsageError("give the messages as TEXT arguments or with --file (one of the two)")
    ruleset = _load(config_path)
    for text in _messages(texts, messages_file):
        message = InboundMessage(
            provider="cli",
            provider_message_id="",
            sender=sender,
            recipient=recipient,
            text=text,
            channel=Channel(channel),
        )
        firings = explain(ruleset, message)
        if as_json:
            record = {
                "text": text,
                "rule": firings[0].rule if firings else None,
                "rules": [firing.rule for firing in firings],
                "actions": [action_to_dict(action) for firing in firings for action in firing.actions],
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{text!r} -> {_format_firings(firings)}")
