"""The mass opt-out safeguard: a campaign whose sends come back opted out en masse is paused, not believed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from click.testing import CliRunner
from sqlmodel import col, select

from gateway.cli import main
from gateway.models import Campaign, CampaignHold, OutboxMessage, ProviderOptOutSignal, table, utcnow
from gateway.outbox import drain
from tests.adapters.cases import twilio
from tests.gateway.helpers import ledger, opt_out_state
from tests.providers.conftest import OURS, SCOPE, provider_config
from tests.providers.helpers import deliver

AUTH = {"Authorization": "Bearer api-test-token"}


@pytest.fixture
def config(db_url: str) -> dict[str, Any]:
    """Every provider; the safeguard trips above 20% of at least 10 sends; the worker claims 4 at a time."""
    cfg = provider_config(db_url)
    cfg["compliance"] = {"mass_optout_threshold": 0.2, "mass_optout_min_sends": 10}
    cfg["outbox"] = {**cfg["outbox"], "batch_size": 4}
    return cfg


def recipient(i: int) -> str:
    return f"+1415555{1000 + i}"


def make_campaign(gw: Any, sent: int = 0, queued: int = 0) -> int:
    """A Twilio campaign that is sending: ``sent`` messages accepted just now, ``queued`` still to go."""
    now = utcnow()
    with gw.db.transaction() as session:
        campaign = Campaign(name="Spring sale", body="Sale today. Reply STOP to opt out", sender=OURS["twilio"],
                            provider="twilio", scope=SCOPE, status="sending", started_at=now)
        session.add(campaign)
        session.flush()
        assert campaign.id is not None
        for i in range(sent + queued):
            session.add(OutboxMessage(
                provider="twilio", sender=OURS["twilio"], recipient=recipient(i), scope=SCOPE, body=campaign.body,
                status="sent" if i < sent else "queued", attempts=1 if i < sent else 0,
                idempotency_key=f"campaign:{campaign.id}:{i}", provider_message_id=sid(i) if i < sent else None,
                sent_at=now if i < sent else None, campaign_id=campaign.id,
            ))
        return campaign.id


def sid(i: int) -> str:
    return f"SM{i:032d}"


def opted_out_receipt(client: Any, i: int) -> None:
    """Twilio's status callback: message ``i`` failed with 21610, the recipient opted out."""
    request = twilio.signed(twilio.STATUS_URL, twilio.status_fields(sid(i), "failed", "21610"))
    assert deliver(client, request).status_code == 200


def campaign_status(gw: Any, campaign_id: int) -> str:
    with gw.db.read() as session:
        found = session.get(Campaign, campaign_id)
        assert found is not None
        return found.status


def outbox_statuses(gw: Any, campaign_id: int) -> dict[str, int]:
    with gw.db.read() as session:
        rows = session.execute(select(OutboxMessage.status).where(col(OutboxMessage.campaign_id) == campaign_id))
        statuses = list(rows.scalars())
    return {s: statuses.count(s) for s in set(statuses)}


def signal_states(gw: Any) -> list[str]:
    with gw.db.read() as session:
        rows = session.execute(select(ProviderOptOutSignal.state).order_by(col(ProviderOptOutSignal.id)))
        return list(rows.scalars())


def holds(gw: Any) -> list[CampaignHold]:
    with gw.db.read() as session:
        return list(session.execute(select(CampaignHold).order_by(col(CampaignHold.id))).scalars())


def is_opted_out(gw: Any, i: int) -> bool:
    state = opt_out_state(gw, recipient(i), SCOPE)
    return state is not None and state.opted_out


def trip(client: Any, gw: Any) -> int:
    """20 sends, 5 and 6 come back opted out: 5 of 20 is over 20%, so the fifth trips the safeguard."""
    campaign_id = make_campaign(gw, sent=20, queued=5)
    for i in range(6):
        opted_out_receipt(client, i)
    return campaign_id


def test_a_few_opt_out_codes_are_applied_at_once(client: Any, gw: Any) -> None:
    campaign_id = make_campaign(gw, sent=20, queued=5)
    for i in range(4):  # 4 of 20 is not over 20%
        opted_out_receipt(client, i)
    assert all(is_opted_out(gw, i) for i in range(4))
    assert signal_states(gw) == ["applied"] * 4
    assert campaign_status(gw, campaign_id) == "sending"
    assert outbox_statuses(gw, campaign_id) == {"sent": 20, "queued": 5}
    assert holds(gw) == []


def test_mass_opt_out_codes_pause_the_campaign_and_are_held(client: Any, gw: Any) -> None:
    campaign_id = trip(client, gw)
    assert campaign_status(gw, campaign_id) == "paused"
    assert outbox_statuses(gw, campaign_id) == {"sent": 20, "held": 5}
    [hold] = holds(gw)
    assert (hold.status, hold.campaign_id, hold.opt_outs, hold.sends, hold.campaign_status) == (
        "open", campaign_id, 5, 20, "sending")
    assert signal_states(gw) == ["applied"] * 4 + ["held"] * 2
    assert [is_opted_out(gw, i) for i in range(6)] == [True] * 4 + [False] * 2
    [event] = ledger(gw, recipient(5))
    assert (event.action, event.changed, event.source) == ("opt_out_held", False, "provider")
    assert event.evidence["error_code"] == "21610" and event.evidence["hold_id"] == hold.id

    opted_out_receipt(client, 5)  # the same receipt again: nothing new
    assert signal_states(gw) == ["applied"] * 4 + ["held"] * 2
    assert len(ledger(gw, recipient(5))) == 1


def test_confirm_applies_the_held_opt_outs_and_resumes(client: Any, gw: Any) -> None:
    campaign_id = trip(client, gw)
    [hold] = holds(gw)
    listed = client.get("/api/v1/safeguard/holds", headers=AUTH).get_json()["items"]
    assert [(h["id"], h["held"], h["status"]) for h in listed] == [(hold.id, 2, "open")]

    resp = client.post(f"/api/v1/safeguard/holds/{hold.id}/confirm", json={"reason": "list was stale"},
                       headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["status"], resp.get_json()["held"], resp.get_json()["resolved_by"]) == (
        "confirmed", 0, "api")
    assert all(is_opted_out(gw, i) for i in range(6))
    event = ledger(gw, recipient(5))[-1]
    assert (event.action, event.changed, event.actor) == ("opt_out", True, "api")
    assert event.reason is not None and "list was stale" in event.reason
    assert signal_states(gw) == ["applied"] * 4 + ["confirmed"] * 2
    assert campaign_status(gw, campaign_id) == "sending"
    assert outbox_statuses(gw, campaign_id) == {"sent": 20, "queued": 5}

    again = client.post(f"/api/v1/safeguard/holds/{hold.id}/confirm", json={}, headers=AUTH)
    assert again.status_code == 409


@pytest.fixture
def cli(db_url: str, tmp_path: Path, env: dict[str, str], config: dict[str, Any]) -> Any:
    """Run ``optout`` with this test's configuration file and credentials."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["--config", str(path), *args], env={**env, "DATABASE_URL": ""})

    return run


def test_dismiss_discards_the_held_opt_outs_with_a_ledgered_reason(client: Any, gw: Any, cli: Any) -> None:
    campaign_id = trip(client, gw)
    [hold] = holds(gw)
    listed = cli("safeguard", "list")
    assert listed.exit_code == 0 and f"hold {hold.id}: campaign {campaign_id} open" in listed.output

    missing_reason = client.post(f"/api/v1/safeguard/holds/{hold.id}/dismiss", json={}, headers=AUTH)
    assert missing_reason.status_code == 400
    result = cli("safeguard", "dismiss", str(hold.id), "--reason", "Twilio incident: 21610 sent in error")
    assert result.exit_code == 0, result.output

    assert [is_opted_out(gw, i) for i in range(6)] == [True] * 4 + [False] * 2
    event = ledger(gw, recipient(4))[-1]
    assert (event.action, event.changed, event.source) == ("opt_out_dismissed", False, "provider")
    assert event.actor is not None and event.actor.startswith("cli")
    assert event.reason is not None and "Twilio incident" in event.reason
    assert signal_states(gw) == ["applied"] * 4 + ["dismissed"] * 2
    assert campaign_status(gw, campaign_id) == "sending"
    assert outbox_statuses(gw, campaign_id) == {"sent": 20, "queued": 5}
    [decided] = holds(gw)
    assert (decided.status, decided.reason) == ("dismissed", "Twilio incident: 21610 sent in error")


def test_codes_outside_the_window_do_not_count(client: Any, gw: Any) -> None:
    campaign_id = make_campaign(gw, sent=40)
    long_ago = utcnow() - timedelta(hours=2)  # the window is one hour by default
    with gw.db.transaction() as session:
        rows = session.execute(select(OutboxMessage).where(col(OutboxMessage.campaign_id) == campaign_id)
                               .order_by(col(OutboxMessage.id)).offset(20)).scalars()
        for row in list(rows):  # a flood of codes for this campaign two hours ago, already applied
            session.execute(table(ProviderOptOutSignal).insert().values(
                campaign_id=campaign_id, outbox_id=row.id, state="applied", channel="sms", address=row.recipient,
                scope=SCOPE, provider="twilio", evidence={}, occurred_at=long_ago, recorded_at=long_ago))
    for i in range(4):
        opted_out_receipt(client, i)
    assert holds(gw) == []
    assert all(is_opted_out(gw, i) for i in range(4))


def test_codes_refused_at_send_pause_the_campaign_before_the_rest_is_sent(gw: Any) -> None:
    campaign_id = make_campaign(gw, queued=12)
    refused = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    with responses.RequestsMock() as rsps:
        send = rsps.add("POST", twilio.SEND_URL, status=400, json=refused)
        while drain(gw, "worker-1"):
            pass
    # The first batch of 4 was already claimed when the third refusal tripped the safeguard; the 8 messages
    # still queued were held and never sent.
    assert send.call_count == 4
    assert outbox_statuses(gw, campaign_id) == {"failed": 4, "held": 8}
    assert campaign_status(gw, campaign_id) == "paused"
    assert signal_states(gw) == ["applied", "applied", "held", "held"]
    [hold] = holds(gw)
    assert (hold.opt_outs, hold.sends) == (3, 3)
