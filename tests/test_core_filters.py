"""The filter table, cell by cell: every event type x surface x role."""

from __future__ import annotations

from typing import get_args

import pytest

from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    ApprovalRequest,
    ApprovalResolved,
    CompactionEnd,
    CompactionStart,
    EventType,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    Role,
    SessionDeleted,
    ToolExecutionEnd,
    ToolExecutionStart,
)
from hub.filters import FILTER_TABLE, Forward, forward, rule
from hub.origin import SURFACES, Origin, Surface

BASE = {"agent_id": "main", "run_id": "r-1", "seq": 1}


def make(event_type: EventType, role: Role) -> AgentEvent:
    match event_type:
        case "agent_start":
            return AgentStart(**BASE, origin=Origin(surface="web"))
        case "agent_end":
            return AgentEnd(**BASE, status="completed")
        case "message_start":
            return MessageStart(**BASE, message_id="m", role=role)
        case "message_update":
            return MessageUpdate(**BASE, message_id="m", role=role, text="ab", delta="b")
        case "message_end":
            return MessageEnd(**BASE, message_id="m", role=role, text="ab")
        case "tool_execution_start":
            return ToolExecutionStart(**BASE, tool_call_id="c", tool_name="t", args={})
        case "tool_execution_end":
            return ToolExecutionEnd(
                **BASE, tool_call_id="c", tool_name="t", args={}, result=1, is_error=False
            )
        case "compaction_start":
            return CompactionStart(**BASE, reason="full")
        case "compaction_end":
            return CompactionEnd(**BASE, reason="full", removed=1, kept=2)
        case "agent_error":
            return AgentError(**BASE, code="auth", message="bad key", retryable=False)
        case "approval_request":
            return ApprovalRequest(
                **BASE, approval_id="a", session_key="main", tool="shell", args={}, expires_at=1
            )
        case "approval_resolved":
            return ApprovalResolved(**BASE, approval_id="a", decision="denied", by="owner")
        case "session_deleted":
            return SessionDeleted(**BASE, session_key="web:1")


Y, N, T, L, S = Forward.YES, Forward.NO, Forward.AS_TEXT, Forward.LIFECYCLE, Forward.STATUS
MESSAGE: tuple[EventType, ...] = ("message_start", "message_update", "message_end")

# The expected table, written out independently of hub/filters.py: (desktop, web, channel),
# for assistant messages; user message events reach no surface.
EXPECTED: dict[EventType, tuple[Forward, Forward, Forward]] = {
    "agent_start": (Y, Y, L),
    "agent_end": (Y, Y, L),
    "message_start": (Y, Y, Y),
    "message_update": (Y, Y, Y),
    "message_end": (Y, Y, Y),
    "tool_execution_start": (Y, Y, S),
    "tool_execution_end": (Y, Y, S),
    "compaction_start": (Y, Y, N),
    "compaction_end": (Y, Y, N),
    "agent_error": (Y, Y, T),
    "approval_request": (Y, Y, Y),
    "approval_resolved": (Y, Y, Y),
    "session_deleted": (Y, Y, N),
}


def expected(event_type: EventType, role: Role, column: int) -> Forward:
    if event_type in MESSAGE and role == "user":
        return N
    return EXPECTED[event_type][column]


CELLS = [
    pytest.param(t, r, s, expected(t, r, i), id=f"{t}-{r}-{s}")
    for t in get_args(EventType)
    for r in get_args(Role)
    for i, s in enumerate(SURFACES)
]


@pytest.mark.parametrize(("event_type", "role", "surface", "expected"), CELLS)
def test_cell(event_type: EventType, role: Role, surface: Surface, expected: Forward) -> None:
    event = make(event_type, role)
    assert rule(surface, event) is expected
    assert forward(surface, event) is (expected is not Forward.NO)


def test_table_has_every_event_type_and_surface() -> None:
    assert set(FILTER_TABLE) == set(get_args(EventType))
    for row in FILTER_TABLE.values():
        assert set(row) == set(SURFACES)


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        FILTER_TABLE["agent_error"] = {}  # type: ignore[index]
