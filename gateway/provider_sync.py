"""Import a provider's own opt-out list, so that moving to another provider loses nobody's opt-out.

Only providers with an API that lists their opt-outs can be imported: their adapter has `sync_optouts`
(Telnyx). Twilio has no such API; its opt-outs reach the gateway as they happen instead: ``OptOutType``
on inbound webhooks, error 21610 on sends and in status callbacks.

Each entry becomes an opt-out with source ``provider`` and the provider's record as evidence, in the scope
of the sender number it applies to (or one scope chosen by the operator). The import is idempotent: an
address already opted out there, or that opted back in with us after the provider recorded its opt-out,
is left alone, so running it again adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Protocol, runtime_checkable

from sqlmodel import col, select

from gateway.addresses import normalize_address
from gateway.errors import GatewayError, InvalidAddressError
from gateway.messages import ProviderOptOut
from gateway.models import OptOut, utcnow
from gateway.runtime import Gateway
from gateway.storage import Evidence, active_opt_out, apply_consent

log = logging.getLogger(__name__)

#: Why a provider cannot be synced, for the ones people ask about.
NO_LIST_API = {
    "twilio": (
        "Twilio has no API that lists opt-outs; they reach the gateway as they happen (OptOutType on "
        "inbound webhooks, error 21610 on sends and status callbacks)"
    ),
}
#: Entries imported per transaction.
BATCH = 500


class SyncUnavailableError(GatewayError):
    """The provider offers no API to read its opt-out list."""

    code = "sync_unavailable"
    http_status = 501


@runtime_checkable
class OptOutSource(Protocol):
    """An adapter that can list the opt-outs its provider holds."""

    def sync_optouts(self) -> Iterable[ProviderOptOut]:
        """Every opt-out the provider holds."""
        ...


@dataclass
class SyncReport:
    """What an import found and did."""

    provider: str
    seen: int = 0
    imported: int = 0
    already_opted_out: int = 0
    opted_in_since: int = 0
    unusable: int = 0

    def summary(self) -> str:
        """One line for the command line."""
        return (
            f"{self.provider}: {self.seen} opt-outs read, {self.imported} imported, "
            f"{self.already_opted_out} already opted out, {self.opted_in_since} opted in again since, "
            f"{self.unusable} without a usable number"
        )


def sync_provider(gw: Gateway, name: str, scope: str | None = None) -> SyncReport:
    """Import the opt-out list of configured provider ``name``; ``scope`` overrides each entry's scope.

    Raises `SyncUnavailableError` for a provider without an opt-out list API, `UnknownProviderError` for
    one that is not configured, `ProviderError` when the provider's API fails part-way (batches imported
    by then stay; since the import is idempotent, running it again completes it).
    """
    adapter = gw.adapter(name)
    if not isinstance(adapter, OptOutSource):
        reason = NO_LIST_API.get(name, f"{name} offers no API that lists its opt-outs")
        raise SyncUnavailableError(f"cannot sync {name}: {reason}")
    report = SyncReport(name)
    entries = iter(adapter.sync_optouts())
    for batch in _batches(entries, BATCH):
        _import(gw, batch, scope, report)
    log.info("%s", report.summary())
    return report


def _batches(entries: Iterator[ProviderOptOut], size: int) -> Iterator[list[ProviderOptOut]]:
    while batch := list(islice(entries, size)):
        yield batch


def _import(gw: Gateway, entries: list[ProviderOptOut], scope: str | None, report: SyncReport) -> None:
    region = gw.settings.default_region
    with gw.db.transaction() as session:
        for entry in entries:
            report.seen += 1
            try:
                # A redacted number ("+447766****") must not be read as the shorter number it still parses as.
                if "*" in entry.address:
                    raise InvalidAddressError("redacted number")
                address = normalize_address("sms", entry.address, region)
            except InvalidAddressError:
                report.unusable += 1
                continue
            target = scope or gw.settings.scope_for(entry.sender)
            at = entry.created_at or utcnow()
            if active_opt_out(session, "sms", address, target) is not None:
                report.already_opted_out += 1
                continue
            state = session.execute(
                select(OptOut).where(
                    col(OptOut.channel) == "sms", col(OptOut.address) == address, col(OptOut.scope) == target
                )
                # Consent rows are updated with Core statements: never trust a copy cached in the session.
                .execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if state is not None and state.event_at >= at:
                # They opted back in with us after the provider recorded the opt-out: the newer event wins.
                report.opted_in_since += 1
                continue
            apply_consent(
                session,
                channel="sms",
                address=address,
                scope=target,
                opted_out=True,
                evidence=Evidence(
                    source="provider",
                    occurred_at=at,
                    provider=entry.provider,
                    raw_text=entry.keyword,
                    reason="imported from the provider's opt-out list",
                    actor="optout providers sync",
                    details={"sync": True, "sender": entry.sender, "record": dict(entry.raw)},
                ),
            )
            report.imported += 1
