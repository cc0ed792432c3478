"""``optout providers sync``: a provider's own opt-out list imported as ledgered, idempotent opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from click.testing import CliRunner
from responses import matchers

from gateway.cli import main
from gateway.errors import ProviderError
from gateway.models import ConsentEvent
from gateway.provider_sync import SyncUnavailableError, sync_provider
from gateway.storage import Evidence, apply_consent
from tests.adapters.cases.telnyx import CASE as TELNYX
from tests.gateway.helpers import count, ledger, opt_out_state
from tests.providers.conftest import OURS, SCOPE, provider_config

OPTOUTS_URL = "https://api.telnyx.com/v2/messaging_optouts"
PROFILE = TELNYX.settings["messaging_profile_id"]
STRANGER = "+14155559999"  # a number of ours the configuration does not list any more


def entry(to: str, sender: str = OURS["telnyx"], created: str = "2025-04-28 12:00:38.631252") -> dict[str, Any]:
    """One opt-out as ``GET /v2/messaging_optouts`` lists it."""
    return {"from": sender, "to": to, "messaging_profile_id": PROFILE, "keyword": "STOP", "created_at": created}


def mock_pages(rsps: responses.RequestsMock, pages: list[list[dict[str, Any]]], size: int) -> None:
    """Register each page, matched on its page number, size, profile filter and API key."""
    for number, data in enumerate(pages, start=1):
        query = {"page[number]": str(number), "page[size]": str(size), "filter[messaging_profile_id]": PROFILE}
        rsps.add(
            "GET",
            OPTOUTS_URL,
            json={"data": data, "meta": {"total_pages": len(pages), "total_results": sum(map(len, pages)),
                                         "page_number": number, "page_size": size}},
            match=[matchers.query_param_matcher(query),
                   matchers.header_matcher({"Authorization": f"Bearer {TELNYX.env['TELNYX_API_KEY']}"})],
        )


def opt_out(gw: Any, address: str, opted_out: bool, at: datetime) -> None:
    with gw.db.transaction() as session:
        apply_consent(session, channel="sms", address=address, scope=SCOPE, opted_out=opted_out,
                      evidence=Evidence(source="sms_keyword", occurred_at=at))


PAGES = [
    [entry("+14155550101"), entry("+14155550102", sender=STRANGER)],
    [entry("+447766****"), entry("+14155550103")],  # a redacted number; one we already have
]


def test_sync_imports_every_page_once(gw: Any) -> None:
    gw.adapter("telnyx").optout_page_size = 2
    opt_out(gw, "+14155550103", True, datetime(2025, 1, 1, tzinfo=UTC))
    with responses.RequestsMock() as rsps:
        mock_pages(rsps, PAGES, size=2)
        report = sync_provider(gw, "telnyx")
    assert (report.seen, report.imported, report.already_opted_out, report.unusable) == (4, 2, 1, 1)

    ours = opt_out_state(gw, "+14155550101", SCOPE)
    assert ours is not None and ours.opted_out and ours.source == "provider"
    assert ours.event_at == datetime(2025, 4, 28, 12, 0, 38, 631252, tzinfo=UTC)
    # A sender no longer configured falls back to the default scope, as its sends would.
    stranger = opt_out_state(gw, "+14155550102", "default")
    assert stranger is not None and stranger.opted_out
    [event] = ledger(gw, "+14155550101")
    assert (event.source, event.provider, event.raw_text, event.actor) == (
        "provider", "telnyx", "STOP", "optout providers sync")
    assert event.evidence["sender"] == OURS["telnyx"]
    assert event.evidence["record"] == PAGES[0][0]

    events = count(gw, ConsentEvent)
    with responses.RequestsMock() as rsps:
        mock_pages(rsps, PAGES, size=2)
        again = sync_provider(gw, "telnyx")
    assert (again.seen, again.imported, again.already_opted_out, again.unusable) == (4, 0, 3, 1)
    assert count(gw, ConsentEvent) == events


def test_scope_option_puts_every_opt_out_in_one_scope(gw: Any) -> None:
    with responses.RequestsMock() as rsps:
        mock_pages(rsps, [[entry("+14155550102", sender=STRANGER)]], size=250)
        assert sync_provider(gw, "telnyx", scope=SCOPE).imported == 1
    assert opt_out_state(gw, "+14155550102", "default") is None
    state = opt_out_state(gw, "+14155550102", SCOPE)
    assert state is not None and state.opted_out


def test_an_opt_in_newer_than_the_providers_record_wins(gw: Any) -> None:
    opt_out(gw, "+14155550104", True, datetime(2025, 1, 1, tzinfo=UTC))
    opt_out(gw, "+14155550104", False, datetime(2025, 6, 1, tzinfo=UTC))  # START, after Telnyx's record
    opt_out(gw, "+14155550105", True, datetime(2025, 1, 1, tzinfo=UTC))
    opt_out(gw, "+14155550105", False, datetime(2025, 2, 1, tzinfo=UTC))  # START, before Telnyx's record
    with responses.RequestsMock() as rsps:
        mock_pages(rsps, [[entry("+14155550104"), entry("+14155550105")]], size=250)
        report = sync_provider(gw, "telnyx")
    assert (report.imported, report.opted_in_since) == (1, 1)
    kept_in = opt_out_state(gw, "+14155550104", SCOPE)
    assert kept_in is not None and not kept_in.opted_out
    back_out = opt_out_state(gw, "+14155550105", SCOPE)
    assert back_out is not None and back_out.opted_out


def test_a_failed_page_raises_a_provider_error(gw: Any) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("GET", OPTOUTS_URL, status=503, json={"errors": [{"code": "10007", "detail": "Unavailable"}]})
        with pytest.raises(ProviderError, match="page 1: HTTP 503 Unavailable"):
            sync_provider(gw, "telnyx")


def test_twilio_has_no_opt_out_list_to_sync(gw: Any) -> None:
    with pytest.raises(SyncUnavailableError, match="Twilio has no API that lists opt-outs"):
        sync_provider(gw, "twilio")


@pytest.fixture
def cli(db_url: str, tmp_path: Path, env: dict[str, str]) -> Any:
    """Run ``optout`` with this test's configuration file and credentials."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(provider_config(db_url)))

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["--config", str(path), *args], env={**env, "DATABASE_URL": ""})

    return run


def test_cli_sync_telnyx(cli: Any, gw: Any) -> None:
    with responses.RequestsMock() as rsps:
        mock_pages(rsps, [[entry("+14155550101")]], size=250)
        result = cli("providers", "sync", "telnyx")
    assert result.exit_code == 0, result.output
    assert "1 opt-outs read, 1 imported" in result.output
    state = opt_out_state(gw, "+14155550101", SCOPE)
    assert state is not None and state.opted_out


def test_cli_sync_twilio_explains_and_fails(cli: Any) -> None:
    result = cli("providers", "sync", "twilio")
    assert result.exit_code == 2
    assert "no API that lists opt-outs" in result.output
