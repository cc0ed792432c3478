"""The error a rule set raises when it does not compile."""

from __future__ import annotations

from typing import Any

from gateway.errors import RuleError

__all__ = ["RuleSetError"]


class RuleSetError(RuleError):
    """Every problem found in a rule set, collected so one run of ``rules check`` shows them all.

    Each problem reads ``file:line: rule 'name': what is wrong``; ``str(error)`` is one problem per line.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)

    def to_dict(self) -> dict[str, Any]:
        """Add the problems as a list, so an API client does not have to split lines."""
        data = super().to_dict()
        data["problems"] = list(self.problems)
        return data
