"""Safe YAML loading that remembers line numbers and refuses hostile documents.

Used for the rule files and for ``config.yaml`` itself, so every configuration error can point at a
file and line. Differences from ``yaml.safe_load``, each deliberate:

* Mappings load as `LineDict` and sequences as `LineList`, plain ``dict``/``list`` subclasses that also
  carry the 1-based line where they start (and where each key or item starts).
* Duplicate keys in one mapping are an error: PyYAML would silently keep the last one, hiding typos.
* Only ``true``/``false`` (any case style YAML 1.2 allows) are booleans. YAML 1.1 also reads ``yes``,
  ``no``, ``on`` and ``off`` as booleans, which would turn the opt-in keyword ``YES`` into ``True``.
* Alias-heavy documents ("billion laughs") are refused before anything walks them, as are recursive
  ones.
* Every problem is a `gateway.errors.ConfigError` reading ``file:line:col: message``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from gateway.errors import ConfigError

__all__ = [
    "MAX_ALIASES",
    "MAX_ALIAS_EXPANSION",
    "LineDict",
    "LineList",
    "line_of",
    "load_yaml",
    "load_yaml_file",
]

#: A hand-written configuration has no reason to use more aliases than this.
MAX_ALIASES = 100
#: How many nodes aliases may add on top of the document's own nodes once expanded.
MAX_ALIAS_EXPANSION = 100_000

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class LineDict(dict[Any, Any]):
    """A mapping loaded from YAML: a normal ``dict`` plus where it came from.

    ``line`` is the 1-based line of the mapping's first key (0 when built in code); ``key_lines`` maps
    each key to the line it was written on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Hashable, int] = {}


class LineList(list[Any]):
    """A sequence loaded from YAML: a normal ``list`` plus its line and each item's line (1-based)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.item_lines: list[int] = []


def line_of(value: object, key: object = None, default: int | None = None) -> int | None:
    """The source line of ``value`` (or of ``value[key]``) when it was loaded by `load_yaml`.

    ``key`` is a mapping key or a list index. Returns ``default`` for values built in code.
    """
    if isinstance(value, LineDict):
        if key is not None and key in value.key_lines:
            return value.key_lines[key]
        return value.line or default
    if isinstance(value, LineList):
        if isinstance(key, int) and 0 <= key < len(value.item_lines):
            return value.item_lines[key]
        return value.line or default
    return default


class _Loader(yaml.SafeLoader):
    """SafeLoader with line-tracking containers, duplicate-key checks and alias limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_count = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Count aliases as they are composed, so a bomb is refused before it is expanded."""
        if self.check_event(AliasEvent):
            self._alias_count += 1
            if self._alias_count > MAX_ALIASES:
                event = self.peek_event()
                raise ComposerError(
                    None, None, f"too many aliases (more than {MAX_ALIASES})", event.start_mark
                )
        return super().compose_node(parent, index)

    def get_single_node(self) -> Node | None:
        """Compose the document, then refuse it if its aliases expand too far or loop."""
        node = super().get_single_node()
        if node is not None and self._alias_count:
            _check_expansion(node)
        return node


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Raise when expanding aliases would add more than `MAX_ALIAS_EXPANSION` nodes, or never end.

    Sizes are memoised per node, so this costs one pass over the distinct nodes however large the
    expansion would be. The walk is iterative because documents can nest deeper than Python recursion.
    """
    expanded: dict[int, int] = {}  # node id -> size with aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(expanded[id(child)] for child in _children(node))
            # The distinct nodes seen so far bound this subtree's alias-free size from above, so
            # exceeding them by the limit already proves the whole document does.
            if size > len(expanded) + 1 + MAX_ALIAS_EXPANSION:
                raise ComposerError(
                    None,
                    None,
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra nodes",
                    node.start_mark,
                )
            expanded[key] = size
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise ComposerError(None, None, "recursive alias (a node contains itself)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _construct_map(loader: _Loader, node: MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.line = node.start_mark.line + 1
    # Yield first, fill later: this is how PyYAML lets aliases refer to a mapping being built.
    yield data
    own_count = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    first_own = len(node.value) - own_count  # merged (<<) pairs come first; own keys may override them
    own_lines: dict[Hashable, int] = {}
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=False)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            ) from None
        line = key_node.start_mark.line + 1
        if position >= first_own:
            if key in own_lines:
                raise ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {own_lines[key]})", key_node.start_mark
                )
            own_lines[key] = line
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines[key] = line


def _construct_seq(loader: _Loader, node: SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    data.extend(loader.construct_object(child, deep=False) for child in node.value)
    data.item_lines = [child.start_mark.line + 1 for child in node.value]


_Loader.add_constructor(_MAP_TAG, _construct_map)
_Loader.add_constructor(_SEQ_TAG, _construct_seq)

# YAML 1.2 booleans only. The resolver table is per first character; copying it keeps SafeLoader intact.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _describe(error: yaml.MarkedYAMLError, filename: str) -> str:
    mark = error.problem_mark or error.context_mark
    message = error.problem or error.context or "invalid YAML"
    if error.problem and error.context:
        where = ""
        if error.context_mark is not None and error.context_mark is not mark:
            where = f" at line {error.context_mark.line + 1}"
        message = f"{error.problem} ({error.context}{where})"
    if mark is None:
        return f"{filename}: {message}"
    return f"{filename}:{mark.line + 1}:{mark.column + 1}: {message}"


def load_yaml(text: str, filename: str) -> Any:
    """Parse one YAML document safely; mappings become `LineDict`, sequences `LineList`.

    An empty document gives ``None``. Raises `ConfigError` ("file:line:col: message") for syntax
    errors, duplicate keys, more than one document, too many aliases or an alias bomb.
    """
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_describe(error, filename)) from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{filename}: {error}") from error
    except RecursionError:
        raise ConfigError(f"{filename}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a UTF-8 YAML file with `load_yaml`, naming the file in every error."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{name}: not valid UTF-8 (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{name}: cannot read: {error.strerror or error}") from None
    return load_yaml(text, name)
