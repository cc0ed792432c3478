"""``optout contacts|lists|opt-outs|ledger|campaigns``: the command-line side of contacts, lists, the
Opt-Out List, the consent ledger and campaigns. Mounted on `gateway.cli.main` by `register`.

Commands print one line per result for people; ``--json`` (where offered) prints JSON for scripts.
"""

from __future__ import annotations

import csv
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
from sqlalchemy.orm import Session

from gateway import campaigns as camp
from gateway import contacts as svc
from gateway import ledger
from gateway.importer import Reject, import_csv, parse_mapping
from gateway.models import Campaign, Contact
from gateway.runtime import Gateway


def _gw(ctx: click.Context) -> Gateway:
    from gateway.cli import _gateway

    gw: Gateway = _gateway(ctx)
    return gw


def _actor() -> str:
    # Who ran the command, for the ledger: the login name, never a path or host.
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, default=str, ensure_ascii=False))


def _contact_line(c: Contact) -> str:
    name = " ".join(x for x in (c.first_name, c.last_name) if x) or "-"
    return f"{c.id}\t{c.phone or '-'}\t{c.email or '-'}\t{name}"


class _RejectsFile:
    """Writes rejected rows to a CSV file, created only when the first reject arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None

    def __call__(self, reject: Reject) -> None:
        if self._writer is None:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["row", "column", "value", "reason"])
        self._writer.writerow([reject.row, reject.column, reject.value, reject.reason])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@contextmanager
def _progress(path: Path, show: bool, label: str) -> Iterator[Callable[[int], None] | None]:
    """A click progress bar over the file's size (None when hidden)."""
    if not show:
        yield None
        return
    with click.progressbar(length=path.stat().st_size, label=label, file=sys.stderr) as bar:
        yield bar.update


# ---- contacts -------------------------------------------------------------------------------------------


@click.group("contacts")
def contacts_cli() -> None:
    """Contacts: create, read, update, delete, import."""


@contacts_cli.command("add")
@click.option("--phone")
@click.option("--email")
@click.option("--first-name")
@click.option("--last-name")
@click.option("--field", "fields", multiple=True, help="custom field NAME=VALUE (repeatable)")
@click.option("--list", "lists", multiple=True, help="add to this list (id or name; repeatable)")
@click.pass_context
def contacts_add(
    ctx: click.Context,
    phone: str | None,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    fields: tuple[str, ...],
    lists: tuple[str, ...],
) -> None:
    """Create a contact."""
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        contact = svc.create_contact(
            session,
            gw.settings.default_region,
            phone=phone,
            email=email,
            first_name=first_name,
            last_name=last_name,
            fields=parse_mapping(fields),
            list_ids=[svc.editable_list(session, name).id or 0 for name in lists],
        )
        click.echo(f"created contact {contact.id}")


@contacts_cli.command("show")
@click.argument("contact_id", type=int)
@click.pass_context
def contacts_show(ctx: click.Context, contact_id: int) -> None:
    """Show one contact as JSON."""
    from gateway.api_lists import contact_out

    with _gw(ctx).db.read() as session:
        _echo_json(contact_out(svc.get_contact(session, contact_id), svc.lists_of(session, contact_id)))


@contacts_cli.command("update")
@click.argument("contact_id", type=int)
@click.option("--phone")
@click.option("--email")
@click.option("--first-name")
@click.option("--last-name")
@click.option("--field", "fields", multiple=True, help="custom field NAME=VALUE; NAME= removes it")
@click.pass_context
def contacts_update(
    ctx: click.Context,
    contact_id: int,
    phone: str | None,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    fields: tuple[str, ...],
) -> None:
    """Change a contact's fields (only those given)."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"phone": phone, "email": email, "first_name": first_name, "last_name": last_name}.items()
        if v is not None
    }
    if fields:
        changes["fields"] = {k: (v or None) for k, _, v in (f.partition("=") for f in fields)}
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        svc.update_contact(session, gw.settings.default_region, contact_id, changes)
    click.echo(f"updated contact {contact_id}")


@contacts_cli.command("delete")
@click.argument("contact_id", type=int)
@click.pass_context
def contacts_delete(ctx: click.Context, contact_id: int) -> None:
    """Delete a contact (its opt-outs stay)."""
    with _gw(ctx).db.transaction() as session:
        svc.delete_contact(session, contact_id)
    click.echo(f"deleted contact {contact_id}")


@contacts_cli.command("list")
@click.option("--list", "list_ref", help="only members of this list")
@click.option("--search", "-q")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def contacts_list(ctx: click.Context, list_ref: str | None, search: str | None, limit: int) -> None:
    """List contacts: id, phone, email, name."""
    with _gw(ctx).db.read() as session:
        list_pk = svc.get_list(session, list_ref).id if list_ref else None
        for contact in svc.find_contacts(session, list_id=list_pk, search=search, limit=limit):
            click.echo(_contact_line(contact))


@contacts_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_ref", required=True, help="list to import into (id or name)")
@click.option(
    "--map",
    "maps",
    multiple=True,
    help="COLUMN=FIELD (phone, email, first_name, last_name, ignore, or a custom field name); repeatable",
)
@click.option(
    "--include-opted-out", is_flag=True, help="keep people on the Opt-Out List (default: skip them)"
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where rejected rows go (default FILE.rejects.csv beside the input)",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress bar on stderr")
@click.pass_context
def contacts_import(
    ctx: click.Context,
    file: Path,
    list_ref: str,
    maps: tuple[str, ...],
    include_opted_out: bool,
    rejects_path: Path | None,
    progress: bool,
) -> None:
    """Import FILE.csv into a list, streaming; rejected rows go to a rejects file."""
    gw = _gw(ctx)
    rejects = _RejectsFile(rejects_path or file.with_name(f"{file.stem}.rejects.csv"))
    try:
        with file.open("rb") as stream, _progress(file, progress, "importing") as bar:
            report = import_csv(
                gw,
                stream,
                list_ref,
                mapping=parse_mapping(maps),
                include_opted_out=include_opted_out,
                on_progress=bar,
                on_reject=rejects,
            )
    finally:
        rejects.close()
    r = report
    click.echo(
        f"{r.rows} rows: {r.created} created, {r.updated} updated, {r.duplicates_merged} duplicates merged, "
        f"{r.skipped_opted_out} skipped (opted out), {r.rejected} rejected; "
        f"{r.added_to_list} added to the list ({r.already_in_list} already in it)"
    )
    if rejects.count:
        click.echo(f"rejected rows written to {rejects.path}")


# ---- lists ----------------------------------------------------------------------------------------------


@click.group("lists")
def lists_cli() -> None:
    """Lists: create, show, change, delete, move members, clean."""


@lists_cli.command("create")
@click.argument("name")
@click.option("--channel", type=click.Choice(["sms", "email"]), default="sms", show_default=True)
@click.option("--scope", default="*", show_default=True, help="opt-out scope that cleans it (* = any)")
@click.pass_context
def lists_create(ctx: click.Context, name: str, channel: str, scope: str) -> None:
    """Create a list."""
    with _gw(ctx).db.transaction() as session:
        found = svc.create_list(session, name, channel, scope)
        click.echo(f"created list {found.id} {found.name!r}")


@lists_cli.command("list")
@click.pass_context
def lists_list(ctx: click.Context) -> None:
    """Every list: id, name, channel, scope, members."""
    with _gw(ctx).db.read() as session:
        for found, size in svc.all_lists(session):
            flag = " (system)" if found.system else ""
            click.echo(f"{found.id}\t{found.name}\t{found.channel}\t{found.scope}\t{size}{flag}")


@lists_cli.command("show")
@click.argument("list_ref")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def lists_show(ctx: click.Context, list_ref: str, limit: int) -> None:
    """A list's members (the Opt-Out List shows its opt-out entries)."""
    with _gw(ctx).db.read() as session:
        found = svc.get_list(session, list_ref)
        click.echo(
            f"{found.name}: {svc.list_size(session, found)} members ({found.channel}, scope {found.scope})"
        )
        if found.system:
            for e in svc.opt_out_list_entries(session, limit=limit):
                click.echo(f"{e.channel}\t{e.address}\t{e.scope}\t{e.source}\t{e.since:%Y-%m-%d %H:%M:%S}")
        else:
            for contact in svc.find_contacts(session, list_id=found.id, limit=limit):
                click.echo(_contact_line(contact))


@lists_cli.command("update")
@click.argument("list_ref")
@click.option("--name")
@click.option("--channel", type=click.Choice(["sms", "email"]))
@click.option("--scope")
@click.pass_context
def lists_update(
    ctx: click.Context, list_ref: str, name: str | None, channel: str | None, scope: str | None
) -> None:
    """Rename a list or change its channel or scope."""
    with _gw(ctx).db.transaction() as session:
        svc.update_list(session, list_ref, {"name": name, "channel": channel, "scope": scope})
    click.echo("updated")


@lists_cli.command("delete")
@click.argument("list_ref")
@click.pass_context
def lists_delete(ctx: click.Context, list_ref: str) -> None:
    """Delete a list (its contacts stay)."""
    with _gw(ctx).db.transaction() as session:
        svc.delete_list(session, list_ref)
    click.echo("deleted")


@lists_cli.command("add")
@click.argument("list_ref")
@click.argument("contact_ids", nargs=-1, type=int, required=True)
@click.pass_context
def lists_add(ctx: click.Context, list_ref: str, contact_ids: tuple[int, ...]) -> None:
    """Add contacts (by id) to a list."""
    with _gw(ctx).db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        click.echo(f"added {svc.add_members(session, found.id or 0, contact_ids)}")


@lists_cli.command("remove")
@click.argument("list_ref")
@click.argument("contact_ids", nargs=-1, type=int, required=True)
@click.pass_context
def lists_remove(ctx: click.Context, list_ref: str, contact_ids: tuple[int, ...]) -> None:
    """Remove contacts (by id) from a list."""
    with _gw(ctx).db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        click.echo(f"removed {svc.remove_members(session, found.id or 0, contact_ids)}")


def _transfer(ctx: click.Context, source: str, target: str, contact_ids: tuple[int, ...], move: bool) -> int:
    with _gw(ctx).db.transaction() as session:
        src, dst = svc.editable_list(session, source), svc.editable_list(session, target)
        if src.id == dst.id:
            raise click.UsageError("source and target are the same list")
        operation = svc.move_members if move else svc.copy_members
        return operation(session, src.id or 0, dst.id or 0, list(contact_ids) or None)


@lists_cli.command("copy")
@click.argument("source")
@click.argument("target")
@click.argument("contact_ids", nargs=-1, type=int)
@click.pass_context
def lists_copy(ctx: click.Context, source: str, target: str, contact_ids: tuple[int, ...]) -> None:
    """Copy members of SOURCE (all, or the ids given) to TARGET."""
    click.echo(f"copied {_transfer(ctx, source, target, contact_ids, move=False)}")


@lists_cli.command("move")
@click.argument("source")
@click.argument("target")
@click.argument("contact_ids", nargs=-1, type=int)
@click.pass_context
def lists_move(ctx: click.Context, source: str, target: str, contact_ids: tuple[int, ...]) -> None:
    """Move members of SOURCE (all, or the ids given) to TARGET."""
    click.echo(f"moved {_transfer(ctx, source, target, contact_ids, move=True)}")


@lists_cli.command("dedupe")
@click.argument("list_ref")
@click.option(
    "--by",
    "fields",
    multiple=True,
    required=True,
    help="field compared: phone, email, first_name, last_name, fields.NAME (repeatable)",
)
@click.pass_context
def lists_dedupe(ctx: click.Context, list_ref: str, fields: tuple[str, ...]) -> None:
    """Remove duplicate members (equal --by fields); the oldest contact stays."""
    with _gw(ctx).db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        click.echo(f"removed {svc.remove_duplicates(session, found.id or 0, fields)} duplicates")


@lists_cli.command("clean")
@click.argument("list_ref")
@click.pass_context
def lists_clean(ctx: click.Context, list_ref: str) -> None:
    """Remove every member opted out for the list's channel and scope."""
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        removed = svc.remove_opted_out(session, found, gw.settings.compliance.cross_channel)
    click.echo(f"removed {removed} opted-out contacts from {found.name!r}")


# ---- opt-outs and the ledger ------------------------------------------------------------------------------


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--until", default=None, help="ISO 8601 time (exclusive)")(fn)
    fn = click.option("--since", default=None, help="ISO 8601 time (inclusive)")(fn)
    fn = click.option("--source", default=None)(fn)
    fn = click.option("--scope", default=None)(fn)
    return click.option("--channel", type=click.Choice(["sms", "email"]), default=None)(fn)


def _filters(
    channel: str | None, scope: str | None, source: str | None, since: str | None, until: str | None
) -> ledger.Filters:
    return ledger.Filters(
        channel=channel,
        scope=scope,
        source=source,
        since=ledger.parse_time(since, "since") if since else None,
        until=ledger.parse_time(until, "until") if until else None,
    )


@click.group("opt-outs")
def opt_outs_cli() -> None:
    """The Opt-Out List: list, export, add, import, remove."""


@opt_outs_cli.command("list")
@_filter_options
@click.pass_context
def opt_outs_list(ctx: click.Context, **filters: Any) -> None:
    """Active opt-outs: channel, address, scope, source, since."""
    for row in ledger.iter_opt_outs(_gw(ctx), _filters(**filters)):
        click.echo(f"{row.channel}\t{row.address}\t{row.scope}\t{row.source}\t{row.since:%Y-%m-%d %H:%M:%S}")


@opt_outs_cli.command("export")
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@click.pass_context
def opt_outs_export(ctx: click.Context, fmt: str, output: IO[str], **filters: Any) -> None:
    """Export active opt-outs with every field."""
    ledger.write_export(
        ledger.iter_opt_outs(_gw(ctx), _filters(**filters)), ledger.OPT_OUT_FIELDS, output, fmt
    )


@opt_outs_cli.command("add")
@click.argument("address")
@click.option("--channel", type=click.Choice(["sms", "email"]), required=True)
@click.option("--scope", default="*", show_default=True, help="* = every scope")
@click.option("--reason", default=None)
@click.pass_context
def opt_outs_add(ctx: click.Context, address: str, channel: str, scope: str, reason: str | None) -> None:
    """Record an opt-out by hand (source cli)."""
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        changes = ledger.add_opt_out(
            session,
            gw,
            channel=channel,
            address=address,
            scope=scope,
            source="cli",
            reason=reason,
            actor=_actor(),
        )
    click.echo("opted out" if any(c.changed for c in changes) else "already opted out (recorded)")


@opt_outs_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--channel", type=click.Choice(["sms", "email"]), required=True)
@click.option("--scope", default="*", show_default=True, help="scope of rows without one (* = every scope)")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def opt_outs_import(
    ctx: click.Context, file: Path, channel: str, scope: str, rejects_path: Path | None, progress: bool
) -> None:
    """Import previously opted-out people (source import; the file and row are kept as evidence)."""
    gw = _gw(ctx)
    rejects = _RejectsFile(rejects_path or file.with_name(f"{file.stem}.rejects.csv"))
    try:
        with file.open("rb") as stream, _progress(file, progress, "importing") as bar:
            report = ledger.import_opt_outs(
                gw,
                stream,
                channel=channel,
                scope=scope,
                actor=_actor(),
                filename=file.name,
                on_progress=bar,
                on_reject=rejects,
            )
    finally:
        rejects.close()
    click.echo(
        f"{report.rows} rows: {report.recorded} recorded ({report.changed} newly opted out), "
        f"{report.rejected} rejected"
    )
    if rejects.count:
        click.echo(f"rejected rows written to {rejects.path}")


@opt_outs_cli.command("remove")
@click.argument("address")
@click.option("--channel", type=click.Choice(["sms", "email"]), required=True)
@click.option("--reason", required=True, help="why the operator re-subscribes this person (ledgered)")
@click.option("--scope", default=None, help="one scope (default: every scope the address left)")
@click.pass_context
def opt_outs_remove(ctx: click.Context, address: str, channel: str, reason: str, scope: str | None) -> None:
    """Re-subscribe someone (only with compliance.operator_resubscribe: with_reason)."""
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        ledger.resubscribe(
            session,
            gw,
            channel=channel,
            address=address,
            reason=reason,
            scope=scope,
            source="cli",
            actor=_actor(),
        )
    click.echo("re-subscribed (recorded in the ledger)")


@click.group("ledger")
def ledger_cli() -> None:
    """The consent ledger."""


@ledger_cli.command("export")
@_filter_options
@click.option("--address", default=None, help="one address (normalised form)")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@click.pass_context
def ledger_export(ctx: click.Context, fmt: str, output: IO[str], address: str | None, **filters: Any) -> None:
    """Export ledger rows in event order with every field, for an audit."""
    chosen = ledger.Filters(**{**vars_of(_filters(**filters)), "address": address})
    n = ledger.write_export(ledger.iter_events(_gw(ctx), chosen), ledger.EVENT_FIELDS, output, fmt)
    click.echo(f"{n} events exported", err=True)


def vars_of(filters: ledger.Filters) -> dict[str, Any]:
    """The filters as keyword arguments."""
    return {name: getattr(filters, name) for name in ledger.Filters.__dataclass_fields__}


# ---- campaigns ------------------------------------------------------------------------------------------


@click.group("campaigns")
def campaigns_cli() -> None:
    """Campaigns: create, show, pause, resume, cancel, list."""


def _campaign_json(gw: Gateway, campaign_id: int) -> dict[str, Any]:
    from gateway.api_campaigns import campaign_out

    with gw.db.read() as session:
        found = camp.get_campaign(session, campaign_id)
        return campaign_out(found, camp.live_counts(session, found))


@campaigns_cli.command("create")
@click.option("--name", required=True)
@click.option("--list", "list_ref", required=True)
@click.option("--body", required=True)
@click.option("--category", type=click.Choice(list(camp.CATEGORIES)), default="marketing", show_default=True)
@click.option("--channel", type=click.Choice(["sms", "email"]), default=None, help="default: the list's")
@click.option("--from", "sender", default=None)
@click.option("--subject", default=None)
@click.option("--send-at", default=None, help="ISO 8601 time (default now)")
@click.pass_context
def campaigns_create(
    ctx: click.Context,
    name: str,
    list_ref: str,
    body: str,
    category: str,
    channel: str | None,
    sender: str | None,
    subject: str | None,
    send_at: str | None,
) -> None:
    """Schedule a campaign; the worker sends it."""
    gw = _gw(ctx)
    with gw.db.transaction() as session:
        campaign: Campaign = camp.create_campaign(
            session,
            gw,
            name=name,
            list_ref=list_ref,
            body=body,
            category=category,
            channel=channel,
            sender=sender,
            subject=subject,
            send_at=ledger.parse_time(send_at, "send_at") if send_at else None,
        )
    note = " (opt-out footer appended)" if campaign.footer_appended else ""
    click.echo(
        f"campaign {campaign.id} scheduled for {campaign.send_at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{campaign.segments} {campaign.encoding} segment(s){note}"
    )


@campaigns_cli.command("show")
@click.argument("campaign_id", type=int)
@click.pass_context
def campaigns_show(ctx: click.Context, campaign_id: int) -> None:
    """A campaign's status and counts, as JSON."""
    _echo_json(_campaign_json(_gw(ctx), campaign_id))


def _transition(ctx: click.Context, action: Callable[[Session, int], Campaign], campaign_id: int) -> None:
    with _gw(ctx).db.transaction() as session:
        found = action(session, campaign_id)
    click.echo(f"campaign {campaign_id} {found.status}")


@campaigns_cli.command("cancel")
@click.argument("campaign_id", type=int)
@click.pass_context
def campaigns_cancel(ctx: click.Context, campaign_id: int) -> None:
    """Cancel a scheduled, sending or paused campaign."""
    _transition(ctx, camp.cancel_campaign, campaign_id)


@campaigns_cli.command("pause")
@click.argument("campaign_id", type=int)
@click.pass_context
def campaigns_pause(ctx: click.Context, campaign_id: int) -> None:
    """Pause a scheduled or sending campaign (its queued messages are held)."""
    _transition(ctx, camp.pause_campaign, campaign_id)


@campaigns_cli.command("resume")
@click.argument("campaign_id", type=int)
@click.pass_context
def campaigns_resume(ctx: click.Context, campaign_id: int) -> None:
    """Resume a paused campaign."""
    _transition(ctx, camp.resume_campaign, campaign_id)


@campaigns_cli.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def campaigns_list(ctx: click.Context, limit: int) -> None:
    """Recent campaigns: id, status, name, queued, excluded as opted out."""
    with _gw(ctx).db.read() as session:
        for c in camp.list_campaigns(session, limit=limit):
            click.echo(f"{c.id}\t{c.status}\t{c.name}\t{c.queued}\t{c.excluded_opted_out}")


def register(main: click.Group) -> None:
    """Mount these command groups on the ``optout`` command."""
    for group in (contacts_cli, lists_cli, opt_outs_cli, ledger_cli, campaigns_cli):
        main.add_command(group)
