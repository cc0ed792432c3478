"""Every /api/v1 endpoint is in /openapi.json with its request and response schemas."""

from __future__ import annotations

import re
from typing import Any


def test_every_api_route_is_documented(app: Any, client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in doc["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_list_and_campaign_endpoints_carry_their_schemas(client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    create = paths["/api/v1/campaigns"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CampaignIn")
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/CampaignOut")
    assert "400" in create["responses"] and "401" in create["responses"]
    assert set(schemas["CampaignIn"]["required"]) == {"name", "list", "body"}
    assert "opted_out_since" in schemas["CampaignCounts"]["properties"]
    imported = paths["/api/v1/lists/{list_ref}/import"]["post"]
    assert "multipart/form-data" in imported["requestBody"]["content"]
    assert {p["name"] for p in imported["parameters"]} >= {"list_ref", "include_opted_out", "map"}
    listed = paths["/api/v1/opt-outs"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"channel", "scope", "source", "since", "until", "cursor"}
    for name in ("ContactOut", "ListOut", "ImportResult", "ConsentEventOut", "OptOutPage", "Changes"):
        assert name in schemas
