"""Errors the hub core raises to its callers."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub core raises on purpose."""

    code = "internal"


class AgentClosedError(HubError):
    """The agent was closed: it takes no more writes."""

    code = "agent_closed"


class InvalidInputError(HubError, ValueError):
    """A write was refused because of its text (empty, too large, not encodable)."""

    code = "invalid_input"

    def __init__(self, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.code = code


class QueueFullError(HubError):
    """Too many turns are already waiting for this agent."""

    code = "queue_full"


class ReaderBusyError(HubError):
    """`read()` is single-consumer and another reader is active."""

    code = "reader_busy"


class ModelError(HubError):
    """A failure of the model provider, as the user should see it.

    `code` is stable for clients (e.g. `auth`, `rate_limited`); `retryable` says whether the
    same request may succeed later without the user changing anything.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
