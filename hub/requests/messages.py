"""`messages.send`: a message to an agent's session, answered with the run id at once or,
with `wait`, with the reply once the run ends.

Programs use it (the OpenAI-compatible endpoint through the gateway, `agenthub mcp` through
the control socket): it goes through `Hub.submit` like any surface's message, as the caller
(a web device, or the owner's desktop for the control socket), so the session rules apply.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hub.errors import CodedError
from hub.events import MAIN_SESSION, RunStatus
from hub.lanes import WriteMode
from hub.origin import Origin
from hub.requests.table import AgentId, Caller, RequestHost, SessionKey, request, run_events
from hub.run_watch import submit_watched
from hub.scopes import viewer_of
from hub.wire import WireModel

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
    key, mode = params.session_key, params.mode
    run = submit_watched(
        hub,
        agent.agent_id,
        params.content,
        origin,
        session_key=key,
        mode=mode,
        on_event=run_events(),
    )
    result = await run.result(params.timeout)
    return SendAnswer(
        agent_id=agent.agent_id,
        session_key=params.session_key,
        run_id=result.run_id,
        status=result.status,
        reply="\n\n".join(result.replies),
        error=RunFailure(code=result.error[0], message=result.error[1]) if result.error else None,
    )
