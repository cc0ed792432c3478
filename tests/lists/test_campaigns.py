"""Campaigns: creation checks, set-based fan-out, claims across workers and restarts, pacing, the guard at
dispatch, cancel, counts, and replies tied to the campaign they answer (move_contact)."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from typing import Any

import pytest
import responses
from sqlmodel import col, select

from gateway import campaigns as camp
from gateway.app import create_app
from gateway.models import Campaign, InboundRecord, OutboxMessage, utcnow
from gateway.outbox import drain
from tests.adapters.cases.clicksend import SEND_URL as CLICKSEND_URL
from tests.adapters.cases.clicksend import send_answer
from tests.conftest import OUR_CLICKSEND, OUR_OTHER_BRAND, OUR_TWILIO, TEST_ENV
from tests.gateway.helpers import outbox, post_twilio, twilio_form
from tests.lists.helpers import api, make_contact, make_list, member_ids, opt_out

TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TEST_ENV['TWILIO_ACCOUNT_SID']}/Messages.json"


def populate(client: Any, gw: Any, n: int = 6) -> tuple[int, list[int]]:
    """A list of n SMS contacts plus one email-only contact; contacts 1 (acme) and 2 (*) opted out."""
    list_id = make_list(client)
    ids = [make_contact(client, phone=f"+1415555010{i}") for i in range(n)]
    ids.append(make_contact(client, email="only-email@example.com"))
    api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids})
    opt_out(gw, "+14155550101", scope="acme")
    opt_out(gw, "+14155550102", scope="*")
    opt_out(gw, "+14155550103", scope="other-brand")  # another brand's scope: still eligible
    opt_out(gw, "only-email@example.com", channel="email", scope="*")
    return list_id, ids


def create(client: Any, **fields: Any) -> Any:
    body = {"name": "Spring sale", "list": "Customers", "body": "Spring sale: 20% off", "sender": OUR_TWILIO,
            **fields}
    return api(client, "post", "/api/v1/campaigns", json=body)


def run_due(gw: Any, owner: str = "w1", chunk_size: int = camp.CHUNK_SIZE) -> list[int]:
    claimed = camp.claim_due(gw, owner)
    for campaign_id in claimed:
        assert camp.fan_out(gw, campaign_id, owner, chunk_size=chunk_size)
    return claimed


def campaign_rows(gw: Any, campaign_id: int) -> list[OutboxMessage]:
    with gw.db.read() as session:
        return list(session.execute(select(OutboxMessage).where(col(OutboxMessage.campaign_id) == campaign_id)
                                    .order_by(col(OutboxMessage.id))).scalars())


def twilio_sids() -> Any:
    counter = itertools.count(1)

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        import json

        return 201, {}, json.dumps({"sid": f"SMc{next(counter)}", "status": "queued", "error_code": None})

    return answer


# ---- creation -----------------------------------------------------------------------------------------


def test_marketing_sms_gets_the_footer_and_segments_are_reported(client: Any) -> None:
    make_list(client)
    plain = create(client).get_json()
    assert plain["body"] == "Spring sale: 20% off\nReply STOP to opt out" and plain["footer_appended"] is True
    assert plain["segments"] == 1 and plain["encoding"] == "GSM-7" and plain["status"] == "scheduled"
    assert plain["scope"] == "acme" and plain["provider"] == "twilio"
    own = create(client, body="Sale! Text STOP to end").get_json()
    assert own["footer_appended"] is False and own["body"] == "Sale! Text STOP to end"
    info = create(client, body="Store closed Monday", category="informational").get_json()
    assert info["footer_appended"] is False
    emoji = create(client, body="Sale 🎉 " + "x" * 70, category="informational").get_json()
    assert emoji["encoding"] == "UCS-2" and emoji["segments"] == 2
    long_gsm = create(client, body="y" * 161, category="informational").get_json()
    assert long_gsm["encoding"] == "GSM-7" and long_gsm["segments"] == 2


def test_segment_counting_rules() -> None:
    assert camp.count_segments("a" * 160) == camp.Segments("GSM-7", 160, 1)
    assert camp.count_segments("a" * 306).segments == 2 and camp.count_segments("a" * 307).segments == 3
    assert camp.count_segments("{" * 80).units == 160, "GSM-7 extension characters take two septets"
    assert camp.count_segments("é" * 70) == camp.Segments("GSM-7", 70, 1), "é is in the GSM-7 alphabet"
    assert camp.count_segments("ж" * 70).segments == 1 and camp.count_segments("ж" * 71).segments == 2
    assert camp.count_segments("ж" * 134).segments == 2 and camp.count_segments("ж" * 135).segments == 3


def test_campaign_input_errors_name_the_field(client: Any, config: dict[str, Any]) -> None:
    make_list(client)
    too_long = create(client, body="z" * 1600)
    assert too_long.status_code == 400 and too_long.get_json()["field"] == "body"
    assert "11 GSM-7 segments" in too_long.get_json()["detail"]
    assert create(client, category="spam").get_json()["field"] == "category"
    assert create(client, list="Nope").status_code == 404
    assert create(client, list="Opt-Out List").status_code == 403
    no_subject = create(client, channel="email", sender=None)
    assert no_subject.status_code == 400 and no_subject.get_json()["field"] == "subject"
    assert create(client, send_at="soon").get_json()["field"] == "send_at"
    assert create(client, name="").get_json()["field"] == "name"


def test_provider_segment_limit_is_configurable(config: dict[str, Any], env: Any) -> None:
    config["providers"]["twilio"] = {"max_segments": 1}
    app = create_app(config, env)
    client = app.test_client()
    try:
        make_list(client)
        resp = create(client, body="w" * 200, category="informational")
        assert resp.status_code == 400 and "at most 1" in resp.get_json()["detail"]
    finally:
        app.extensions["optout"].db.dispose()


# ---- fan-out ------------------------------------------------------------------------------------------


def test_fan_out_excludes_opted_out_members_and_counts_them(client: Any, gw: Any) -> None:
    _, ids = populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    assert run_due(gw, chunk_size=2) == [campaign_id]
    rows = campaign_rows(gw, campaign_id)
    assert [r.recipient for r in rows] == ["+14155550100", "+14155550103", "+14155550104", "+14155550105"]
    assert {r.idempotency_key for r in rows} == {f"campaign:{campaign_id}:{ids[i]}" for i in (0, 3, 4, 5)}
    first = rows[0]
    assert first.sender == OUR_TWILIO and first.scope == "acme" and first.provider == "twilio"
    assert first.category == "marketing" and first.body.endswith("Reply STOP to opt out")
    assert first.status == "queued" and first.headers == {}
    shown = api(client, "get", f"/api/v1/campaigns/{campaign_id}").get_json()
    assert shown["status"] == "sending"
    counts = shown["counts"]
    assert (counts["members"], counts["fanned_out"], counts["queued"]) == (7, 4, 4)
    assert (counts["excluded_opted_out"], counts["excluded_no_address"]) == (2, 1)


def test_other_brand_scope_excludes_only_its_own_opt_outs(client: Any, gw: Any) -> None:
    populate(client, gw)
    campaign_id = create(client, sender=OUR_OTHER_BRAND).get_json()["id"]
    run_due(gw)
    recipients = {r.recipient for r in campaign_rows(gw, campaign_id)}
    assert recipients == {"+14155550100", "+14155550101", "+14155550104", "+14155550105"}


def test_two_workers_never_fan_out_twice(client: Any, gw: Any) -> None:
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    barrier = threading.Barrier(4)
    claims: list[list[int]] = []

    def worker(name: str) -> None:
        barrier.wait()
        got = camp.claim_due(gw, name)
        claims.append(got)
        for cid in got:
            camp.fan_out(gw, cid, name, chunk_size=1)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(c) for c in claims) == [0, 0, 0, 1]
    assert len(campaign_rows(gw, campaign_id)) == 4
    counts = api(client, "get", f"/api/v1/campaigns/{campaign_id}").get_json()["counts"]
    assert counts["fanned_out"] == 4 and counts["members"] == 7, "counted once"


def test_a_crashed_fan_out_resumes_after_its_lease(client: Any, gw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    [claimed] = camp.claim_due(gw, "dying")
    real_chunk = camp._fan_out_chunk
    calls = itertools.count()

    def crash_on_second_chunk(*args: Any, **kwargs: Any) -> bool:
        if next(calls) == 1:
            raise RuntimeError("worker killed")
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(camp, "_fan_out_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        camp.fan_out(gw, claimed, "dying", chunk_size=2)
    monkeypatch.setattr(camp, "_fan_out_chunk", real_chunk)
    assert len(campaign_rows(gw, campaign_id)) == 1, "the first chunk committed; the second rolled back"
    assert camp.claim_due(gw, "rescuer") == [], "its lease still holds"
    later = utcnow() + timedelta(seconds=gw.settings.outbox.lease_seconds + 1)
    assert camp.claim_due(gw, "rescuer", now=later) == [campaign_id]
    assert camp.fan_out(gw, campaign_id, "rescuer", chunk_size=2)
    assert camp.fan_out(gw, campaign_id, "dying") is False, "the old owner cannot continue"
    rows = campaign_rows(gw, campaign_id)
    assert len(rows) == 4 and len({r.idempotency_key for r in rows}) == 4
    counts = api(client, "get", f"/api/v1/campaigns/{campaign_id}").get_json()["counts"]
    assert (counts["members"], counts["fanned_out"], counts["excluded_opted_out"]) == (7, 4, 2)


def test_scheduled_campaign_waits_and_survives_a_restart(client: Any, gw: Any, config: dict[str, Any],
                                                          env: Any) -> None:
    populate(client, gw)
    send_at = utcnow() + timedelta(hours=2)
    campaign_id = create(client, send_at=send_at.isoformat()).get_json()["id"]
    assert camp.claim_due(gw, "w1") == []
    gw.db.dispose()
    restarted = create_app(config, env).extensions["optout"]  # a new process: only the database remains
    try:
        assert camp.claim_due(restarted, "w2", now=send_at + timedelta(seconds=1)) == [campaign_id]
        assert camp.fan_out(restarted, campaign_id, "w2")
        rows = campaign_rows(restarted, campaign_id)
        assert len(rows) == 4 and all(r.next_attempt_at >= send_at for r in rows), "nothing is due early"
    finally:
        restarted.db.dispose()


def test_pacing_spaces_sends_per_sender_across_campaigns(config: dict[str, Any], env: Any) -> None:
    # OUR_TWILIO: one message every 100 s, so the test's own run time never reaches past a reserved slot.
    config["senders"][0]["rate_per_second"] = 0.01
    app = create_app(config, env)
    client, gw = app.test_client(), app.extensions["optout"]
    try:
        populate(client, gw)
        first = create(client).get_json()["id"]
        second = create(client, name="Second").get_json()["id"]
        other = create(client, name="Other sender", sender=OUR_OTHER_BRAND).get_json()["id"]
        run_due(gw, chunk_size=3)
        times_a = [r.next_attempt_at for r in campaign_rows(gw, first)]
        times_b = [r.next_attempt_at for r in campaign_rows(gw, second)]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times_a + times_b)]
        assert gaps == pytest.approx([100.0] * 7, abs=0.002), "one sender's campaigns share its rate"
        times_c = [r.next_attempt_at for r in campaign_rows(gw, other)]
        assert max(times_c) < times_a[-1], "another sender (unpaced) is not held back by this one"
    finally:
        gw.db.dispose()


# ---- dispatch, cancel, completion ---------------------------------------------------------------------


def test_someone_who_opts_out_after_fan_out_gets_nothing(client: Any, gw: Any) -> None:
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    run_due(gw)
    post_twilio(client, twilio_form("STOP", sender="+14155550104", sid="SM-late"))
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", TWILIO_URL, callback=twilio_sids())
        while drain(gw, "w1"):
            pass
        recipients = [c.request.body for c in rsps.calls]
    assert not any("%2B14155550104" in str(body) and "Spring" in str(body) for body in recipients)
    statuses = {r.recipient: r.status for r in campaign_rows(gw, campaign_id)}
    assert statuses == {"+14155550100": "sent", "+14155550103": "sent", "+14155550104": "blocked",
                        "+14155550105": "sent"}
    assert camp.complete_finished(gw) == [campaign_id]
    shown = api(client, "get", f"/api/v1/campaigns/{campaign_id}").get_json()
    assert shown["status"] == "sent" and shown["finished_at"]
    counts = shown["counts"]
    assert (counts["sent"], counts["blocked"], counts["opted_out_since"]) == (3, 1, 1)
    with gw.db.read() as session:
        stored = session.get(Campaign, campaign_id)
        assert stored is not None and (stored.sent, stored.blocked, stored.failed) == (3, 1, 0)
    assert api(client, "post", f"/api/v1/campaigns/{campaign_id}/cancel").status_code == 409


def test_cancel_before_and_during_sending(client: Any, gw: Any) -> None:
    populate(client, gw)
    early = create(client).get_json()["id"]
    cancelled = api(client, "post", f"/api/v1/campaigns/{early}/cancel").get_json()
    assert cancelled["status"] == "cancelled"
    assert camp.claim_due(gw, "w1") == [] and campaign_rows(gw, early) == []
    late = create(client, name="Late").get_json()["id"]
    [claimed] = camp.claim_due(gw, "w1")
    camp.fan_out(gw, claimed, "w1", chunk_size=2)
    api(client, "post", f"/api/v1/campaigns/{late}/cancel")
    assert {r.status for r in campaign_rows(gw, late)} == {"cancelled"}
    with responses.RequestsMock():  # any send would fail the test: none is registered
        assert drain(gw, "w1") == 0
    assert camp.complete_finished(gw) == [], "a cancelled campaign stays cancelled"
    assert api(client, "post", f"/api/v1/campaigns/{late}/cancel").get_json()["status"] == "cancelled"
    assert api(client, "post", "/api/v1/campaigns/999/cancel").status_code == 404


def test_a_cancel_between_chunks_stops_the_fan_out(client: Any, gw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    [claimed] = camp.claim_due(gw, "w1")
    real_chunk = camp._fan_out_chunk
    calls = itertools.count()

    def interrupted(*args: Any, **kwargs: Any) -> bool:
        if next(calls) == 1:
            raise RuntimeError("paused here")  # the first chunk has committed
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(camp, "_fan_out_chunk", interrupted)
    with pytest.raises(RuntimeError):
        camp.fan_out(gw, claimed, "w1", chunk_size=2)
    monkeypatch.setattr(camp, "_fan_out_chunk", real_chunk)
    assert len(campaign_rows(gw, campaign_id)) == 1
    api(client, "post", f"/api/v1/campaigns/{campaign_id}/cancel")
    assert camp.fan_out(gw, claimed, "w1", chunk_size=2) is False, "the next chunk sees the cancel"
    later = utcnow() + timedelta(seconds=gw.settings.outbox.lease_seconds + 1)
    assert camp.claim_due(gw, "w2", now=later) == [], "a cancelled campaign is never reclaimed"
    assert [r.status for r in campaign_rows(gw, campaign_id)] == ["cancelled"]


def test_worker_runs_the_campaign_job(client: Any, gw: Any) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from gateway.worker import EXTRA_JOBS

    assert camp.add_jobs in EXTRA_JOBS
    scheduler = BackgroundScheduler(timezone="UTC")
    camp.add_jobs(scheduler, gw)
    [job] = scheduler.get_jobs()
    assert job.id == "campaigns" and job.func is camp.tick
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    assert camp.tick(gw, "w1") == 1
    assert len(campaign_rows(gw, campaign_id)) == 4
    assert camp.tick(gw, "w2") == 0


def test_email_campaign_gives_each_recipient_an_unsubscribe_link(client: Any, gw: Any) -> None:
    list_id = make_list(client, "Mail", channel="email")
    ids = [make_contact(client, email=f"p{i}@example.com") for i in range(3)]
    api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids})
    opt_out(gw, "p1@example.com", channel="email", scope="*")
    resp = api(client, "post", "/api/v1/campaigns", json={
        "name": "Letter", "list": "Mail", "body": "News", "subject": "Our news"})
    assert resp.status_code == 201, resp.get_json()
    campaign_id = resp.get_json()["id"]
    run_due(gw)
    rows = campaign_rows(gw, campaign_id)
    assert [r.recipient for r in rows] == ["p0@example.com", "p2@example.com"]
    links = {r.headers["List-Unsubscribe"] for r in rows}
    assert len(links) == 2 and all(r.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for r in rows)
    assert all(r.subject == "Our news" and "unsubscribe" in r.body.lower() for r in rows)


# ---- replies tied to the campaign ---------------------------------------------------------------------


@pytest.fixture
def move_app(config: dict[str, Any], env: Any) -> Any:
    config["rules"] = [
        {"name": "opt-out", "match": {"exact": ["STOP"]}, "actions": ["opt_out", {"reply": {"template": "opt_out"}}]},
        {"name": "not-interested", "match": {"exact": ["NO"]}, "actions": [{"move_contact": {"to": "Not interested"}}]},
    ]
    app = create_app(config, env)
    yield app
    app.extensions["optout"].db.dispose()


def clicksend_reply(client: Any, text: str, sender: str, **link: str) -> None:
    form = {"timestamp": "1700000000", "from": sender, "to": OUR_CLICKSEND, "body": text,
            "message_id": f"CS-in-{sender}-{text}", "custom_string": "", "original_message_id": "", **link}
    resp = client.post("/webhooks/clicksend/inbound?token=cs-webhook-token", data=form)
    assert resp.status_code == 200


def inbound_campaign(gw: Any, sender: str) -> int | None:
    with gw.db.read() as session:
        return session.execute(select(InboundRecord.campaign_id).where(col(InboundRecord.sender) == sender)
                               .order_by(col(InboundRecord.id).desc()).limit(1)).scalar()


def test_reply_moves_the_contact_out_of_the_campaign_list(move_app: Any) -> None:
    client, gw = move_app.test_client(), move_app.extensions["optout"]
    list_id = make_list(client)
    other_list = make_list(client, "VIP")
    people = ["+61411111101", "+61411111102", "+61411111103"]
    ids = [make_contact(client, phone=p) for p in people]
    for target in (list_id, other_list):
        api(client, "post", f"/api/v1/lists/{target}/contacts", json={"contact_ids": ids})
    first = create(client, sender=OUR_CLICKSEND).get_json()["id"]
    run_due(gw)
    with responses.RequestsMock() as rsps:
        for n in range(3):
            rsps.add("POST", CLICKSEND_URL, json=send_answer(f"CS-out-{n}"))
        while drain(gw, "w1"):
            pass
    sent = {r.recipient: r.provider_message_id for r in campaign_rows(gw, first)}
    # 1: ClickSend's original_message_id names our message.
    clicksend_reply(client, "NO", people[0], original_message_id=sent[people[0]])
    # 2: no original id, but the custom_string our message carried (its outbox key).
    clicksend_reply(client, "NO", people[1], custom_string=f"campaign:{first}:{ids[1]}")
    assert inbound_campaign(gw, people[0]) == first and inbound_campaign(gw, people[1]) == first
    assert member_ids(client, list_id) == [ids[2]]
    assert member_ids(client, "Not interested") == ids[:2]
    assert member_ids(client, other_list) == ids, "only the campaign's list loses them"


def test_reply_without_a_link_answers_the_last_message_from_that_number(move_app: Any) -> None:
    client, gw = move_app.test_client(), move_app.extensions["optout"]
    make_list(client, "Old")
    make_list(client)
    person = "+14155550100"
    cid = make_contact(client, phone=person)
    api(client, "post", "/api/v1/lists/Old/contacts", json={"contact_ids": [cid]})
    api(client, "post", "/api/v1/lists/Customers/contacts", json={"contact_ids": [cid]})
    old = create(client, list="Old", name="Old").get_json()["id"]
    run_due(gw)
    newer = create(client, name="Newer").get_json()["id"]
    run_due(gw)
    assert old != newer
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", TWILIO_URL, callback=twilio_sids())
        while drain(gw, "w1"):
            pass
    post_twilio(client, twilio_form("NO", sender=person, sid="SM-no"))
    assert inbound_campaign(gw, person) == newer
    assert member_ids(client, "Customers") == [] and member_ids(client, "Old") == [cid]
    assert member_ids(client, "Not interested") == [cid]
    assert [r.campaign_id for r in outbox(gw) if r.recipient == person] == [old, newer]


def test_pause_holds_messages_and_resume_sends_them(client: Any, gw: Any) -> None:
    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    [claimed] = camp.claim_due(gw, "w1")
    camp.fan_out(gw, claimed, "w1", chunk_size=2)
    paused = api(client, "post", f"/api/v1/campaigns/{campaign_id}/pause").get_json()
    assert paused["status"] == "paused" and paused["counts"]["held"] == 4 and paused["counts"]["queued"] == 0
    assert api(client, "post", f"/api/v1/campaigns/{campaign_id}/pause").get_json()["status"] == "paused"
    with responses.RequestsMock():  # any send would fail the test: none is registered
        assert drain(gw, "w1") == 0
    assert camp.complete_finished(gw) == [], "a paused campaign is not finished"
    resumed = api(client, "post", f"/api/v1/campaigns/{campaign_id}/resume").get_json()
    assert resumed["status"] == "sending" and resumed["counts"]["queued"] == 4
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", TWILIO_URL, callback=twilio_sids())
        while drain(gw, "w1"):
            pass
        assert len(rsps.calls) == 4
    assert camp.complete_finished(gw) == [campaign_id]
    assert api(client, "post", f"/api/v1/campaigns/{campaign_id}/pause").status_code == 409  # sent
    assert api(client, "post", f"/api/v1/campaigns/{campaign_id}/resume").status_code == 409
    assert api(client, "post", "/api/v1/campaigns/999/pause").status_code == 404


def test_a_campaign_paused_before_its_fan_out_resumes_as_scheduled_and_can_be_cancelled(
    client: Any, gw: Any
) -> None:
    populate(client, gw)
    later = create(client, name="Later").get_json()["id"]
    assert api(client, "post", f"/api/v1/campaigns/{later}/pause").get_json()["status"] == "paused"
    assert camp.claim_due(gw, "w1") == [], "a paused campaign is not claimed"
    assert api(client, "post", f"/api/v1/campaigns/{later}/resume").get_json()["status"] == "scheduled"
    other = create(client, name="Other").get_json()["id"]
    [first, second] = sorted(camp.claim_due(gw, "w1"))
    assert (first, second) == (later, other)
    camp.fan_out(gw, other, "w1", chunk_size=10)
    api(client, "post", f"/api/v1/campaigns/{other}/pause")
    cancelled = api(client, "post", f"/api/v1/campaigns/{other}/cancel").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["held"] == 0
    assert {r.status for r in campaign_rows(gw, other)} == {"cancelled"}


def test_resume_waits_for_an_open_safeguard_hold(client: Any, gw: Any) -> None:
    from gateway.models import CampaignHold

    populate(client, gw)
    campaign_id = create(client).get_json()["id"]
    api(client, "post", f"/api/v1/campaigns/{campaign_id}/pause")
    with gw.db.transaction() as session:
        session.add(CampaignHold(campaign_id=campaign_id, campaign_status="sending", opt_outs=5, sends=10,
                                 threshold=0.2, opened_at=utcnow()))
    resp = api(client, "post", f"/api/v1/campaigns/{campaign_id}/resume")
    assert resp.status_code == 409 and "hold" in resp.get_json()["detail"]
