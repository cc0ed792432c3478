"""Contacts and lists over the REST API: CRUD, membership moves, duplicates, cleaning, the Opt-Out List."""

from __future__ import annotations

from typing import Any

from tests.lists.helpers import api, make_contact, make_list, member_ids, opt_out


def test_contact_crud_normalises_and_merges_fields(client: Any) -> None:
    list_id = make_list(client)
    resp = api(client, "post", "/api/v1/contacts", json={
        "phone": "(415) 555-0100", "email": "Ann@Example.COM", "first_name": "Ann",
        "fields": {"tier": "gold", "city": "SF"}, "lists": [list_id]})
    assert resp.status_code == 201
    created = resp.get_json()
    assert created["phone"] == "+14155550100" and created["email"] == "ann@example.com"
    assert created["lists"] == [list_id]
    cid = created["id"]
    patched = api(client, "patch", f"/api/v1/contacts/{cid}",
                  json={"last_name": "Lee", "fields": {"tier": "silver", "city": None}}).get_json()
    assert patched["last_name"] == "Lee" and patched["first_name"] == "Ann"
    assert patched["fields"] == {"tier": "silver"}
    assert api(client, "get", f"/api/v1/contacts/{cid}").get_json()["fields"] == {"tier": "silver"}
    assert api(client, "delete", f"/api/v1/contacts/{cid}").status_code == 204
    gone = api(client, "get", f"/api/v1/contacts/{cid}")
    assert gone.status_code == 404 and gone.mimetype == "application/problem+json"
    assert gone.get_json()["type"].endswith("/not_found")


def test_contact_validation_and_conflicts_name_the_field(client: Any) -> None:
    bad_phone = api(client, "post", "/api/v1/contacts", json={"phone": "12"})
    assert bad_phone.status_code == 400 and bad_phone.get_json()["field"] == "phone"
    bad_email = api(client, "post", "/api/v1/contacts", json={"email": "not-an-email"})
    assert bad_email.status_code == 400 and bad_email.get_json()["field"] == "email"
    nothing = api(client, "post", "/api/v1/contacts", json={"first_name": "Nobody"})
    assert nothing.status_code == 400 and nothing.get_json()["field"] == "phone"
    unknown = api(client, "post", "/api/v1/contacts", json={"phone": "+14155550100", "colour": "red"})
    assert unknown.status_code == 400 and unknown.get_json()["field"] == "colour"
    make_contact(client, phone="+14155550100")
    dup = api(client, "post", "/api/v1/contacts", json={"phone": "415-555-0100"})
    assert dup.status_code == 409 and dup.get_json()["type"].endswith("/conflict")


def test_deleting_a_contact_keeps_its_opt_out(client: Any, gw: Any) -> None:
    cid = make_contact(client, phone="+14155550100")
    opt_out(gw, "+14155550100")
    api(client, "delete", f"/api/v1/contacts/{cid}")
    status = api(client, "get", "/api/v1/opt-outs/sms/+14155550100").get_json()
    assert status["opted_out"] is True


def test_list_crud_and_paging(client: Any) -> None:
    list_id = make_list(client, "Newsletter", channel="email", scope="acme")
    ids = [make_contact(client, email=f"p{i}@example.com") for i in range(5)]
    assert api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids}).get_json() == {"count": 5}
    again = api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids[:2]})
    assert again.get_json() == {"count": 0}
    first = api(client, "get", f"/api/v1/lists/{list_id}/contacts?limit=2").get_json()
    second = api(client, "get", f"/api/v1/lists/{list_id}/contacts?limit=2&cursor={first['next_cursor']}").get_json()
    third = api(client, "get", f"/api/v1/lists/{list_id}/contacts?limit=2&cursor={second['next_cursor']}").get_json()
    seen = [c["id"] for page in (first, second, third) for c in page["items"]]
    assert seen == ids and third["next_cursor"] is None
    by_name = api(client, "get", "/api/v1/lists/Newsletter").get_json()
    assert by_name["members"] == 5 and by_name["scope"] == "acme" and by_name["channel"] == "email"
    renamed = api(client, "patch", f"/api/v1/lists/{list_id}", json={"name": "Weekly"}).get_json()
    assert renamed["name"] == "Weekly"
    assert api(client, "post", "/api/v1/lists", json={"name": "Weekly"}).status_code == 409
    assert api(client, "post", f"/api/v1/lists/{list_id}/contacts/remove",
               json={"contact_ids": ids[:3]}).get_json() == {"count": 3}
    assert api(client, "delete", f"/api/v1/lists/{list_id}").status_code == 204
    assert api(client, "get", f"/api/v1/lists/{list_id}").status_code == 404
    assert api(client, "get", f"/api/v1/contacts/{ids[0]}").status_code == 200, "contacts outlive their list"


def test_adding_a_missing_contact_is_404_and_bad_paging_is_400(client: Any) -> None:
    list_id = make_list(client)
    missing = api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": [999]})
    assert missing.status_code == 404
    assert api(client, "get", "/api/v1/contacts?limit=0").get_json()["field"] == "limit"
    assert api(client, "get", "/api/v1/contacts?cursor=abc").get_json()["field"] == "cursor"


def test_copy_and_move_between_lists(client: Any) -> None:
    a, b = make_list(client, "A"), make_list(client, "B")
    ids = [make_contact(client, phone=f"+1415555010{i}") for i in range(4)]
    api(client, "post", f"/api/v1/lists/{a}/contacts", json={"contact_ids": ids})
    api(client, "post", f"/api/v1/lists/{b}/contacts", json={"contact_ids": ids[:1]})
    copied = api(client, "post", f"/api/v1/lists/{a}/copy", json={"to": "B"}).get_json()
    assert copied == {"count": 3}, "one was already in B"
    assert sorted(member_ids(client, b)) == ids and sorted(member_ids(client, a)) == ids
    c = make_list(client, "C")
    moved = api(client, "post", f"/api/v1/lists/{a}/move", json={"to": c, "contact_ids": ids[2:]}).get_json()
    assert moved == {"count": 2}
    assert member_ids(client, a) == ids[:2] and member_ids(client, c) == ids[2:]
    same = api(client, "post", f"/api/v1/lists/{a}/move", json={"to": a})
    assert same.status_code == 400 and same.get_json()["field"] == "to"


def test_remove_duplicates_keeps_the_oldest(client: Any) -> None:
    list_id = make_list(client)
    first = make_contact(client, phone="+14155550100", first_name="Ann", last_name="Lee")
    second = make_contact(client, phone="+14155550101", first_name="ann", last_name="LEE")
    other = make_contact(client, phone="+14155550102", first_name="Ann", last_name="Kim")
    nameless = [make_contact(client, phone=f"+1415555020{i}") for i in range(2)]
    custom = [make_contact(client, phone=f"+1415555030{i}", fields={"customer": "42"}) for i in range(2)]
    api(client, "post", f"/api/v1/lists/{list_id}/contacts",
        json={"contact_ids": [first, second, other, *nameless, *custom]})
    by_name = api(client, "post", f"/api/v1/lists/{list_id}/remove-duplicates",
                  json={"fields": ["first_name", "last_name"]}).get_json()
    assert by_name == {"count": 1}
    by_field = api(client, "post", f"/api/v1/lists/{list_id}/remove-duplicates",
                   json={"fields": ["fields.customer"]}).get_json()
    assert by_field == {"count": 1}
    assert member_ids(client, list_id) == [first, other, *nameless, custom[0]]
    bad = api(client, "post", f"/api/v1/lists/{list_id}/remove-duplicates", json={"fields": ["shoe_size"]})
    assert bad.status_code == 400 and bad.get_json()["field"] == "fields"


def test_remove_opted_out_respects_channel_and_scope(client: Any, gw: Any) -> None:
    any_scope = make_list(client, "Any")
    acme = make_list(client, "Acme only", scope="acme")
    ids = [make_contact(client, phone=f"+1415555010{i}", email=f"p{i}@example.com") for i in range(5)]
    for list_id in (any_scope, acme):
        api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids})
    opt_out(gw, "+14155550100", scope="acme")
    opt_out(gw, "+14155550101", scope="*")
    opt_out(gw, "+14155550102", scope="other-brand")
    opt_out(gw, "p3@example.com", scope="*", channel="email")  # another channel: not an SMS opt-out
    assert api(client, "post", f"/api/v1/lists/{acme}/remove-opted-out").get_json() == {"count": 2}
    assert member_ids(client, acme) == [ids[2], ids[3], ids[4]]
    assert api(client, "post", "/api/v1/lists/Any/remove-opted-out").get_json() == {"count": 3}
    assert member_ids(client, any_scope) == [ids[3], ids[4]]


def test_cross_channel_policy_cleans_the_other_channel_too(config: dict[str, Any], env: Any) -> None:
    from gateway.app import create_app

    config["compliance"] = {"cross_channel": True}
    app = create_app(config, env)
    client, gw = app.test_client(), app.extensions["optout"]
    try:
        list_id = make_list(client)
        ids = [make_contact(client, phone=f"+1415555010{i}", email=f"p{i}@example.com") for i in range(2)]
        api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": ids})
        opt_out(gw, "p0@example.com", scope="*", channel="email")
        assert api(client, "post", f"/api/v1/lists/{list_id}/remove-opted-out").get_json() == {"count": 1}
    finally:
        gw.db.dispose()


def test_opt_out_list_is_a_read_only_view_of_opt_outs(client: Any, gw: Any) -> None:
    cid = make_contact(client, phone="+14155550100", first_name="Ann")
    opt_out(gw, "+14155550100")
    opt_out(gw, "+14155550199", scope="*")
    opt_out(gw, "bob@example.com", channel="email", scope="*", source="email_link")
    lists = api(client, "get", "/api/v1/lists").get_json()["items"]
    [system] = [item for item in lists if item["system"]]
    assert system["name"] == "Opt-Out List" and system["members"] == 3
    page = api(client, "get", f"/api/v1/lists/{system['id']}/contacts").get_json()
    entries = {(e["channel"], e["address"]): e for e in page["items"]}
    assert entries[("sms", "+14155550100")]["contact_id"] == cid
    assert entries[("sms", "+14155550100")]["first_name"] == "Ann"
    assert entries[("sms", "+14155550199")]["contact_id"] is None
    assert entries[("email", "bob@example.com")]["source"] == "email_link"
    other = make_list(client)
    for method, path, body in [
        ("delete", f"/api/v1/lists/{system['id']}", None),
        ("patch", f"/api/v1/lists/{system['id']}", {"name": "Mine"}),
        ("post", f"/api/v1/lists/{system['id']}/contacts", {"contact_ids": [cid]}),
        ("post", f"/api/v1/lists/{system['id']}/contacts/remove", {"contact_ids": [cid]}),
        ("post", f"/api/v1/lists/{other}/copy", {"to": system["id"]}),
        ("post", "/api/v1/contacts", {"phone": "+14155550111", "lists": [system["id"]]}),
    ]:
        resp = api(client, method, path, json=body)
        assert resp.status_code == 403, (method, path)
        assert resp.get_json()["type"].endswith("/system_list")
    assert api(client, "get", "/api/v1/lists/Opt-Out List").get_json()["members"] == 3


def test_contacts_search_and_list_filter(client: Any) -> None:
    list_id = make_list(client)
    ann = make_contact(client, phone="+14155550100", first_name="Ann")
    make_contact(client, phone="+14155550101", first_name="Bob")
    api(client, "post", f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": [ann]})
    assert [c["id"] for c in api(client, "get", "/api/v1/contacts?q=an").get_json()["items"]] == [ann]
    assert [c["id"] for c in api(client, "get", "/api/v1/contacts?list=Customers").get_json()["items"]] == [ann]
