"""The webhook benchmark's baseline: a bare Flask endpoint that does the least a webhook can do.

It parses the same form body and answers the same empty TwiML as the gateway, and nothing else: no
signature check, no database. Served by the same gunicorn with the same worker count and class, it is the
ceiling the gateway's full webhook path is measured against.
"""

from __future__ import annotations

from flask import Flask, Response, request

from adapters.twilio import EMPTY_TWIML

app = Flask(__name__)


@app.post("/webhooks/twilio/inbound")
def inbound() -> Response:
    """Parse the form (as every webhook must) and acknowledge with empty TwiML."""
    if not request.form.get("MessageSid"):
        return Response(b"missing MessageSid", status=400)
    return Response(EMPTY_TWIML, status=200, content_type="text/xml")


@app.get("/readyz")
def readyz() -> Response:
    """Answers once the worker is up (the benchmark waits for it)."""
    return Response(b"ok", status=200)
