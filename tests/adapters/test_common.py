"""The helpers every adapter shares: provider answers, typed fields, times, numeric settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import responses

from adapters._common import (
    iso_time,
    json_object,
    number_setting,
    object_field,
    parse_time,
    response_body,
    string_field,
)
from gateway.errors import ConfigError, PayloadError

URL = "https://api.example.com/answer"


def answer(**kwargs: object) -> requests.Response:
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL, **kwargs)  # type: ignore[arg-type]
        return requests.get(URL, timeout=1)


def test_provider_answers_are_kept_whatever_their_shape() -> None:
    assert response_body(answer(json={"id": "M1"})) == {"id": "M1"}
    assert response_body(answer(json=["M1"])) == {"json": ["M1"]}
    assert response_body(answer(body="<html>Bad gateway</html>")) == {"text": "<html>Bad gateway</html>"}
    assert json_object(answer(json={"sid": "SM1"})) == {"sid": "SM1"}
    assert json_object(answer(json=["SM1"])) == {}
    assert json_object(answer(body="not json")) == {}


def test_a_deeply_nested_answer_does_not_crash_the_send_path() -> None:
    nested = "[" * 100_000 + "]" * 100_000
    assert response_body(answer(body=nested)) == {"text": nested[:500]}
    assert json_object(answer(body=nested)) == {}


def test_fields_name_themselves_in_errors() -> None:
    data = {"id": "M1", "to": 14155550100, "payload": {"x": 1}, "from": ""}
    assert string_field(data, "id") == "M1"
    assert object_field(data, "payload") == {"x": 1}
    with pytest.raises(PayloadError, match=r"missing field 'data\.from'") as missing:
        string_field(data, "from", "data.from")
    assert missing.value.field == "data.from"
    with pytest.raises(PayloadError, match="field 'to' has the wrong type"):
        string_field(data, "to")
    with pytest.raises(PayloadError, match="field 'id' has the wrong type"):
        object_field(data, "id")
    with pytest.raises(PayloadError, match=r"missing field 'data\.payload'"):
        object_field({}, "payload", "data.payload")


def test_times_are_utc_or_none() -> None:
    assert iso_time("2024-03-01T10:00:05Z") == datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert iso_time("2025-04-28 12:00:38.631252") == datetime(2025, 4, 28, 12, 0, 38, 631252, tzinfo=UTC)
    assert iso_time("2024-03-01T12:00:05+02:00") == datetime(2024, 3, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert iso_time("yesterday") is None and iso_time(1700000000) is None
    assert parse_time("2016-08-14 10:13:54", "%Y-%m-%d %H:%M:%S") == datetime(2016, 8, 14, 10, 13, 54, tzinfo=UTC)
    assert parse_time("", "%Y-%m-%d %H:%M:%S") is None and parse_time(None, "%Y") is None


def test_numeric_settings() -> None:
    assert number_setting({"timeout": "2.5"}, "plivo", "timeout", 10.0) == 2.5
    assert number_setting({}, "plivo", "timeout", 10.0) == 10.0
    with pytest.raises(ConfigError, match=r"providers\.plivo\.timeout must be a number"):
        number_setting({"timeout": "soon"}, "plivo", "timeout", 10.0)
