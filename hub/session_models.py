"""SessionModels: the models one agent may answer with, and which one each session uses.

A session answers with the agent's own model (`default`) until it switches (`/model NAME`);
the switch holds from its next turn on, across `/new` and restarts (the session index keeps
it). A kept choice that is no longer configured falls back to `default`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from hub.errors import CodedError
from hub.model import Model


class ModelChoices(Protocol):
    """Where each session's choice is kept (the agent's session registry)."""

    def model_of(self, key: str) -> str | None: ...

    def set_model(self, key: str, name: str | None) -> None: ...


class SessionModels(Mapping[str, Model]):
    """The agent's models by name (its own first), and each session's choice among them."""

    def __init__(self, default: Model, others: Sequence[Model], choices: ModelChoices) -> None:
        self.default = default
        self._by_name: dict[str, Model] = {default.name: default}
        for other in others:
            self._by_name.setdefault(other.name, other)
        self._choices = choices

    def __getitem__(self, name: str) -> Model:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def for_session(self, session_key: str) -> Model:
        """The model that answers `session_key`: its switched one, else `default`."""
        return self._by_name.get(self._choices.model_of(session_key) or "", self.default)

    def use(self, session_key: str, name: str) -> Model:
        """Answer `session_key` with model `name` from its next turn on. Raises `CodedError`
        `unknown_model` for a name that is not configured."""
        if name not in self._by_name:
            known = ", ".join(self._by_name)
            raise CodedError(
                f"no model {name!r} for this agent (configured: {known})", "unknown_model"
            )
        self._choices.set_model(session_key, None if name == self.default.name else name)
        return self._by_name[name]
