"""``optout safeguard list|confirm|dismiss``: campaigns paused by the mass opt-out safeguard.

Mounted on `gateway.cli.main` by `register`.
"""

from __future__ import annotations

import getpass

import click

from gateway import safeguard
from gateway.models import CampaignHold
from gateway.runtime import Gateway


def _gw(ctx: click.Context) -> Gateway:
    from gateway.cli import _gateway

    gw: Gateway = _gateway(ctx)
    return gw


def _actor() -> str:
    # Who decided, for the ledger: the login name, never a path or host.
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _line(hold: CampaignHold, held: int) -> str:
    decided = f" by {hold.resolved_by}: {hold.reason or '-'}" if hold.status != "open" else ""
    return (
        f"hold {hold.id}: campaign {hold.campaign_id} {hold.status}{decided} "
        f"({hold.opt_outs} of {hold.sends} sends came back opted out; {held} opt-outs held)"
    )


@click.group("safeguard")
def safeguard_cli() -> None:
    """Campaigns paused because too many sends came back with a provider opt-out code."""


@safeguard_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="decided holds too, not only open ones")
@click.pass_context
def list_holds(ctx: click.Context, show_all: bool) -> None:
    """Show holds, newest first."""
    gw = _gw(ctx)
    with gw.db.read() as session:
        for hold in safeguard.list_holds(session, None if show_all else "open"):
            assert hold.id is not None
            click.echo(_line(hold, safeguard.held_count(session, hold.id)))


@safeguard_cli.command("confirm")
@click.argument("hold_id", type=int)
@click.option("--reason", default=None, help="why, for the ledger")
@click.pass_context
def confirm(ctx: click.Context, hold_id: int, reason: str | None) -> None:
    """The held opt-outs were real: apply them all, resume the campaign."""
    hold = safeguard.confirm(_gw(ctx), hold_id, _actor(), reason)
    click.echo(_line(hold, 0))


@safeguard_cli.command("dismiss")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True, help="why the provider's codes are wrong (ledgered)")
@click.pass_context
def dismiss(ctx: click.Context, hold_id: int, reason: str) -> None:
    """The provider was wrong: discard the held opt-outs, resume the campaign."""
    hold = safeguard.dismiss(_gw(ctx), hold_id, _actor(), reason)
    click.echo(_line(hold, 0))


def register(main: click.Group) -> None:
    """Add the ``safeguard`` group to the ``optout`` command."""
    main.add_command(safeguard_cli)
