"""The one error base: every error the product raises on purpose carries a stable `code` and a
message written for the person who will read it. Surfaces catch `CodedError` and map it to
their reply shape in one function each (a `send_error`/`response` frame, a bridge answer, a
control-socket line, a chat message)."""

from __future__ import annotations

from pydantic import ValidationError


class CodedError(Exception):
    """A refusal or failure with a stable `code` for clients and a human-readable `message`."""

    code = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class AgentClosedError(CodedError):
    """The agent was closed: it takes no more writes."""

    code = "agent_closed"


class InvalidInputError(CodedError, ValueError):
    """A write was refused because of its text (empty, too large, not encodable)."""

    code = "invalid_input"


class QueueFullError(CodedError):
    """Too many turns are already waiting for this agent."""

    code = "queue_full"


class ReaderBusyError(CodedError):
    """`read()` is single-consumer and another reader is active."""

    code = "reader_busy"


class UnknownAgentError(CodedError):
    """No agent has this id."""

    code = "unknown_agent"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no agent {agent_id!r}")
        self.agent_id = agent_id


class InvalidParamsError(CodedError):
    """A request's params did not validate; the message names the field and why."""

    code = "invalid_params"


class ModelError(CodedError):
    """A failure of the model provider, as the user should see it.

    `code` is stable for clients (e.g. `auth`, `rate_limited`); `retryable` says whether the
    same request may succeed later without the user changing anything.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, code)
        self.retryable = retryable


def describe_validation(exc: ValidationError, *, limit: int = 3) -> str:
    """The user-facing text of a validation failure: `field: why`, one per bad field
    (at most `limit`), e.g. `payload.agentId: Field required`."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "value"
        reason = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {reason}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
