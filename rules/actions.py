"""The actions a rule can ask for. The rule engine only names them; the gateway performs them.

Every action records the name of the rule that produced it, so the consent ledger can say which rule
turned a text into an opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Action:
    """Base of all actions."""

    rule: str

    @property
    def type(self) -> str:
        """The action's YAML key (``opt_out``, ``reply``, ...)."""
        return ACTION_TYPES[type(self)]


@dataclass(frozen=True, slots=True)
class OptOut(Action):
    """Put the sender on the Opt-Out List for this channel and the texted number's scope (or every scope)."""

    all_scopes: bool = False


@dataclass(frozen=True, slots=True)
class OptIn(Action):
    """Take the sender off the Opt-Out List for this channel and scope (or every scope)."""

    all_scopes: bool = False


@dataclass(frozen=True, slots=True)
class Reply(Action):
    """Answer the sender from the number they texted: a named template from config, or inline text."""

    template: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class MoveContact(Action):
    """Move the sender's contact from one list to another (ClickSend's MOVE_CONTACT).

    ``from_list`` None means the list of the campaign the message answers, when known.
    """

    to_list: str
    from_list: str | None = None


@dataclass(frozen=True, slots=True)
class AddToList(Action):
    """Add the sender's contact to a list (creating the contact when needed)."""

    list: str


@dataclass(frozen=True, slots=True)
class RemoveFromList(Action):
    """Remove the sender's contact from a list."""

    list: str


@dataclass(frozen=True, slots=True)
class Forward(Action):
    """POST the normalised message as JSON to ``url``, through the outbox (so it is retried)."""

    url: str


@dataclass(frozen=True, slots=True)
class Stop(Action):
    """Stop evaluating further rules, even those after a ``continue: true`` rule."""


ACTION_TYPES: dict[type[Action], str] = {
    OptOut: "opt_out",
    OptIn: "opt_in",
    Reply: "reply",
    MoveContact: "move_contact",
    AddToList: "add_to_list",
    RemoveFromList: "remove_from_list",
    Forward: "forward",
    Stop: "stop",
}
