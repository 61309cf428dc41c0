"""HubLink: the hub's side of the gateway. Serves web clients over a `GatewayConnection`.

- A `message` frame goes to `Hub.submit` with a web origin, records
  `agent_senders[agentId] = from`, and is answered with a `response` (requestId = the frame
  id) carrying the run id, or the reason it was refused.
- A `request` frame is answered with a `response` (see docs/protocol.md for the methods).
- One `StreamForwarder` per agent (`gateway.streams`) turns its `read()` stream into
  `stream` frames, each sent once for `*`: the gateway delivers it to every connected client
  device of the owner (every open tab sees every reply). Guest devices (the conversation
  config's `guest_devices`, declared to the gateway on every link with `guests`) are left out
  of `*`; each connected guest that may see an event's session (`Conversations.may_see`) gets
  that event addressed to it, so frames per event grow with the guests of the session, never
  with the number of devices.
- Linking, reconnecting and sending (never buffering while the gateway is away) are the
  connection's (`gateway.link_connection`).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from gateway.link_connection import GatewayConnection
from gateway.protocol import (
    ALL_CLIENTS,
    FRAME_ADAPTER,
    GuestDevices,
    MessageAccepted,
    MessageFrame,
    RequestFrame,
    ResponseError,
    ResponseFrame,
    ResponsePayload,
    StreamFrame,
    StreamPayload,
    make_frame,
)
from gateway.streams import COALESCE_WINDOW, READ_GAP_STREAM, StreamForwarder
from hub.access import API_DEVICE_PREFIX
from hub.errors import CodedError
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import Origin
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.agents import HistoryAnswer
from hub.scopes import viewer_of
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.hub_link")


class HubLink:
    """The hub device on a gateway. A Service: `start()` returns at once; linking goes on in
    the background (`linked` says whether it is up, `wait_linked()` waits for it)."""

    def __init__(
        self,
        hub: Hub,
        url: str,
        token: str,
        device_id: str = "hub",
        *,
        coalesce_window: float = COALESCE_WINDOW,
        max_frame_bytes: int = 1_048_576,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        requests: RequestHost | None = None,
    ) -> None:
        self.hub = hub
        self.requests = requests or RequestHost(access=hub.access, health=hub.health, hub=hub)
        self.device_id = device_id
        self.max_frame_bytes = max_frame_bytes
        self.agent_senders: dict[str, str] = {}
        guests = GuestDevices(devices=sorted(hub.conversation_config.guest_devices))
        self.connection = GatewayConnection(
            url,
            token,
            device_id,
            self._on_receive,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            greetings=[("guests", guests)],
        )
        self.forwarders = {
            agent_id: StreamForwarder(agent_id, self._send_stream, window=coalesce_window)
            for agent_id in hub.agents
        }
        self._tasks = TaskFunnel("hub-link", log)

    @property
    def name(self) -> str:
        return "hub_link"

    @property
    def linked(self) -> bool:
        return self.connection.linked

    @property
    def dropped_frames(self) -> int:
        return self.connection.dropped_frames

    @property
    def clients(self) -> frozenset[str]:
        """Client devices connected to the gateway, as its last `devices` push said."""
        return frozenset(self.connection.clients or ())

    async def wait_linked(self) -> None:
        await self.connection.wait_linked()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.spawn(self.connection.run(), name="hub-link")
        for agent_id, forwarder in self.forwarders.items():
            self._tasks.spawn(self._forward(agent_id, forwarder), name=f"hub-link:{agent_id}")

    async def stop(self) -> None:
        await self._tasks.close()

    def probes(self) -> dict[str, Probe]:
        return {"hub_link": self._probe}

    def _probe(self) -> SubsystemHealth:
        url = self.connection.url
        where = urlsplit(url).netloc or url
        if self.linked:
            return SubsystemHealth(
                name="hub_link",
                status="ok",
                detail=f"linked to {where} as {self.device_id}; {len(self.clients)} clients",
            )
        return SubsystemHealth(
            name="hub_link",
            status="degraded",
            detail=f"not linked to {where}: {self.connection.last_error}",
        )

    async def _forward(self, agent_id: str, forwarder: StreamForwarder) -> None:
        items = self.hub.agent(agent_id).read()
        try:
            await forwarder.run(items)
        finally:
            # Closing the generator releases the agent's single reader slot for the next link.
            await items.aclose()

    # -- incoming frames --------------------------------------------------------------------

    async def _on_receive(self, data: object) -> None:
        try:
            frame = FRAME_ADAPTER.validate_python(data)
        except ValidationError as exc:
            log.warning("ignoring a malformed frame from the gateway: %s", exc.errors()[0]["msg"])
            return
        if isinstance(frame, MessageFrame):
            await self._on_message(frame)
        elif isinstance(frame, RequestFrame):
            self._tasks.spawn(self._on_request(frame), name="hub-link:request")

    async def _on_message(self, frame: MessageFrame) -> None:
        agent_id = frame.payload.agent_id
        try:
            # History shows what was heard in a recording.
            submitted = await self.hub.submit_heard(
                agent_id,
                frame.payload.content,
                Origin(surface="web", device_id=frame.sender),
                session_key=frame.payload.session_key,
                mode=frame.payload.mode,
                attachments=frame.payload.attachments or (),
            )
        except CodedError as exc:
            await self._answer(frame, error=(exc.code, str(exc)))
            return
        self.agent_senders[agent_id] = frame.sender
        await self._answer(frame, answer=MessageAccepted(run_id=submitted.run_id))

    def _caller(self, device_id: str) -> Caller:
        """Paired browsers are the owner's (the owner approved them) unless configured as a
        guest's; a client with an API token is the owner's program, which may not administer
        the hub."""
        return Caller(
            surface="web",
            device_id=device_id,
            owner=device_id not in self.hub.conversation_config.guest_devices,
            program=device_id.startswith(API_DEVICE_PREFIX),
        )

    async def _on_request(self, frame: RequestFrame) -> None:
        caller = self._caller(frame.sender)
        try:
            answer = await dispatch(
                self.requests, caller, frame.payload.method, frame.payload.params
            )
        except CodedError as exc:
            await self._answer(frame, error=(exc.code, exc.message))
            return
        if isinstance(answer, HistoryAnswer):
            answer = self._fit_history(answer)
        await self._answer(frame, answer=answer)

    def _fit_history(self, answer: HistoryAnswer) -> HistoryAnswer:
        entries = answer.entries
        # Leave the oldest entries out until the answer fits one frame (with room to spare).
        budget = self.max_frame_bytes * 9 // 10
        while entries and len(to_json(answer.model_dump(mode="json"))) > budget:
            entries = entries[max(1, len(entries) // 4) :]
            answer = answer.model_copy(update={"entries": entries, "truncated": True})
        return answer

    async def _answer(
        self,
        frame: MessageFrame | RequestFrame,
        *,
        answer: BaseModel | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        request_id = frame.payload.request_id if isinstance(frame, RequestFrame) else frame.id
        if error is not None:
            payload = ResponsePayload(
                request_id=request_id,
                ok=False,
                error=ResponseError(code=error[0], message=error[1]),
            )
        else:
            assert answer is not None
            payload = ResponsePayload(
                request_id=request_id, ok=True, payload=answer.model_dump(mode="json")
            )
        response = make_frame(
            ResponseFrame,
            frame_id=self.connection.frame_id(),
            sender=self.device_id,
            to=frame.sender,
            payload=payload,
        )
        await self.connection.emit(response, answer=True)

    # -- outgoing streams -------------------------------------------------------------------

    async def _send_stream(self, payload: StreamPayload) -> None:
        if self.connection.clients == set() and payload.agent_id not in self.agent_senders:
            return  # the gateway said no client device is connected, and none wrote
        # One frame for all the owner's devices: the gateway fans it out.
        for to in (ALL_CLIENTS, *self._guests_seeing(payload)):
            frame = make_frame(
                StreamFrame,
                frame_id=self.connection.frame_id(),
                sender=self.device_id,
                to=to,
                payload=payload,
            )
            await self.connection.emit(frame)

    def _guests_seeing(self, payload: StreamPayload) -> list[str]:
        """Connected guest devices that may see the payload's session (all of them for a
        read gap, which says only that events were missed)."""
        config = self.hub.conversation_config
        guests = config.guest_devices & (self.connection.clients or set())
        if not guests or payload.stream_id == READ_GAP_STREAM:
            return sorted(guests)
        sessions = self.hub.agent(payload.agent_id).sessions
        # A session deleted a moment ago: its news goes to whoever could see it.
        meta = sessions.meta(payload.session_key) or sessions.departed.get(payload.session_key)
        return sorted(
            guest
            for guest in guests
            if self.hub.sessions.may_see(
                meta, viewer_of(Origin(surface="web", device_id=guest), config)
            )
        )
