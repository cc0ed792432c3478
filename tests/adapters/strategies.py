"""Hypothesis strategies shared by the JSON adapters' robustness tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def mutations(value: Any) -> st.SearchStrategy[Any]:
    """``value`` with any part kept, recursively mutated, or replaced by arbitrary JSON (keys may vanish)."""
    if isinstance(value, dict):
        children = {k: st.one_of(mutations(v), json_values) for k, v in value.items()}
        return st.fixed_dictionaries({}, optional=children) | json_values
    if isinstance(value, list):
        return st.tuples(*(mutations(v) for v in value)).map(list) | json_values
    return st.just(value) | json_values
