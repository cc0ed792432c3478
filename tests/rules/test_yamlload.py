"""load_yaml(): line numbers, strictness and hostile documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from rules import LineDict, LineList, load_yaml, load_yaml_file
from rules.yamlload import MAX_ALIASES, line_of


def test_mappings_and_lists_remember_their_lines() -> None:
    data = load_yaml("a: 1\nrules:\n  - name: x\n    match: {exact: [STOP]}\n  - name: y\n", "c.yaml")
    assert isinstance(data, LineDict) and data.line == 1
    assert data == {"a": 1, "rules": [{"name": "x", "match": {"exact": ["STOP"]}}, {"name": "y"}]}
    rules = data["rules"]
    assert isinstance(rules, LineList)
    assert [rule.line for rule in rules] == [3, 5]
    assert rules.item_lines == [3, 5]
    assert rules[0]["match"].line == 4
    assert data.key_lines == {"a": 1, "rules": 2}
    assert line_of(rules[0], "match") == 4
    assert line_of({"plain": "dict"}, default=7) == 7


def test_only_true_and_false_are_booleans() -> None:
    data = load_yaml("[YES, yes, no, on, off, true, FALSE, True]", "c.yaml")
    assert data == ["YES", "yes", "no", "on", "off", True, False, True]


def test_other_scalars_load_as_usual() -> None:
    assert load_yaml("{n: 3, f: 1.5, s: text, z: null}", "c.yaml") == {
        "n": 3,
        "f": 1.5,
        "s": "text",
        "z": None,
    }


def test_empty_document_is_none() -> None:
    assert load_yaml("", "c.yaml") is None
    assert load_yaml("# only a comment\n", "c.yaml") is None


def test_merge_keys_may_be_overridden() -> None:
    data = load_yaml("base: &b {k: 1, j: 2}\nm:\n  <<: *b\n  k: 3\n", "c.yaml")
    assert data["m"] == {"k": 3, "j": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 2\na: 3\n", "c.yaml:3:1: duplicate key 'a' (first on line 1)"),
        (
            "a: [1, 2\n",
            "c.yaml:2:1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence",
        ),
        ("a: b: c\n", "c.yaml:1:5: mapping values are not allowed here"),
        ("a: *nowhere\n", "c.yaml:1:4: found undefined alias 'nowhere'"),
        ("---\na\n---\nb\n", "c.yaml:3:1: but found another document"),
        ("? [1]\n: 2\n", "c.yaml:1:3: found unhashable key"),
        ("a:\n\t- b\n", "c.yaml:2:1: found character '\\t' that cannot start any token"),
    ],
)
def test_syntax_errors_name_file_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "c.yaml")
    assert str(caught.value).startswith(expected)


def test_billion_laughs_is_refused() -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        levels.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    text = "\n".join(levels) + "\n"
    assert text.count("*") <= MAX_ALIASES  # so it is the expansion check that refuses it
    with pytest.raises(ConfigError, match="aliases expand to more than 100000 extra nodes"):
        load_yaml(text, "bomb.yaml")


def test_too_many_aliases_are_refused() -> None:
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match=r"bomb.yaml:2:\d+: too many aliases"):
        load_yaml(text, "bomb.yaml")


def test_a_few_aliases_are_fine() -> None:
    data = load_yaml("words: &w [STOP, END]\nrules: [{exact: *w}, {starts_with: *w}]\n", "c.yaml")
    assert data["rules"][1]["starts_with"] == ["STOP", "END"]


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n", "c.yaml")


def test_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_yaml("[" * 20_000 + "]" * 20_000, "c.yaml")


def test_python_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system [echo hi]\n", "c.yaml")


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    assert load_yaml_file(path) == {"a": 1}
    with pytest.raises(ConfigError, match=r"missing\.yaml: file not found"):
        load_yaml_file(tmp_path / "missing.yaml")
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_yaml_file(path)
