"""Opt-outs are per channel unless `compliance.cross_channel` is on; then one channel's opt-out blocks all."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.email import signer_for
from gateway.models import Contact
from tests.conftest import OUR_TWILIO
from tests.email.conftest import SmtpServer, email_config
from tests.email.helpers import AUTH, ME_NORMAL, api_send, path_of
from tests.gateway.helpers import post_twilio, twilio_form

PHONE = "+14155550100"


@pytest.fixture(params=[False, True], ids=["per-channel", "cross-channel"])
def config(request: pytest.FixtureRequest, db_url: str, smtp: SmtpServer) -> dict[str, Any]:
    cfg = email_config(db_url, smtp.port)
    cfg["compliance"] = {"cross_channel": request.param}
    return cfg


@pytest.fixture
def contact(gw: Any) -> None:
    """One person with both a phone number and an email address."""
    with gw.db.transaction() as session:
        session.add(Contact(phone=PHONE, email=ME_NORMAL))


def send_sms(client: Any) -> int:
    resp = client.post("/api/v1/messages", headers=AUTH,
                       json={"channel": "sms", "to": PHONE, "from": OUR_TWILIO, "body": "Sale today"})
    return int(resp.status_code)


def test_sms_stop_blocks_email_only_when_cross_channel(client: Any, gw: Any, contact: None) -> None:
    assert post_twilio(client, twilio_form("STOP", sender=PHONE)).status_code == 200
    assert send_sms(client) == 409
    expected = 409 if gw.settings.compliance.cross_channel else 202
    assert api_send(client).status_code == expected


def test_email_unsubscribe_blocks_sms_only_when_cross_channel(client: Any, gw: Any, contact: None) -> None:
    signer = signer_for(gw)
    path = path_of(signer.url(signer.issue(ME_NORMAL, "acme")))
    assert client.post(path, data={"action": "unsubscribe"}).status_code == 200
    assert api_send(client).status_code == 409
    expected = 409 if gw.settings.compliance.cross_channel else 202
    assert send_sms(client) == expected


def test_without_a_shared_contact_channels_stay_apart(client: Any, gw: Any) -> None:
    # No contact ties the phone to the email address, so even cross_channel cannot connect them.
    post_twilio(client, twilio_form("STOP", sender=PHONE))
    assert api_send(client).status_code == 202
