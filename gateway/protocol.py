"""The gateway wire protocol (see docs/protocol.md): every frame and event payload as a model.

Socket.IO events: `send` (device -> gateway), `receive` (gateway -> device), `send_error`,
`registered`, `devices`, and the extensions `going_away` (the node is stopping; reconnect),
`pair` / `pair_request` (acknowledged) with `paired` / `pair_denied` for pairing sockets.

A routed frame is `{id, from, to, action, payload}`; `action` selects the payload model.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import ConfigDict, Field, JsonValue, StringConstraints, TypeAdapter

from hub.attachments import MAX_ATTACHMENTS, Attachment
from hub.events import MAIN_SESSION
from hub.lanes import WriteMode
from hub.wire import WireModel

DeviceId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
FrameId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ALL_CLIENTS: Literal["*"] = "*"
Role = Literal["hub", "client"]
ErrorCode = Literal[
    "INVALID_MESSAGE",
    "DEVICE_NOT_FOUND",
    "NOT_REGISTERED",
    "UNAUTHORIZED",
    "TOO_LARGE",
    "RATE_LIMITED",
]


# -- payloads ---------------------------------------------------------------------------------


class MessagePayload(WireModel):
    """A person's message for an agent: to the session `session_key` (default `main`), taken
    in as `mode` says when a run of that session is going (default: the session's own), with
    files (`attachments`, base64 `data`; the hub's rules in `hub.attachments`)."""

    agent_id: str
    content: str
    session_key: str | None = None
    mode: WriteMode | None = None
    attachments: Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)] | None = None


class StreamPayload(WireModel):
    """One agent event for one device. `seq` counts the frames of `stream_id` (0, 1, 2, …, the
    same for every device), so a device that missed some sees a jump. `event` is an agent
    event as JSON, or a `read_gap` notice (the hub itself missed events: refetch history)."""

    agent_id: str
    stream_id: str
    seq: Annotated[int, Field(ge=0)]
    event: dict[str, JsonValue]
    session_key: str = MAIN_SESSION


class RequestPayload(WireModel):
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    method: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[str, JsonValue] = Field(default_factory=dict)


class ResponseError(WireModel):
    code: str
    message: str


class ResponsePayload(WireModel):
    """`ok` with `payload`, or not `ok` with `error`."""

    request_id: str
    ok: bool
    payload: JsonValue = None
    error: ResponseError | None = None


# -- frames -----------------------------------------------------------------------------------


class _FrameBase(WireModel):
    # Only `from` is accepted (not the field name): the gateway relays the frame as received.
    model_config = ConfigDict(validate_by_name=False)

    id: FrameId
    sender: DeviceId = Field(alias="from")
    to: DeviceId


class MessageFrame(_FrameBase):
    action: Literal["message"] = "message"
    payload: MessagePayload


class StreamFrame(_FrameBase):
    """A hub's stream frame: for one device, or (`to` = `*`) for every connected client
    device at once: the gateway fans it out, so the hub sends it once."""

    action: Literal["stream"] = "stream"
    to: DeviceId | Literal["*"]
    payload: StreamPayload


class RequestFrame(_FrameBase):
    action: Literal["request"] = "request"
    payload: RequestPayload


class ResponseFrame(_FrameBase):
    action: Literal["response"] = "response"
    payload: ResponsePayload


AnyFrame = TypeVar("AnyFrame", bound=_FrameBase)


def make_frame(
    kind: type[AnyFrame], *, frame_id: str, sender: str, to: str, payload: WireModel
) -> AnyFrame:
    """Build a frame of `kind` (frames take `from` only by its wire name)."""
    return kind.model_validate({"id": frame_id, "from": sender, "to": to, "payload": payload})


Frame = Annotated[
    MessageFrame | StreamFrame | RequestFrame | ResponseFrame, Field(discriminator="action")
]
Action = Literal["message", "stream", "request", "response"]
FRAME_ADAPTER: TypeAdapter[Frame] = TypeAdapter(Frame)

# Which actions each role may send: clients ask, hubs answer and stream.
ALLOWED_ACTIONS: dict[Role, frozenset[str]] = {
    "client": frozenset({"message", "request"}),
    "hub": frozenset({"message", "stream", "request", "response"}),
}


# -- gateway events ---------------------------------------------------------------------------


class SendError(WireModel):
    """`send_error`: the frame `message_id` was not delivered, and why."""

    message_id: str | None
    code: ErrorCode
    message: str


class DeviceInfo(WireModel):
    """A connected device as presence reports it (`connections`: its open sockets)."""

    device_id: str
    role: Role
    label: str = ""
    connections: int = 1


class Devices(WireModel):
    """`devices`: who is connected. Hubs see every device; clients see the hubs only."""

    devices: list[DeviceInfo]


class Registered(WireModel):
    """`registered`: the socket's identity after connect. `role` is `pairing` for a socket
    that presented no credentials; it can only pair."""

    device_id: str | None
    role: Literal["hub", "client", "pairing"]
    node: str
    hubs: list[str] = Field(default_factory=list)
    # The largest frame this gateway relays, so a client can refuse a too-large message
    # (e.g. attachments) before sending it.
    max_frame_bytes: int | None = None


class GuestDevices(WireModel):
    """`guests` (hub -> gateway, acknowledged): the hub's guest devices. They are left out of
    `*` stream frames; the hub addresses each its own sessions' frames."""

    devices: Annotated[list[DeviceId], Field(max_length=10_000)]


class GoingAway(WireModel):
    """`going_away`: the gateway node is stopping; reconnect (with backoff) and resync."""

    reason: str


# -- connect auth and pairing -----------------------------------------------------------------


class HubAuth(WireModel):
    role: Literal["hub"]
    device_id: DeviceId
    token: str


class ClientAuth(WireModel):
    role: Literal["client"]
    device_id: DeviceId
    token: str


class PairAuth(WireModel):
    role: Literal["pair"]


Auth = Annotated[HubAuth | ClientAuth | PairAuth, Field(discriminator="role")]
AUTH_ADAPTER: TypeAdapter[Auth] = TypeAdapter(Auth)


class PairWithCode(WireModel):
    """`pair`: redeem an owner's invite code."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: Annotated[str, StringConstraints(max_length=100)] = ""


class PairRequest(WireModel):
    """`pair_request`: ask the owner for access; wait for `paired` or `pair_denied`."""

    label: Annotated[str, StringConstraints(max_length=100)] = ""


class PairResult(WireModel):
    """Ack of `pair` / `pair_request`, and the `paired` / `pair_denied` events.

    `token` is set once a device is paired (shown this once; the client stores it);
    `request_code` while waiting for the owner, who sees the same code; `retry_after` when
    pairing attempts are limited for now."""

    ok: bool
    device_id: str | None = None
    token: str | None = None
    request_code: str | None = None
    error: ResponseError | None = None
    retry_after: int | None = Field(
        default=None, description="with RATE_LIMITED: seconds until an attempt is evaluated"
    )


# -- hub answers (the request params and answers live in hub.requests) ------------------------


class MessageAccepted(WireModel):
    """The hub's answer to a `message` frame (a `response` whose requestId is the frame id)."""

    run_id: str
