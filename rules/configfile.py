"""Finding the rules in a configuration file.

The configuration holds the rules inline (``rules:``, a list) or points at a separate file
(``rules_file:``, relative to the configuration's folder) that holds a list or a mapping with
``rules:``; with neither, the shipped default rules apply. Only the keys the rule engine needs are
read here (``rules``, ``rules_file``, ``compliance.allow_no_opt_out``, ``templates``); the rest of the
configuration is left to its owner. The defaults match the gateway's own start-up, so ``rules check``
accepts exactly what the gateway would run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from rules.compiler import compile_rules
from rules.engine import RuleSet
from rules.validate import describe_type
from rules.yamlload import line_of, load_yaml_file

__all__ = [
    "DEFAULT_RULES_PATH",
    "RuleConfig",
    "compile_config",
    "load_default_rules",
    "read_rule_config",
    "read_rules_from_config",
    "rules_from_config_data",
]

#: The stock opt-out / opt-in / help rules shipped with the package.
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")


@dataclass(frozen=True)
class RuleConfig:
    """What `compile_rules` needs from a configuration file."""

    rules: list[Any]
    #: The file the rules were read from (the rules file when ``rules_file`` is used).
    filename: str
    allow_no_opt_out: bool = False
    #: Template names replies may use (None: do not check).
    templates: frozenset[str] | None = None

    def compile(self) -> RuleSet:
        """Compile these rules; raises `RuleSetError` listing every problem."""
        return compile_rules(
            self.rules,
            filename=self.filename,
            allow_no_opt_out=self.allow_no_opt_out,
            templates=self.templates,
        )


def _fail(filename: str, line: int | None, message: str) -> ConfigError:
    return ConfigError(f"{filename}:{line}: {message}" if line else f"{filename}: {message}")


def rules_from_config_data(config: object, config_path: str | Path) -> RuleConfig:
    """Extract the rule settings from an already loaded configuration mapping.

    ``config_path`` names the file in errors and anchors a relative ``rules_file``. For callers that
    load the configuration themselves (with `load_yaml`, to keep line numbers).
    """
    name = str(config_path)
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise _fail(
            name, line_of(config), f"the configuration must be a mapping, not {describe_type(config)}"
        )
    if config.get("rules") is not None and config.get("rules_file") is not None:
        raise _fail(name, line_of(config, "rules_file"), "give either rules or rules_file, not both")

    rules: object = config.get("rules")
    filename = name
    if rules is None and config.get("rules_file") is None:
        rules, filename = load_default_rules(), str(DEFAULT_RULES_PATH)
    elif config.get("rules_file") is not None:
        rules_file = config["rules_file"]
        if not isinstance(rules_file, str) or not rules_file.strip():
            raise _fail(
                name,
                line_of(config, "rules_file"),
                f"rules_file must be a path, not {describe_type(rules_file)}",
            )
        path = Path(config_path).parent / rules_file
        filename = str(path)
        rules = load_yaml_file(path)
        if isinstance(rules, Mapping):
            extra = [key for key in rules if key != "rules"]
            if extra:
                raise _fail(filename, line_of(rules, extra[0]), f"unknown key {extra[0]!r}; expected rules")
            rules = rules.get("rules")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _fail(filename, line_of(rules), f"rules must be a list of rules, not {describe_type(rules)}")

    compliance = config.get("compliance")
    allow_no_opt_out = False
    if compliance is not None:
        if not isinstance(compliance, Mapping):
            raise _fail(
                name,
                line_of(config, "compliance"),
                f"compliance must be a mapping, not {describe_type(compliance)}",
            )
        allow_no_opt_out = compliance.get("allow_no_opt_out", False)
        if not isinstance(allow_no_opt_out, bool):
            raise _fail(
                name,
                line_of(compliance, "allow_no_opt_out"),
                f"compliance.allow_no_opt_out must be true or false, not {describe_type(allow_no_opt_out)}",
            )

    templates = config.get("templates")
    if templates is None:
        # The gateway's built-in templates apply when the configuration defines none.
        from gateway.config import DEFAULT_TEMPLATES

        templates = DEFAULT_TEMPLATES
    elif not isinstance(templates, Mapping):
        raise _fail(
            name, line_of(config, "templates"), f"templates must be a mapping, not {describe_type(templates)}"
        )
    return RuleConfig(rules, filename, allow_no_opt_out, frozenset(str(key) for key in templates))


def read_rule_config(path: str | Path) -> RuleConfig:
    """Load a configuration file and return its rule settings. Raises `ConfigError`."""
    return rules_from_config_data(load_yaml_file(path), path)


def read_rules_from_config(path: str | Path) -> tuple[list[Any], str]:
    """The raw rules list of a configuration file and the file name they came from.

    The name is the rules file's when the configuration uses ``rules_file``; pass it to
    `compile_rules` as ``filename`` so problems point at the right file.
    """
    config = read_rule_config(path)
    return config.rules, config.filename


def compile_config(path: str | Path) -> RuleSet:
    """Load a configuration file and compile its rules with its compliance and template settings."""
    return read_rule_config(path).compile()


def load_default_rules() -> list[Any]:
    """The raw stock rules (``opt-out``, ``opt-in``, ``help``) as a list, with line numbers."""
    rules = load_yaml_file(DEFAULT_RULES_PATH)
    if not isinstance(rules, list):
        raise ConfigError(f"{DEFAULT_RULES_PATH.name}: expected a list of rules")
    return rules
