"""`memory.list` and `memory.forget`: the notes an agent keeps for a conversation
(`hub.tools.memory`), for whoever may see that conversation. Whose notes they are follows
`hub.scopes.memory_scope`, so a person only ever reaches their own (or their group's)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import Field

from hub.events import MAIN_SESSION
from hub.requests.sessions import viewer_of_caller
from hub.requests.table import AgentId, Caller, RequestHost, SessionKey, request
from hub.tools.memory import MemoryBook, memory_root
from hub.wire import WireModel


class MemoryParams(WireModel):
    """`agentId`: the default agent when left out; `sessionKey`: the conversation whose
    person's notes (default `main`, the owner's)."""

    agent_id: AgentId | None = None
    session_key: SessionKey = MAIN_SESSION


class ForgetParams(MemoryParams):
    """`note`: the text of note `number` as the caller saw it; when given, a note that changed
    meanwhile is refused (code `memory`) rather than the wrong one deleted."""

    number: Annotated[int, Field(ge=1)]
    note: str | None = None


class MemoryAnswer(WireModel):
    """The notes, numbered from 1 in this order; `whose`: `owner`, an identity, `peer:<name>`
    or a group."""

    agent_id: str
    session_key: str
    whose: str
    notes: list[str]
    forgotten: str | None = None


def _book(
    host: RequestHost, caller: Caller, params: MemoryParams
) -> tuple[MemoryBook, MemoryAnswer]:
    """The notes file the caller may reach, and the answer's frame (without the notes)."""
    hub = host.need_hub()
    agent = hub.default_agent if params.agent_id is None else hub.agent(params.agent_id)
    hub.sessions.check_visible(agent, viewer_of_caller(caller), params.session_key)
    whose = hub.whose_memory(agent, params.session_key)
    frame = MemoryAnswer(
        agent_id=agent.agent_id, session_key=params.session_key, whose=whose, notes=[]
    )
    return MemoryBook(memory_root(hub.data_dir), agent.agent_id, whose), frame


@request("memory.list", MemoryParams, MemoryAnswer)
async def memory_list(host: RequestHost, caller: Caller, params: MemoryParams) -> MemoryAnswer:
    book, frame = _book(host, caller, params)
    notes = await asyncio.to_thread(book.notes)
    return frame.model_copy(update={"notes": notes})


@request("memory.forget", ForgetParams, MemoryAnswer)
async def memory_forget(host: RequestHost, caller: Caller, params: ForgetParams) -> MemoryAnswer:
    book, frame = _book(host, caller, params)
    forgotten = await asyncio.to_thread(book.forget, params.number, params.note)
    notes = await asyncio.to_thread(book.notes)
    return frame.model_copy(update={"notes": notes, "forgotten": forgotten})
