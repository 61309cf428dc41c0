"""`messages.send`: a message to an agent's session, answered with the run id at once or,
with `wait`, with the reply once the run ends.

Programs use it (the OpenAI-compatible endpoint through the gateway, `agenthub mcp` through
the control socket): it goes through `Hub.submit` like any surface's message, as the caller
(a web device, or the owner's desktop for the control socket), so the session rules apply.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import Field, StringConstraints

from hub.errors import CodedError
from hub.events import MAIN_SESSION, AgentEnd, AgentError, AgentEvent, MessageEnd, RunStatus
from hub.lanes import WriteMode
from hub.origin import Origin
from hub.requests.agents import AgentId
from hub.requests.table import Caller, RequestHost, request
from hub.scopes import viewer_of
from hub.wire import WireModel

SessionKey = Annotated[str, StringConstraints(min_length=1, max_length=160)]
DEFAULT_WAIT = 300.0


class SendParams(WireModel):
    """`wait`: answer when the run ends (at most `timeout` seconds), not when it is queued."""

    agent_id: AgentId
    content: str
    session_key: SessionKey = MAIN_SESSION
    mode: WriteMode | None = None
    wait: bool = True
    timeout: Annotated[float, Field(gt=0, le=3600)] = DEFAULT_WAIT


class RunFailure(WireModel):
    code: str
    message: str


class SendAnswer(WireModel):
    """`status` is None while the run goes on (no `wait`, or `timeout` passed); `reply` is the
    run's assistant messages (joined by a blank line) and `error` its failure, if any."""

    agent_id: str
    session_key: str
    run_id: str
    status: RunStatus | None = None
    reply: str = ""
    error: RunFailure | None = None


def origin_of(caller: Caller) -> Origin:
    """The origin of a caller's message: a web device as itself; the control socket (only
    the owner can reach it) as the owner's desktop."""
    if caller.surface == "web":
        return Origin(surface="web", device_id=caller.device_id)
    if caller.surface in ("desktop", "control"):
        return Origin(surface="desktop")
    raise CodedError("chat users write through their chat, not this request", "forbidden")


class _RunWatch:
    """The events of one run, collected from the agent's multi-consumer stream."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.early: list[AgentEvent] = []
        self.replies: list[str] = []
        self.error: RunFailure | None = None
        self.ended: asyncio.Future[RunStatus] = asyncio.get_running_loop().create_future()

    def __call__(self, event: AgentEvent) -> None:
        if self.run_id is None:
            # Called inline during submit: events of this run may come before its id is known.
            self.early.append(event)
        elif event.run_id == self.run_id:
            self._take(event)

    def bind(self, run_id: str) -> None:
        self.run_id = run_id
        early, self.early = self.early, []
        for event in early:
            if event.run_id == run_id:
                self._take(event)

    def _take(self, event: AgentEvent) -> None:
        if isinstance(event, MessageEnd) and event.role == "assistant" and event.text:
            self.replies.append(event.text)
        elif isinstance(event, AgentError):
            self.error = RunFailure(code=event.code, message=event.message)
        elif isinstance(event, AgentEnd) and not self.ended.done():
            self.ended.set_result(event.status)


@request("messages.send", SendParams, SendAnswer)
async def messages_send(host: RequestHost, caller: Caller, params: SendParams) -> SendAnswer:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    origin = origin_of(caller)
    if not caller.owner:
        # The table knows the caller is not the owner even when the hub's rules would not.
        viewer = viewer_of(origin, hub.conversation_config).model_copy(update={"owner": False})
        hub.sessions.check_write(agent, viewer, params.session_key)
    if not params.wait:
        run_id = hub.submit(
            agent.agent_id, params.content, origin, session_key=params.session_key, mode=params.mode
        )
        return SendAnswer(agent_id=agent.agent_id, session_key=params.session_key, run_id=run_id)
    watch = _RunWatch()
    unsubscribe = agent.subscribe(watch, name="messages.send")
    try:
        run_id = hub.submit(
            agent.agent_id, params.content, origin, session_key=params.session_key, mode=params.mode
        )
        watch.bind(run_id)
        try:
            async with asyncio.timeout(params.timeout):
                status: RunStatus | None = await asyncio.shield(watch.ended)
        except TimeoutError:
            status = None
    finally:
        unsubscribe()
    return SendAnswer(
        agent_id=agent.agent_id,
        session_key=params.session_key,
        run_id=run_id,
        status=status,
        reply="\n\n".join(watch.replies),
        error=watch.error,
    )
