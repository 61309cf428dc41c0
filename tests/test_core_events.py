"""Agent events: the discriminated union round-trips, and the JSON shape is camelCase and stable."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from pydantic import ValidationError

from hub.events import (
    EVENT_ADAPTER,
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    ApprovalRequest,
    ApprovalResolved,
    CompactionEnd,
    CompactionStart,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadGap,
    ReadItem,
    SessionDeleted,
    ToolExecutionEnd,
    ToolExecutionStart,
)
from hub.origin import ChannelRoute, Origin

BASE = {"agent_id": "main", "run_id": "r-1", "seq": 7, "ts": 1_700_000_000_000}
COMMON = {"type", "agentId", "runId", "seq", "ts", "sessionKey"}

ROUTE = ChannelRoute(channel="telegram", chat_id="42", reply_to_message_id="9", user_id="5")

SAMPLES: list[tuple[AgentEvent, set[str]]] = [
    (
        AgentStart(
            **BASE,
            origin=Origin(surface="channel", device_id="d-1", route=ROUTE),
            model="openai:gpt-test",
        ),
        {"origin", "model"},
    ),
    (
        AgentEnd(**BASE, status="completed", input_tokens=3, output_tokens=4),
        {"status", "inputTokens", "outputTokens", "cachedTokens"},
    ),
    (MessageStart(**BASE, message_id="m-1", role="assistant"), {"messageId", "role"}),
    (
        MessageUpdate(**BASE, message_id="m-1", role="assistant", text="Hello wor", delta="wor"),
        {"messageId", "role", "text", "delta"},
    ),
    (
        MessageEnd(**BASE, message_id="m-1", role="user", text="Hello", aborted=True),
        {"messageId", "role", "text", "aborted"},
    ),
    (
        ToolExecutionStart(**BASE, tool_call_id="c-1", tool_name="calc", args={"expr": "1+1"}),
        {"toolCallId", "toolName", "args"},
    ),
    (
        ToolExecutionEnd(
            **BASE,
            tool_call_id="c-1",
            tool_name="calc",
            args={"expr": "1+1"},
            result=[2, {"unit": None}],
            is_error=False,
        ),
        {"toolCallId", "toolName", "args", "result", "isError"},
    ),
    (CompactionStart(**BASE, reason="context 81% full"), {"reason"}),
    (
        CompactionEnd(**BASE, reason="context 81% full", removed=10, kept=12),
        {"reason", "removed", "kept"},
    ),
    (
        AgentError(**BASE, code="rate_limited", message="slow down", retryable=True),
        {"code", "message", "retryable"},
    ),
    (
        ApprovalRequest(
            **BASE,
            approval_id="ap-1",
            session_key="main",
            tool="shell",
            args={"command": "ls"},
            expires_at=1_700_000_300_000,
        ),
        {"approvalId", "sessionKey", "tool", "args", "expiresAt"},
    ),
    (
        ApprovalResolved(**BASE, approval_id="ap-1", decision="approved", by="ctl"),
        {"approvalId", "decision", "by"},
    ),
    (SessionDeleted(**BASE, session_key="web:1"), set()),
]


def _id(sample: tuple[AgentEvent, set[str]]) -> str:
    return sample[0].type


@pytest.mark.parametrize("sample", SAMPLES, ids=_id)
def test_round_trip_through_the_union(sample: tuple[AgentEvent, set[str]]) -> None:
    event, _ = sample
    raw = EVENT_ADAPTER.dump_json(event)
    back = EVENT_ADAPTER.validate_json(raw)
    assert type(back) is type(event)
    if isinstance(event, AgentStart):
        # The route is a delivery detail of this process: it never leaves it.
        assert back == event.model_copy(
            update={"origin": event.origin.model_copy(update={"route": None})}
        )
    else:
        assert back == event


@pytest.mark.parametrize("sample", SAMPLES, ids=_id)
def test_json_keys_are_camel_case_and_exact(sample: tuple[AgentEvent, set[str]]) -> None:
    event, extra = sample
    data = json.loads(EVENT_ADAPTER.dump_json(event))
    assert set(data) == COMMON | extra
    assert data["type"] == event.type
    assert data["agentId"] == "main"
    assert data["runId"] == "r-1"
    assert data["seq"] == 7


def test_sample_covers_every_event_type() -> None:
    from typing import get_args

    from hub.events import EventType

    assert {event.type for event, _ in SAMPLES} == set(get_args(EventType))


def test_exact_json_of_an_update_is_stable() -> None:
    event = MessageUpdate(**BASE, message_id="m-1", role="assistant", text="Hi there", delta="re")
    assert EVENT_ADAPTER.dump_json(event) == (
        b'{"agentId":"main","runId":"r-1","seq":7,"ts":1700000000000,"sessionKey":"main",'
        b'"type":"message_update","messageId":"m-1","role":"assistant",'
        b'"text":"Hi there","delta":"re"}'
    )


def test_origin_route_is_never_serialised() -> None:
    start = AgentStart(**BASE, origin=Origin(surface="channel", route=ROUTE))
    data = json.loads(start.model_dump_json())
    assert data["origin"] == {"surface": "channel", "deviceId": None}
    assert "42" not in start.model_dump_json()
    assert "route" not in start.origin.model_dump()
    # In-process subscribers still see it: the channel manager routes replies by it.
    assert start.origin.route == ROUTE


def test_snake_case_input_is_accepted_and_unknown_fields_refused() -> None:
    event = EVENT_ADAPTER.validate_python(
        {"type": "message_start", **BASE, "message_id": "m", "role": "user"}
    )
    assert isinstance(event, MessageStart)
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(
            {"type": "message_start", **BASE, "messageId": "m", "role": "user", "bogus": 1}
        )
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python({"type": "no_such_event", **BASE})
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(
            {"type": "message_start", **BASE, "messageId": "m", "role": "system"}
        )


def test_events_are_frozen() -> None:
    event = MessageStart(**BASE, message_id="m", role="assistant")
    with pytest.raises(ValidationError):
        event.seq = 8  # type: ignore[misc]


def test_read_items_json() -> None:
    gap = ReadGap(agent_id="main", dropped=3, first_seq=4, last_seq=9)
    assert json.loads(gap.model_dump_json()) == {
        "type": "read_gap",
        "agentId": "main",
        "dropped": 3,
        "firstSeq": 4,
        "lastSeq": 9,
    }
    # read() carries agent events and gaps only: a failed run's text is its agent_error.
    assert get_args(ReadItem) == (AgentEvent, ReadGap)
