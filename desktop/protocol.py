"""What crosses the desktop bridge, as models (camelCase JSON, like every other surface).

JS -> Python: `window.pywebview.api.<method>(…)` calls answer a `BridgeReply`:
`{ok: true, payload}` or `{ok: false, error: {code, message}}` (the gateway's `response` shape),
so the UI handles both transports alike.

Python -> JS: one script per batch hands `agenthubDesktop.receive` a JSON array of `Push`
items: `stream` (an agent event or a `read_gap`, the web client's `{agentId, streamId, event}`
envelope) and `pairing` (the pending pairing requests, after any change).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from hub.access import PendingRequest
from hub.attachments import MAX_ATTACHMENTS, Attachment
from hub.events import AgentEvent, ReadGap
from hub.lanes import WriteMode
from hub.requests.table import AgentId
from hub.wire import WireModel


class BridgeError(WireModel):
    code: str
    message: str


class BridgeReply(WireModel):
    """The answer to every bridge call."""

    ok: bool
    payload: JsonValue = None
    error: BridgeError | None = None


# -- call parameters and answers (the shared ones live in hub.requests) -------------------------


class SendParams(WireModel):
    """A message from the window: to `session_key` (default `main`), taken in as `mode` says,
    with `attachments` (docs/protocol.md: the same as a gateway `message` frame's)."""

    agent_id: AgentId
    text: str
    session_key: str | None = None
    mode: WriteMode | None = None
    attachments: Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)] | None = None


class SendAnswer(WireModel):
    run_id: str


class SubscribeAnswer(WireModel):
    """The agent's state when the subscription began; events after `last_seq` follow."""

    agent_id: str
    last_seq: int
    busy: bool


# -- pushes -------------------------------------------------------------------------------------


class StreamPush(WireModel):
    """One agent event (or a `read_gap`: events were dropped, refetch history)."""

    kind: Literal["stream"] = "stream"
    agent_id: str
    stream_id: str
    event: Annotated[AgentEvent, Field(discriminator="type")] | ReadGap


class PairingPush(WireModel):
    """The pending pairing requests changed (new, decided or expired)."""

    kind: Literal["pairing"] = "pairing"
    pending: list[PendingRequest]


Push = Annotated[StreamPush | PairingPush, Field(discriminator="kind")]
