"""Hostile and broken input, generated: nothing but the defined errors, whatever arrives.

Text comes from a deliberately nasty alphabet: lone UTF-16 surrogates, control characters and NUL, the
GSM 03.38 extension characters, byte-order marks, bidi overrides, zero-width characters, emoji, and huge
bodies. Every adapter's parsers get mutations of that provider's own valid payloads (fields dropped,
duplicated, retyped or filled with hostile values), so the parsing code past the first check is reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col

from adapters.base import Adapter, WebhookRequest
from adapters.registry import REGISTRY
from gateway.addresses import mask, normalize_email, normalize_phone
from gateway.errors import ConfigError, GatewayError, InvalidAddressError, VerificationError
from gateway.logs import scrub
from gateway.messages import InboundMessage, StatusUpdate
from gateway.models import InboundRecord
from rules import RuleSet, compile_rules, evaluate, load_default_rules, normalize
from tests.adapters.contract import ProviderCase, all_cases
from tests.gateway.helpers import count

ODD = "€[]{}^~\\|\x00\x1b\x7f\r\n\t\u00a0\u200b\u200d\u202e\u2028\ufeff\ufffd\uffff\ud83d\udc00🛑ＳＴＯＰ"
hostile_char = st.one_of(st.sampled_from(ODD), st.characters(codec=None), st.characters(categories=["Cs", "Cc"]))
hostile_text = st.one_of(
    st.text(hostile_char, max_size=40),
    st.sampled_from(["STOP", "stop\u200b", "S\u0338TOP", "ＳＴＯＰ", "", " ", "0" * 400]),
    st.integers(min_value=1, max_value=8).map(lambda n: ("STOP " * 20_000)[: n * 9_000]),  # up to 72 KB
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.just(10**400), st.floats(), hostile_text
)
hostile_json = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=10,
)
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the text and address normalisers, and the matcher ---------------------------------------------


@HYPOTHESIS
@given(hostile_text)
def test_text_normaliser_accepts_anything(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    once.encode("utf-8")  # no lone surrogate survives: the result is always storable and matchable


@HYPOTHESIS
@given(hostile_text, st.sampled_from(["US", "GB", "AU", "DE"]))
def test_address_normalisers_raise_only_invalid_address(text: str, region: str) -> None:
    for normalise in (lambda t: normalize_phone(t, region), normalize_email):
        try:
            result = normalise(text)
        except InvalidAddressError:
            continue
        assert result == result.strip() and result.encode("utf-8")
    assert isinstance(mask(text), str) and isinstance(scrub(text), str)


DEFAULT_RULES = compile_rules(load_default_rules(), templates={"opt_out", "opt_in", "help"})
# The catastrophic-backtracking classic, compiled by the linear-time engine.
HOSTILE_RULES = compile_rules(
    [
        {"name": "nested", "match": {"regex": [r"(a+)+$", r"^(\w+\s?)*$"]}, "actions": ["opt_out"]},
        {"name": "words", "match": {"contains": ["stop now"], "not_contains": ["please"]}, "actions": ["stop"]},
    ]
)


def inbound(text: str, sender: str = "+14155550100") -> InboundMessage:
    """A message from ``sender`` to our number."""
    return InboundMessage("test", "m-1", sender, "+14155550199", text)


@HYPOTHESIS
@given(hostile_text, hostile_text)
def test_matcher_accepts_anything(text: str, sender: str) -> None:
    for ruleset in (DEFAULT_RULES, HOSTILE_RULES):
        for action in evaluate(ruleset, inbound(text, sender)):
            assert action.rule


@HYPOTHESIS
@given(st.lists(hostile_json, max_size=4))
def test_rule_compiler_refuses_garbage_with_a_rule_error(raw: list[Any]) -> None:
    try:
        ruleset = compile_rules(raw, allow_no_opt_out=True)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert isinstance(ruleset, RuleSet)


# ---- every adapter's parsers -------------------------------------------------------------------------

# Adapters without a contract case are built from these settings (none needs a credential to parse).
MINIMAL = {"console": {}, "smtp": {"host": "127.0.0.1"}}
CASES = {case.name: case for case in all_cases()}


def build(name: str) -> Adapter:
    """The registered adapter ``name``, configured by its contract case or its minimal settings."""
    if name in CASES:
        return CASES[name].adapter()
    assert name in MINIMAL, f"adapter {name!r} needs a contract case (tests/adapters/cases) or MINIMAL settings"
    return REGISTRY[name].from_config(MINIMAL[name], {})


ADAPTERS = {name: build(name) for name in REGISTRY}


def samples(case: ProviderCase | None) -> list[WebhookRequest]:
    """Valid webhooks of a provider to mutate: an inbound STOP and its delivery receipts."""
    if case is None:
        return [WebhookRequest.build("POST", "https://gw.example/webhooks/x/inbound",
                                     b'{"from": "+14155550100", "to": "+14155550199", "text": "STOP"}',
                                     {"Content-Type": "application/json"})]
    receipts = [s.request for s in case.status_cases()]
    return [case.inbound("STOP", "+14155550100", "+14155550199", "MSG-1"), *receipts]


SAMPLES = {name: samples(CASES.get(name)) for name in REGISTRY}


@st.composite
def mutation(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with parts dropped, replaced by hostile values, or left alone, recursively."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            fate = draw(st.sampled_from(["keep", "keep", "mutate", "drop", "replace"]))
            if fate != "drop":
                out[key] = item if fate == "keep" else draw(mutation(item) if fate == "mutate" else hostile_json)
        out.update(draw(st.dictionaries(hostile_text, hostile_json, max_size=2)))
        return out
    if isinstance(value, list):
        return [draw(mutation(item)) for item in value] + draw(st.lists(hostile_json, max_size=2))
    return draw(st.one_of(st.just(value), hostile_json))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def hostile_request(draw: st.DrawFn, name: str) -> WebhookRequest:
    """A mutation of one of the provider's valid webhooks: its body, query, content type and method."""
    base = draw(st.sampled_from(SAMPLES[name]))
    headers = dict(base.headers)
    body = base.body
    if base.content_type == "application/json" or body[:1] == b"{":
        body = json.dumps(draw(mutation(json.loads(body)))).encode()
    else:
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        fields = draw(mutation(dict(pairs)))
        # Repeated keys: a field sent twice, which some parsers must refuse as ambiguous.
        repeated = draw(st.lists(st.sampled_from(pairs or [("k", "v")]), max_size=2))
        pairs = [(k, _text(v)) for k, v in [*fields.items(), *repeated]]
        body = urlencode(pairs, errors="surrogatepass").encode()
    body = draw(st.one_of(st.just(body), st.binary(max_size=200), st.just(body * 40)))
    headers["Content-Type"] = draw(st.sampled_from([
        headers.get("Content-Type", ""), "application/json", "application/x-www-form-urlencoded",
        "text/plain; charset=utf-16", "multipart/form-data; boundary=x", "",
    ]))
    query = urlencode(draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=3)), errors="surrogatepass")
    url = base.url + ("&" if "?" in base.url else "?") + query if query else base.url
    return WebhookRequest.build(draw(st.sampled_from(["POST", "GET"])), url, body, headers)


def only_defined_errors(call: Callable[[], Any]) -> Any:
    """Run ``call``; a deliberate client error is fine, anything else (or a 5xx error) fails the test."""
    try:
        return call()
    except GatewayError as exc:
        assert exc.http_status < 500, f"{type(exc).__name__} would answer {exc.http_status}"
        return None


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_adapter_parsers_raise_only_defined_errors(name: str, data: st.DataObject) -> None:
    adapter = ADAPTERS[name]
    request = data.draw(hostile_request(name))
    only_defined_errors(lambda: adapter.verify(request))
    messages = only_defined_errors(lambda: adapter.parse_inbound(request)) or []
    for msg in messages:
        assert isinstance(msg, InboundMessage)
        assert all(isinstance(v, str) for v in (msg.sender, msg.recipient, msg.text, msg.provider_message_id))
        evaluate(DEFAULT_RULES, msg)
    for update in only_defined_errors(lambda: adapter.parse_status(request)) or []:
        assert isinstance(update, StatusUpdate) and isinstance(update.provider_message_id, str)


def test_every_registered_adapter_is_covered() -> None:
    assert set(ADAPTERS) == set(REGISTRY)
    assert all(len(SAMPLES[name]) >= 1 for name in REGISTRY)


# ---- through the route and the database ------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(fields=st.dictionaries(st.sampled_from(["from", "to", "text", "id"]), hostile_json, max_size=4),
       sender=st.sampled_from(["+14155550100", "+447700900123", "4155550100"]))
def test_webhook_route_never_answers_5xx(client: Any, gw: Any, fields: dict[str, Any], sender: str) -> None:
    payload = {"from": sender, "to": "+14155550199", "text": "STOP", **fields}
    resp = client.post("/webhooks/console/inbound", data=json.dumps(payload), content_type="application/json")
    assert resp.status_code in (200, 400, 413), resp.get_data(as_text=True)[:300]
    if resp.status_code == 200:  # acknowledged means stored (now, or by an earlier delivery of that id)
        [message_id] = resp.get_json()["received"]
        assert count(gw, InboundRecord, col(InboundRecord.provider_message_id) == message_id) == 1


@pytest.mark.parametrize("name", ["telnyx", "vonage"])
def test_a_timestamp_too_large_for_a_float_is_refused(name: str) -> None:
    # Found by the property test above: the freshness check overflowed into a 500.
    request = CASES[name].inbound("STOP", "+14155550100", "+14155550199", "MSG-1")
    huge = "9" * 400
    if name == "telnyx":
        request = WebhookRequest.build(request.method, request.url, request.body,
                                       {**request.headers, "telnyx-timestamp": huge})
    else:
        body = request.body.replace(b"timestamp=", b"timestamp=" + huge.encode(), 1)
        request = WebhookRequest.build(request.method, request.url, body, request.headers)
    with pytest.raises(VerificationError, match="window"):
        ADAPTERS[name].verify(request)
