"""The rule engine: YAML rules that turn an inbound message into actions (opt out, reply, ...).

Typical use::

    ruleset = compile_rules(raw_rules, filename="config.yaml", templates=config_templates)
    actions = evaluate(ruleset, message)   # pure; the gateway performs the actions

Compile once at start-up (or reload) and share the immutable `RuleSet`.
"""

from __future__ import annotations

from rules.actions import (
    ACTION_TYPES,
    Action,
    AddToList,
    Forward,
    MoveContact,
    OptIn,
    OptOut,
    RemoveFromList,
    Reply,
    Stop,
)
from rules.compiler import compile_rules
from rules.configfile import (
    DEFAULT_RULES_PATH,
    RuleConfig,
    compile_config,
    load_default_rules,
    read_rule_config,
    read_rules_from_config,
    rules_from_config_data,
)
from rules.engine import CompiledRule, Firing, RuleSet, action_to_dict, evaluate, explain
from rules.errors import RuleSetError
from rules.normalize import normalize, words
from rules.yamlload import LineDict, LineList, load_yaml, load_yaml_file

__all__ = [
    "ACTION_TYPES",
    "DEFAULT_RULES_PATH",
    "Action",
    "AddToList",
    "CompiledRule",
    "Firing",
    "Forward",
    "LineDict",
    "LineList",
    "MoveContact",
    "OptIn",
    "OptOut",
    "RemoveFromList",
    "Reply",
    "RuleConfig",
    "RuleSet",
    "RuleSetError",
    "Stop",
    "action_to_dict",
    "compile_config",
    "compile_rules",
    "evaluate",
    "explain",
    "load_default_rules",
    "load_yaml",
    "load_yaml_file",
    "normalize",
    "read_rule_config",
    "read_rules_from_config",
    "rules_from_config_data",
    "words",
]
