"""CSV import: normalisation, merging, rejects with row numbers, opted-out people skipped, batches."""

from __future__ import annotations

import io
from typing import Any

import pytest

from gateway.importer import Reject, import_csv
from tests.lists.helpers import api, make_contact, make_list, opt_out

CSV = (
    "Mobile,Email,First Name,Surname,Plan\n"
    "(415) 555-0100,ann@example.com,Ann,Lee,gold\n"
    "415.555.0101,,Bob,,\n"
    "12,bad@example.com,Short,,\n"  # row 4: invalid phone
    ",nophone@example.com,No,Phone,\n"  # row 5: no phone
    "+1 415 555 0100,,Annie,,platinum\n"  # row 6: Ann again (merged)
    "4155550102,not-an-email,Cy,,\n"  # row 7: invalid email
)


def run(gw: Any, text: str, list_ref: Any = "Customers", **kwargs: Any) -> tuple[Any, list[Reject]]:
    rejects: list[Reject] = []
    report = import_csv(gw, io.BytesIO(text.encode("utf-8")), list_ref, on_reject=rejects.append, **kwargs)
    return report, rejects


def contacts(client: Any) -> dict[str, dict[str, Any]]:
    items = api(client, "get", "/api/v1/contacts?limit=1000").get_json()["items"]
    return {c["phone"] or c["email"]: c for c in items}


def test_import_normalises_merges_and_reports_every_reject(client: Any, gw: Any) -> None:
    list_id = make_list(client)
    report, rejects = run(gw, CSV)
    assert [(r.row, r.column, r.value, r.reason) for r in rejects] == [
        (4, "Mobile", "12", "invalid phone"),
        (5, "Mobile", "", "missing phone"),
        (7, "Email", "not-an-email", "invalid email"),
    ]
    assert report.rows == 6 and report.created == 2 and report.duplicates_merged == 1 and report.rejected == 3
    assert report.added_to_list == 2
    found = contacts(client)
    ann = found["+14155550100"]
    assert ann["email"] == "ann@example.com" and ann["first_name"] == "Annie" and ann["last_name"] == "Lee"
    assert ann["fields"] == {"Plan": "platinum"} and ann["lists"] == [list_id]
    assert found["+14155550101"]["first_name"] == "Bob"


def test_reimport_updates_instead_of_duplicating(client: Any, gw: Any) -> None:
    make_list(client)
    existing = make_contact(client, phone="+14155550100", first_name="Old", fields={"since": "2020"})
    report, rejects = run(gw, "phone,first_name,plan\n4155550100,New,gold\n4155550100,,silver\n")
    assert rejects == [] and report.created == 0 and report.updated == 1 and report.duplicates_merged == 1
    ann = contacts(client)["+14155550100"]
    assert ann["id"] == existing and ann["first_name"] == "New"
    assert ann["fields"] == {"since": "2020", "plan": "silver"}


def test_custom_fields_merge_per_column_and_short_rows_have_none(client: Any, gw: Any) -> None:
    make_list(client)
    text = 'phone,Plan,"Re\'gion ""x"""\n4155550100,gold,\n4155550100,,west\n4155550101\n4155550102,,\n'
    report, rejects = run(gw, text)
    assert rejects == [] and report.created == 3 and report.duplicates_merged == 1
    found = contacts(client)
    assert found["+14155550100"]["fields"] == {"Plan": "gold", 'Re\'gion "x"': "west"}
    assert found["+14155550101"]["fields"] == {} and found["+14155550102"]["fields"] == {}


def test_duplicates_across_batches_are_one_contact(client: Any, gw: Any) -> None:
    make_list(client)
    rows = "".join(f"415555{i % 7:04d}\n" for i in range(30))
    report, _ = run(gw, "phone\n" + rows, batch_size=4)
    assert report.rows == 30 and report.created == 7 and report.created + report.updated + report.duplicates_merged == 30
    assert report.added_to_list == 7 and report.already_in_list + report.added_to_list == 30 - report.duplicates_merged
    assert len(contacts(client)) == 7


def test_opted_out_people_are_skipped_unless_asked(client: Any, gw: Any) -> None:
    make_list(client, "Acme", scope="acme")
    opt_out(gw, "+14155550100", scope="acme")
    opt_out(gw, "+14155550101", scope="other-brand")  # another scope: not skipped for this list
    text = "phone\n4155550100\n4155550101\n4155550102\n"
    report, _ = run(gw, text, list_ref="Acme")
    assert report.skipped_opted_out == 1 and report.added_to_list == 2
    assert "+14155550100" not in contacts(client)
    kept, _ = run(gw, text, list_ref="Acme", include_opted_out=True)
    assert kept.skipped_opted_out == 0 and kept.added_to_list == 1
    assert "+14155550100" in contacts(client)


def test_email_list_keys_on_email_and_secondary_conflicts_are_rejected(client: Any, gw: Any) -> None:
    make_list(client, "Mail", channel="email")
    owner = make_contact(client, phone="+14155550100", email="owner@example.com")
    phone_only = make_contact(client, phone="+14155550177")
    text = (
        "email,phone\n"
        "NEW@example.com,4155550100\n"  # row 2: that phone belongs to another contact
        "joins@example.com,4155550177\n"  # row 3: the phone-only contact gains its email
        "a@example.com,4155550155\n"
        "b@example.com,4155550155\n"  # row 5: same phone as row 4 in this file
    )
    report, rejects = run(gw, text, list_ref="Mail")
    assert sorted((r.row, r.column) for r in rejects) == [(2, "phone"), (5, "phone")]
    assert f"contact {owner}" in next(r.reason for r in rejects if r.row == 2)
    found = contacts(client)
    assert found["+14155550177"]["email"] == "joins@example.com" and found["+14155550177"]["id"] == phone_only
    assert report.created == 1 and report.updated == 1


def test_mapping_and_header_errors(client: Any, gw: Any) -> None:
    make_list(client)
    report, _ = run(gw, "Tel,Note,Given\n4155550100,hello,Ann\n", mapping={"Tel": "phone", "Note": "ignore",
                                                                           "Given": "first_name"})
    assert report.created == 1
    ann = contacts(client)["+14155550100"]
    assert ann["first_name"] == "Ann" and ann["fields"] == {}
    from gateway.errors import PayloadError

    with pytest.raises(PayloadError) as no_phone:
        run(gw, "name\nAnn\n")
    assert no_phone.value.field == "map"
    with pytest.raises(PayloadError) as unknown:
        run(gw, "phone\n1\n", mapping={"Mobile": "phone"})
    assert "Mobile" in str(unknown.value)
    with pytest.raises(PayloadError):
        run(gw, "")


def test_bad_rows_never_disappear(client: Any, gw: Any) -> None:
    make_list(client)
    data = "phone,first_name\n4155550100,Ann\n4155550101,B\xffob\n4155550102,Cy,extra\n4155550103,Di,,\n"
    rejects: list[Reject] = []
    report = import_csv(gw, io.BytesIO(data.encode("latin-1")), "Customers", on_reject=rejects.append)
    assert [(r.row, r.reason) for r in rejects] == [(3, "not valid UTF-8 text"), (4, "3 values but the header has 2")]
    assert report.created == 2, "trailing empty values are tolerated"
    assert report.rows == report.created + report.rejected


def test_api_import_multipart_and_raw_csv(client: Any, gw: Any) -> None:
    list_id = make_list(client)
    opt_out(gw, "+14155550102", scope="*")
    upload = {"file": (io.BytesIO(CSV.encode()), "people.csv")}
    resp = api(client, "post", f"/api/v1/lists/{list_id}/import", data=upload,
               content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["created"] == 2 and body["rejected"] == 3
    assert [r["row"] for r in body["rejects"]] == [4, 5, 7]
    raw = api(client, "post", f"/api/v1/lists/{list_id}/import?map=Tel=phone", data="Tel\n4155550102\n4155550103\n",
              content_type="text/csv")
    assert raw.get_json()["skipped_opted_out"] == 1 and raw.get_json()["created"] == 1
    wrong = api(client, "post", f"/api/v1/lists/{list_id}/import", json={"file": "x"})
    assert wrong.status_code == 400 and wrong.get_json()["field"] == "file"
    system = api(client, "post", "/api/v1/lists/Opt-Out List/import", data="phone\n4155550104\n",
                 content_type="text/csv")
    assert system.status_code == 403


def test_import_upload_limit_is_separate_from_the_body_limit(config: dict[str, Any], env: Any) -> None:
    from gateway.app import create_app

    config["max_body_bytes"] = 1024
    config["max_import_bytes"] = 4096
    app = create_app(config, env)
    client = app.test_client()
    try:
        make_list(client)
        above_body_limit = "phone\n" + "".join(f"415555{i:04d}\n" for i in range(200))  # 2.2 kB
        ok = api(client, "post", "/api/v1/lists/Customers/import", data=above_body_limit, content_type="text/csv")
        assert ok.status_code == 200 and ok.get_json()["created"] == 200
        above_import_limit = "phone\n" + "".join(f"415555{i:04d}\n" for i in range(400))  # 4.4 kB
        too_big = api(client, "post", "/api/v1/lists/Customers/import", data=above_import_limit,
                      content_type="text/csv")
        assert too_big.status_code == 413
        json_body = api(client, "post", "/api/v1/contacts", json={"phone": "+14155550100", "first_name": "x" * 1200})
        assert json_body.status_code == 413, "other endpoints keep the small body limit"
    finally:
        app.extensions["optout"].db.dispose()


def test_cross_channel_policy_skips_people_opted_out_on_the_other_channel(config: dict[str, Any], env: Any) -> None:
    from gateway.app import create_app

    config["compliance"] = {"cross_channel": True}
    app = create_app(config, env)
    client, gw = app.test_client(), app.extensions["optout"]
    try:
        make_list(client)
        opt_out(gw, "ann@example.com", channel="email", scope="*")
        report, _ = run(gw, "phone,email\n4155550100,ann@example.com\n4155550101,bob@example.com\n")
        assert report.skipped_opted_out == 1 and report.created == 1
        assert "+14155550100" not in contacts(client)
    finally:
        gw.db.dispose()


def test_import_shortens_the_interpreter_switch_interval_while_it_runs(client: Any, gw: Any) -> None:
    import sys

    from gateway import importer

    make_list(client)
    before = sys.getswitchinterval()
    seen: list[float] = []
    text = io.BytesIO(b"phone\n12\n4155550100\n")
    report = import_csv(gw, text, "Customers", on_reject=lambda _: seen.append(sys.getswitchinterval()))
    assert report.rejected == 1 and seen == [min(before, importer._HANDOFF_SECONDS)]
    assert sys.getswitchinterval() == before
    # Overlapping imports: only the last one to finish restores the value.
    with importer._quick_handoff():
        with importer._quick_handoff():
            pass
        assert sys.getswitchinterval() == min(before, importer._HANDOFF_SECONDS)
    assert sys.getswitchinterval() == before


def test_overlong_names_are_rejected_with_their_column(client: Any, gw: Any) -> None:
    make_list(client)
    long = "x" * 201
    text = f"First,Last,Phone\n{long},,4155550100\nAnn,{long},4155550101\nBo,{'y' * 200},4155550102\n"
    report, rejects = run(gw, text)
    assert [(r.row, r.column, r.value, r.reason) for r in rejects] == [
        (2, "First", "x" * 50, "first_name longer than 200 characters"),
        (3, "Last", "x" * 50, "last_name longer than 200 characters"),
    ]
    assert report.created == 1 and contacts(client)["+14155550102"]["last_name"] == "y" * 200


def test_a_failed_batch_stops_the_import_and_the_batches_queued_behind_it(
    client: Any, gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import importer

    make_list(client)
    written: list[int] = []
    real_flush = importer._Importer.flush

    def flush(self: Any, batch: dict[str, Any]) -> None:
        written.append(len(batch))
        if len(written) == 2:
            raise RuntimeError("database went away")
        real_flush(self, batch)

    monkeypatch.setattr(importer._Importer, "flush", flush)
    rows = "".join(f"41555501{i:02d}\n" for i in range(40))
    with pytest.raises(RuntimeError, match="went away"):
        run(gw, "phone\n" + rows, batch_size=8)
    # Batches of 1, 2, 4, 8 ... rows: the first was stored, the second failed, nothing after it was tried.
    assert written == [1, 2]
    assert len(contacts(client)) == 1
