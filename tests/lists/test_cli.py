"""The command line: contacts import with progress and rejects file, list cleaning, opt-out and ledger
exports, campaigns."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from tests.conftest import TEST_ENV, base_config
from tests.lists.helpers import opt_out


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``optout ARGS`` against the test database; returns (exit code, stdout, stderr)."""
    path = tmp_path / "config.yaml"
    cfg = base_config(db_url)
    cfg["compliance"] = {"operator_resubscribe": "with_reason"}
    path.write_text(yaml.safe_dump(cfg))
    for key, value in TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, ["--config", str(path), *args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def test_import_with_progress_and_rejects_file(cli: Any, tmp_path: Path) -> None:
    assert cli("lists", "create", "Customers")[0] == 0
    source = tmp_path / "people.csv"
    source.write_text("Mobile,Name\n(415) 555-0100,Ann\nnope,Bob\n4155550101,Cy\n4155550100,Annie\n")
    code, out, err = cli("contacts", "import", str(source), "--list", "Customers", "--map", "Name=first_name")
    assert code == 0, err
    assert "4 rows: 2 created, 0 updated, 1 duplicates merged, 0 skipped (opted out), 1 rejected" in out
    assert "importing" in err, "the progress bar goes to stderr"
    rejects = list(csv.reader((tmp_path / "people.rejects.csv").open()))
    assert rejects == [["row", "column", "value", "reason"], ["3", "Mobile", "nope", "invalid phone"]]
    code, out, _ = cli("contacts", "list", "--list", "Customers")
    assert out.splitlines() == ["1\t+14155550100\t-\tAnnie", "2\t+14155550101\t-\tCy"]


def test_import_skips_opted_out_and_clean_removes_them(cli: Any, tmp_path: Path, gw: Any) -> None:
    cli("lists", "create", "Customers")
    opt_out(gw, "+14155550100", scope="*")
    source = tmp_path / "people.csv"
    source.write_text("phone\n4155550100\n4155550101\n")
    code, out, _ = cli("contacts", "import", str(source), "--list", "Customers", "--no-progress")
    assert "1 skipped (opted out)" in out and not (tmp_path / "people.rejects.csv").exists()
    code, out, _ = cli("contacts", "import", str(source), "--list", "Customers", "--include-opted-out",
                       "--no-progress")
    assert "0 skipped (opted out)" in out
    code, out, _ = cli("lists", "clean", "Customers")
    assert code == 0 and out.strip() == "removed 1 opted-out contacts from 'Customers'"
    code, out, err = cli("lists", "delete", "Opt-Out List")
    assert code == 2 and "maintained by the gateway" in err


def test_opt_outs_and_ledger_export(cli: Any, tmp_path: Path) -> None:
    source = tmp_path / "old.csv"
    source.write_text("phone,opted_out_at,reason\n4155550100,2024-01-01T00:00:00Z,old system\n4155550101,,\n")
    code, out, _ = cli("opt-outs", "import", str(source), "--channel", "sms", "--no-progress")
    assert code == 0 and "2 rows: 2 recorded (2 newly opted out), 0 rejected" in out
    assert cli("opt-outs", "add", "ann@example.com", "--channel", "email", "--reason", "web form")[1].strip() == (
        "opted out")
    code, out, _ = cli("opt-outs", "list", "--channel", "sms")
    assert [line.split("\t")[:4] for line in out.splitlines()] == [
        ["sms", "+14155550100", "*", "import"], ["sms", "+14155550101", "*", "import"]]
    code, out, _ = cli("opt-outs", "export", "--format", "jsonl", "--source", "cli")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["address"] == "ann@example.com" and row["scope"] == "*"
    code, out, err = cli("opt-outs", "remove", "+14155550101", "--channel", "sms", "--reason", "signed form")
    assert code == 0, err
    code, out, err = cli("ledger", "export", "--format", "csv")
    events = list(csv.DictReader(out.splitlines()))
    assert "4 events exported" in err
    assert [(e["address"], e["action"], e["source"]) for e in events] == [
        ("+14155550100", "opt_out", "import"), ("+14155550101", "opt_out", "import"),
        ("ann@example.com", "opt_out", "cli"), ("+14155550101", "opt_in", "cli")]
    assert list(events[0]) == ["id", "occurred_at", "recorded_at", "channel", "address", "scope", "action",
                               "changed", "source", "rule", "raw_text", "provider", "provider_message_id",
                               "reason", "actor", "evidence"]
    assert events[0]["occurred_at"].startswith("2024-01-01T00:00:00") and events[0]["reason"] == "old system"
    assert json.loads(events[0]["evidence"])["file"] == "old.csv"
    assert events[3]["reason"] == "signed form" and events[3]["actor"].startswith("cli")
    code, out, _ = cli("ledger", "export", "--format", "jsonl", "--since", events[2]["occurred_at"])
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["opt_out", "opt_in"]
    code, out, err = cli("ledger", "export", "--since", "last week")
    assert code == 2 and "since" in err


def test_campaign_commands(cli: Any, tmp_path: Path) -> None:
    cli("lists", "create", "Customers")
    cli("contacts", "add", "--phone", "4155550100", "--list", "Customers")
    code, out, err = cli("campaigns", "create", "--name", "Sale", "--list", "Customers", "--body", "Sale today",
                         "--from", "+14155550199", "--send-at", "2030-01-01T09:00:00Z")
    assert code == 0, err
    assert "campaign 1 scheduled for 2030-01-01 09:00:00 UTC: 1 GSM-7 segment(s) (opt-out footer appended)" in out
    code, out, _ = cli("campaigns", "show", "1")
    shown = json.loads(out)
    assert shown["status"] == "scheduled" and shown["counts"]["queued"] == 0
    assert cli("campaigns", "pause", "1")[1].strip() == "campaign 1 paused"
    assert cli("campaigns", "resume", "1")[1].strip() == "campaign 1 scheduled"
    assert cli("campaigns", "cancel", "1")[1].strip() == "campaign 1 cancelled"
    code, _, err = cli("campaigns", "resume", "1")
    assert code != 0 and "cancelled, not paused" in err
    assert cli("campaigns", "list")[1].split("\t")[:2] == ["1", "cancelled"]
    code, _, err = cli("campaigns", "create", "--name", "X", "--list", "Customers", "--body", "é" * 2000)
    assert code == 2 and "segments" in err
