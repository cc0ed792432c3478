"""Helpers for gateway tests: signed webhooks through the Flask client, and quick database reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from gateway.models import ConsentEvent, InboundRecord, OptOut, OutboxMessage
from tests.conftest import OUR_TWILIO, TEST_ENV

PUBLIC = "https://gateway.example.com"


def twilio_form(text: str, sender: str = "+14155550100", to: str = OUR_TWILIO, sid: str = "SM1",
                **extra: str) -> dict[str, str]:
    """An inbound Twilio SMS form, with the fields Twilio sends."""
    return {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
        "Body": text, "To": to, "NumSegments": "1", "MessageSid": sid, "AccountSid": TEST_ENV["TWILIO_ACCOUNT_SID"],
        "From": sender, "ApiVersion": "2010-04-01", **extra,
    }


def post_twilio(client: Any, form: dict[str, str], path: str = "/webhooks/twilio/inbound",
                token: str = TEST_ENV["TWILIO_AUTH_TOKEN"]) -> Any:
    """POST a Twilio webhook signed for the configured public URL."""
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return client.post(path, data=urlencode(form), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def count(gw: Any, model: Any, *where: Any) -> int:
    """Rows of ``model`` matching ``where``."""
    with gw.db.read() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def opt_out_state(gw: Any, address: str, scope: str, channel: str = "sms") -> OptOut | None:
    """The consent state row of an address in a scope."""
    with gw.db.read() as session:
        return session.execute(select(OptOut).where(
            col(OptOut.channel) == channel, col(OptOut.address) == address, col(OptOut.scope) == scope
        )).scalar_one_or_none()


def outbox(gw: Any) -> list[OutboxMessage]:
    """Every outbox row, oldest first."""
    with gw.db.read() as session:
        return list(session.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars())


def ledger(gw: Any, address: str) -> list[ConsentEvent]:
    """The consent events of an address, in order."""
    with gw.db.read() as session:
        return list(session.execute(select(ConsentEvent).where(col(ConsentEvent.address) == address)
                                    .order_by(col(ConsentEvent.id))).scalars())


def inbound_count(gw: Any) -> int:
    """Stored inbound messages."""
    return count(gw, InboundRecord)
