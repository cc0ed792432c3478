"""Authentication: every API operation needs the token, every webhook is verified unless a setting says
otherwise (and then the start-up log says so), and secrets are compared in constant time."""

from __future__ import annotations

import ast
import hmac
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import settings_from_mapping
from gateway.models import InboundRecord
from gateway.openapi import OPERATIONS
from gateway.runtime import Gateway
from tests.adapters.contract import all_cases
from tests.conftest import TEST_ENV
from tests.gateway.helpers import count, twilio_form

ROOT = Path(__file__).resolve().parents[2]
TOKEN = TEST_ENV["OPTOUT_API_TOKEN"]


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _documented(app: Any) -> list[tuple[str, str]]:
    assert app is not None  # the app registers every blueprint's operations
    return sorted({(op.method, op.path) for op in OPERATIONS if op.auth})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}],
    ids=["none", "wrong", "basic", "no-scheme", "longer", "prefix"],
)
def test_every_api_operation_refuses_a_missing_or_wrong_token(app: Any, client: Any, headers: dict[str, str]) -> None:
    operations = _documented(app)
    assert len(operations) >= 2
    for method, path in operations:
        resp = client.open(_url(path), method=method.upper(), json={}, headers=headers)
        assert resp.status_code == 401, f"{method.upper()} {path}"
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_api_is_closed_when_no_token_is_configured(config: dict[str, Any], env: dict[str, str]) -> None:
    env.pop("OPTOUT_API_TOKEN")
    app = create_app(config, env)
    client = app.test_client()
    for method, path in _documented(app):
        resp = client.open(_url(path), method=method.upper(), json={}, headers={"Authorization": "Bearer "})
        assert resp.status_code == 401, f"{method.upper()} {path}"
    app.extensions["optout"].db.dispose()


def test_token_is_compared_in_constant_time(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    resp = client.get("/api/v1/opt-outs/sms/+14155550100", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    assert (TOKEN.encode(), TOKEN.encode()) in calls


# ---- webhooks: verified by default -----------------------------------------------------------------


@pytest.mark.parametrize("provider", ["twilio", "clicksend"])
def test_unsigned_webhooks_are_refused_and_store_nothing(client: Any, gw: Any, provider: str) -> None:
    resp = client.post(f"/webhooks/{provider}/inbound", data={**twilio_form("STOP"), "from": "+14155550100",
                       "to": "+14155550199", "body": "STOP", "message_id": "m-1"})
    assert resp.status_code == 403
    assert count(gw, InboundRecord) == 0


def _start(providers: dict[str, Any], env: dict[str, str], caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.runtime"):
        settings = settings_from_mapping({"database_url": "sqlite://", "providers": providers,
                                          "default_provider": next(iter(providers))})
        Gateway(settings, env).db.dispose()
    return [r.getMessage() for r in caplog.records if r.name == "gateway.runtime"]


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_every_provider_verifies_by_default_without_a_warning(case: Any, caplog: pytest.LogCaptureFixture) -> None:
    warnings = _start({case.name: dict(case.settings)}, dict(case.env), caplog)
    assert warnings == []
    unsigned = case.unsigned(case.inbound("STOP", "+14155550100", "+14155550199", "m-1"))
    from gateway.errors import VerificationError

    with pytest.raises(VerificationError):
        case.adapter().verify(unsigned)


def test_turning_verification_off_is_logged_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    [vonage] = [c for c in all_cases() if c.name == "vonage"]
    warnings = _start({"vonage": {**vonage.settings, "verify_signatures": False}}, dict(vonage.env), caplog)
    assert warnings == ["providers.vonage: webhook verification is turned OFF by configuration"]
    warnings = _start({"console": {"allow_unauthenticated": True}}, {}, caplog)
    assert warnings == ["providers.console: webhook verification is turned OFF by configuration"]


def test_an_open_console_is_logged_even_without_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    # The development provider takes anyone's STOP unless given a token: say so at every start.
    assert _start({"console": {}}, {}, caplog) == [
        "providers.console: webhooks are accepted without any signature or token"
    ]
    assert _start({"console": {"token_env": "CONSOLE_TOKEN"}}, {"CONSOLE_TOKEN": "t0ken-value"}, caplog) == []


# ---- constant-time comparisons, checked in the source ------------------------------------------------

SECRETISH = re.compile(r"token|secret|signature|digest|hmac|mac$|password|api_?key|credential|auth", re.I)


def plain_secret_comparisons(source: str) -> list[str]:
    """``==``/``!=``/``in`` comparisons whose operands look like secrets (constants excepted)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        # A literal or a module constant (UPPER_CASE) is public: comparing with one leaks nothing.
        if any(isinstance(o, ast.Constant) or (isinstance(o, ast.Name) and o.id.isupper()) for o in operands):
            continue
        names = [n.id if isinstance(n, ast.Name) else n.attr for o in operands for n in ast.walk(o)
                 if isinstance(n, ast.Name | ast.Attribute)]
        if any(SECRETISH.search(name) for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_source_check_finds_a_plain_comparison() -> None:
    code = "def check(given_token, expected):\n    return given_token == expected\n"
    assert plain_secret_comparisons(code) == ["2: given_token == expected"]
    assert plain_secret_comparisons("ok = hmac.compare_digest(a_token, b)\nx = kind == 'sig'\n") == []


def test_secrets_are_never_compared_with_plain_equality() -> None:
    files = sorted((ROOT / "gateway").glob("*.py")) + sorted((ROOT / "adapters").glob("*.py"))
    assert len(files) > 20
    problems = {str(f.relative_to(ROOT)): p for f in files if (p := plain_secret_comparisons(f.read_text()))}
    assert problems == {}
