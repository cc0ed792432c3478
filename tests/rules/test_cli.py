"""The ``rules check`` and ``rules test`` commands, through click's test runner."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.errors import ConfigError
from rules import DEFAULT_RULES_PATH, read_rule_config, read_rules_from_config
from rules.cli import rules_cli

TEMPLATES = """
templates:
  opt_out: You are unsubscribed.
  opt_in: Welcome back.
  help: Reply STOP to stop.
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration using the shipped default rules through rules_file."""
    write(tmp_path, "rules.yaml", DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    return write(tmp_path, "config.yaml", "rules_file: rules.yaml\n" + TEMPLATES)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(rules_cli, list(args), env=env)
    return result.exit_code, result.output


def test_check_ok(config: Path) -> None:
    assert run("check", "--config", str(config)) == (0, "ok: 3 rules\n")


def test_check_counts_disabled_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        """
        rules:
          - name: out
            match: {exact: [STOP]}
            actions: [opt_out]
          - name: later
            enabled: false
            match: {any: true}
            actions: [stop]
        """,
    )
    assert run("check", "--config", str(path)) == (0, "ok: 2 rules (1 disabled)\n")


def test_check_reads_the_config_named_by_the_environment(config: Path) -> None:
    assert run("check", env={"OPTOUT_CONFIG": str(config)}) == (0, "ok: 3 rules\n")


def test_check_defaults_to_config_yaml_in_the_current_folder(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(config.parent)
    monkeypatch.delenv("OPTOUT_CONFIG", raising=False)
    assert run("check") == (0, "ok: 3 rules\n")


def test_check_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        """\
        rules:
          - name: out
            match: {exact: [STOP], exakt: [END]}
            actions: [opt_out, {reply: {template: missing}}]
          - name: bad-regex
            match: {regex: ['(?=x)']}
            actions: [stop]
        templates:
          opt_out: Bye.
        """,
    )
    code, output = run("check", "--config", str(path))
    assert code == 1
    assert output.splitlines() == [
        f"{path}:3: rule 'out': unknown key 'exakt' in match; did you mean 'exact'?",
        f"{path}:4: rule 'out': reply template 'missing' is not defined under templates (defined: opt_out)",
        f"{path}:6: rule 'bad-regex': invalid regex '(?=x)': invalid perl operator: (?=",
    ]


def test_check_names_the_rules_file_in_problems(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", "rules:\n  - name: x\n    match: {any: true}\n    actions: [bogus]\n")
    path = write(tmp_path, "config.yaml", "rules_file: rules.yaml\n")
    code, output = run("check", "--config", str(path))
    assert code == 1
    assert output.startswith(f"{tmp_path / 'rules.yaml'}:4: rule 'x': unknown action 'bogus'")


def test_check_enforces_the_compliance_floor_unless_allowed(tmp_path: Path) -> None:
    rules = "rules:\n  - name: help\n    match: {exact: [HELP]}\n    actions: [{reply: {text: hi}}]\n"
    path = write(tmp_path, "config.yaml", rules)
    code, output = run("check", "--config", str(path))
    assert code == 1 and "has an opt_out action" in output
    write(tmp_path, "config.yaml", rules + "compliance: {allow_no_opt_out: true}\n")
    assert run("check", "--config", str(path)) == (0, "ok: 1 rules\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n", ":2:1: expected the node content"),
        ("rules: {a: 1}\n", ":1: rules must be a list of rules, not a mapping"),
        ("rules: []\nrules_file: x.yaml\n", ":2: give either rules or rules_file, not both"),
        ("rules_file: nope.yaml\n", "nope.yaml: file not found"),
        ("- just a list\n", ":1: the configuration must be a mapping, not a list"),
        (
            "rules: []\ncompliance: {allow_no_opt_out: yes}\n",
            ":2: compliance.allow_no_opt_out must be true or false",
        ),
        ("rules: []\ntemplates: [a]\n", ":2: templates must be a mapping, not a list"),
    ],
)
def test_check_reports_config_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "config.yaml", text)
    code, output = run("check", "--config", str(path))
    assert code == 1
    assert expected in output


def test_without_rules_the_stock_rules_and_templates_apply(tmp_path: Path) -> None:
    # As at gateway start-up: no rules -> the shipped defaults; no templates -> the built-in ones.
    path = write(tmp_path, "config.yaml", "brand: Shop\n")
    assert run("check", "--config", str(path)) == (0, "ok: 3 rules\n")
    config = read_rule_config(path)
    assert config.filename == str(DEFAULT_RULES_PATH)
    assert config.templates == {"opt_out", "opt_in", "help"}


def test_reply_templates_are_checked_against_the_built_in_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        "rules:\n  - name: out\n    match: {exact: [STOP]}\n    actions: [opt_out, {reply: {template: bye}}]\n",
    )
    code, output = run("check", "--config", str(path))
    assert code == 1
    assert "reply template 'bye' is not defined under templates (defined: help, opt_in, opt_out)" in output


def test_check_missing_config(tmp_path: Path) -> None:
    code, output = run("check", "--config", str(tmp_path / "absent.yaml"))
    assert code == 1 and "absent.yaml: file not found" in output


def test_test_json_output_shape(config: Path) -> None:
    code, output = run("test", "--config", str(config), "--json", "STOP ALL", "hello")
    assert code == 0
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines == [
        {
            "text": "STOP ALL",
            "rule": "opt-out",
            "rules": ["opt-out"],
            "actions": [
                {"type": "opt_out", "rule": "opt-out", "all_scopes": True},
                {"type": "reply", "rule": "opt-out", "template": "opt_out", "text": None},
            ],
        },
        {"text": "hello", "rule": None, "rules": [], "actions": []},
    ]


def test_test_plain_output(config: Path) -> None:
    code, output = run("test", "--config", str(config), "Stop.", "yes", "bus stop")
    assert code == 0
    assert output.splitlines() == [
        "'Stop.' -> opt-out: opt_out(all_scopes=false), reply(template=\"opt_out\")",
        "'yes' -> opt-in: opt_in(all_scopes=false), reply(template=\"opt_in\")",
        "'bus stop' -> no rule matched",
    ]


def test_test_reads_messages_from_a_file(config: Path, tmp_path: Path) -> None:
    messages = write(tmp_path, "messages.txt", "STOP\n\nHELP\nnothing\n")
    code, output = run("test", "--config", str(config), "--json", "--file", str(messages))
    assert code == 0
    assert [json.loads(line)["rule"] for line in output.splitlines()] == ["opt-out", "help", None]


def test_test_uses_to_and_channel(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        """
        rules:
          - name: shop
            senders: ['+1 415 555 0100']
            channel: sms
            match: {exact: [STOP]}
            actions: [opt_out]
          - name: mail
            channel: email
            match: {any: true}
            actions: [stop]
        """,
    )
    base = ("test", "--config", str(path), "--json", "STOP")
    assert json.loads(run(*base, "--to", "+14155550100")[1])["rule"] == "shop"
    assert json.loads(run(*base, "--to", "+14155550199")[1])["rule"] is None
    assert json.loads(run(*base, "--channel", "email")[1])["rule"] == "mail"


@pytest.mark.parametrize("extra", [[], ["STOP", "--file", "-"]])
def test_test_needs_texts_or_a_file(config: Path, extra: list[str]) -> None:
    code, output = run("test", "--config", str(config), *extra)
    assert code == 2
    assert "TEXT arguments or with --file" in output


def test_test_fails_on_invalid_rules(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", "rules: [{name: x}]\ncompliance: {allow_no_opt_out: true}\n")
    code, output = run("test", "--config", str(path), "STOP")
    assert code == 1 and "rule 'x': match is required" in output


def test_read_rules_from_config(config: Path, tmp_path: Path) -> None:
    raw, filename = read_rules_from_config(config)
    assert filename == str(tmp_path / "rules.yaml")
    assert [rule["name"] for rule in raw] == ["opt-out", "opt-in", "help"]
    inline = write(tmp_path, "inline.yaml", "rules:\n  - name: a\n")
    assert read_rules_from_config(inline) == ([{"name": "a"}], str(inline))
    with pytest.raises(ConfigError):
        read_rules_from_config(tmp_path / "absent.yaml")
