"""The ``optout`` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import click

from gateway.errors import GatewayError


def _gateway(ctx: click.Context) -> Any:
    from gateway import logs
    from gateway.config import load_config
    from gateway.runtime import Gateway

    if "gateway" not in ctx.meta:
        settings = load_config(ctx.obj.get("config"))
        logs.configure(settings.log_level)
        ctx.meta["gateway"] = Gateway(settings)
    return ctx.meta["gateway"]


class _Group(click.Group):
    """Turns `GatewayError` into one clear line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GatewayError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("--config", "config", envvar="OPTOUT_CONFIG", default=None, help="config file (config.yaml)")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """optout-gateway: opt-out compliance for SMS and email."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    if config:
        os.environ["OPTOUT_CONFIG"] = config


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the database schema (idempotent)."""
    from gateway import migrate

    gw = _gateway(ctx)
    migrate.upgrade(gw.db)
    click.echo(f"database ready ({gw.db.dialect})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="web worker processes")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Run the web server (gunicorn)."""
    _gateway(ctx)  # validate the configuration before forking workers
    os.execvp(sys.executable, _gunicorn_args(host, port, workers))  # noqa: S606


def _gunicorn_args(host: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "--logger-class",
        "gateway.accesslog.AccessLogger",  # no query strings, tokens or full numbers in the access log
        "--graceful-timeout",
        "10",
        "gateway.app:wsgi_app()",
    ]


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run the outbox worker (any number may run against PostgreSQL)."""
    from gateway.worker import run_worker

    run_worker(_gateway(ctx))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.pass_context
def run(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Migrate, then run the web server and one worker together (Ctrl-C stops both)."""
    from gateway import migrate

    gw = _gateway(ctx)
    migrate.upgrade(gw.db)
    gw.db.dispose()
    click.echo(f"optout-gateway on http://{host}:{port}  (database: {gw.db.dialect}; Ctrl-C to stop)")
    base = [sys.executable, "-m", "gateway"]

    def terminate(signum: int, _frame: object) -> None:
        # A supervisor's SIGTERM stops both children, exactly like Ctrl-C does.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    procs = [
        subprocess.Popen([*base, "worker"]),  # noqa: S603
        subprocess.Popen(_gunicorn_args(host, port, workers)),  # noqa: S603
    ]
    try:
        while all(p.poll() is None for p in procs):
            try:
                procs[1].wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


@main.command()
@click.argument("address")
@click.option("--channel", type=click.Choice(["sms", "email"]), default="sms", show_default=True)
@click.option("--scope", default=None, help="scope to check (default: any)")
@click.pass_context
def status(ctx: click.Context, address: str, channel: str, scope: str | None) -> None:
    """Show whether ADDRESS is opted out, and its consent history."""
    from sqlmodel import col, select

    from gateway.addresses import normalize_address
    from gateway.models import ConsentEvent
    from gateway.storage import active_opt_out

    gw = _gateway(ctx)
    normalized = normalize_address(channel, address, gw.settings.default_region)
    with gw.db.read() as session:
        state = active_opt_out(session, channel, normalized, scope)
        events = (
            session.execute(
                select(ConsentEvent)
                .where(col(ConsentEvent.channel) == channel, col(ConsentEvent.address) == normalized)
                .order_by(col(ConsentEvent.id))
            )
            .scalars()
            .all()
        )
    if state:
        click.echo(
            f"{normalized}: OPTED OUT of {channel} (scope {state.scope}) since "
            f"{state.since:%Y-%m-%d %H:%M:%S} UTC via {state.source}"
        )
    else:
        click.echo(f"{normalized}: may receive {channel}")
    for ev in events:
        flag = "" if ev.changed else " (no change)"
        click.echo(
            f"  {ev.occurred_at:%Y-%m-%d %H:%M:%S} {ev.action} scope={ev.scope} source={ev.source} "
            f"rule={ev.rule or '-'} text={ev.raw_text!r}{flag}"
        )


@main.command()
@click.option("--to", "to", required=True)
@click.option("--body", required=True)
@click.option("--from", "sender", default=None)
@click.option("--channel", type=click.Choice(["sms", "email"]), default="sms", show_default=True)
@click.option(
    "--category",
    type=click.Choice(["marketing", "informational", "transactional"]),
    default="marketing",
    show_default=True,
)
@click.option("--bypass-reason", default=None)
@click.pass_context
def send(
    ctx: click.Context,
    to: str,
    body: str,
    sender: str | None,
    channel: str,
    category: str,
    bypass_reason: str | None,
) -> None:
    """Queue a message through the guard (exit 1 when the recipient opted out)."""
    from gateway.errors import OptedOutError
    from gateway.guard import submit

    gw = _gateway(ctx)
    try:
        with gw.db.transaction() as session:
            result = submit(
                session,
                gw,
                channel=channel,
                to=to,
                body=body,
                sender=sender,
                category=category,
                bypass_reason=bypass_reason,
            )
    except OptedOutError as exc:
        click.echo(f"refused: {json.dumps(exc.to_dict())}", err=True)
        sys.exit(1)
    click.echo(f"queued: outbox id {result.id}")


@main.command()
@click.argument("provider", type=click.Choice(["twilio", "clicksend", "console"]))
@click.argument("text", nargs=-1, required=True)
@click.option("--from", "sender", required=True, help="the person's number")
@click.option("--to", "recipient", required=True, help="our number")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="the running gateway")
@click.pass_context
def simulate(
    ctx: click.Context, provider: str, text: tuple[str, ...], sender: str, recipient: str, url: str
) -> None:
    """Post a correctly signed (or tokened) inbound webhook to a running gateway."""
    import requests

    from gateway import simulate as sim
    from gateway.config import load_config

    settings = load_config(ctx.obj.get("config"))
    target, body, headers = sim.build(
        provider, url, sender, recipient, " ".join(text), settings.providers.get(provider, {})
    )
    resp = requests.post(target, data=body, headers=headers, timeout=30)
    click.echo(f"{resp.status_code} {resp.text[:500]}")
    sys.exit(0 if resp.ok else 1)


def _mount_rules() -> None:
    from rules.cli import rules_cli

    main.add_command(rules_cli, "rules")


_mount_rules()


def _mount_lists() -> None:
    from gateway.cli_lists import register

    register(main)


_mount_lists()


@main.group()
def providers() -> None:
    """Provider commands."""


@providers.command("sync")
@click.argument("provider")
@click.option("--scope", default=None, help="put every opt-out in this scope (default: its sender's)")
@click.pass_context
def providers_sync(ctx: click.Context, provider: str, scope: str | None) -> None:
    """Import PROVIDER's own opt-out list (telnyx); running it again adds nothing.

    Twilio has no API that lists opt-outs: its opt-outs reach the gateway as they happen (OptOutType on
    inbound webhooks, error 21610 on sends and status callbacks), so `sync twilio` explains and exits 2.
    """
    from gateway.provider_sync import sync_provider

    click.echo(sync_provider(_gateway(ctx), provider, scope).summary())


def _mount_safeguard() -> None:
    from gateway.cli_safeguard import register

    register(main)


_mount_safeguard()
