"""Requests about conversations: `sessions.list`, `sessions.new`, `sessions.rename`,
`sessions.archive`, `sessions.delete`, `sessions.mark_read`, `sessions.mode`. Each answers only
about sessions the caller may see (`hub.conversations`): the owner sees all, a guest device only
its own."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from hub.conversations import DeletedSession, NewSession, SessionInfo, SessionsPage
from hub.lanes import WriteMode
from hub.requests.table import AgentId, Caller, RequestHost, SessionKey, request
from hub.schedules_service import Scheduler
from hub.scopes import Viewer
from hub.wire import WireModel


def viewer_of_caller(caller: Caller) -> Viewer:
    """The session viewer behind a request's caller (a web device is `web:<deviceId>`, a
    chat user their channel identity)."""
    identity = f"web:{caller.device_id}" if caller.device_id else caller.identity
    return Viewer(
        surface=caller.surface, device_id=caller.device_id, identity=identity, owner=caller.owner
    )


class ListParams(WireModel):
    agent_id: AgentId
    offset: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    archived: bool = False


class NewParams(WireModel):
    agent_id: AgentId
    session_key: SessionKey | None = None


class KeyParams(WireModel):
    agent_id: AgentId
    session_key: SessionKey


class RenameParams(KeyParams):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ArchiveParams(KeyParams):
    archived: bool = True


class MarkReadParams(KeyParams):
    seq: Annotated[int, Field(ge=0)]


class ModeParams(KeyParams):
    mode: WriteMode


@request("sessions.list", ListParams, SessionsPage)
async def sessions_list(host: RequestHost, caller: Caller, params: ListParams) -> SessionsPage:
    hub = host.need_hub()
    return hub.sessions.list(
        hub.agent(params.agent_id),
        viewer_of_caller(caller),
        offset=params.offset,
        limit=params.limit,
        archived=params.archived,
    )


@request("sessions.new", NewParams, NewSession)
async def sessions_new(host: RequestHost, caller: Caller, params: NewParams) -> NewSession:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    return await hub.sessions.new(agent, viewer_of_caller(caller), params.session_key)


@request("sessions.rename", RenameParams, SessionInfo)
async def sessions_rename(host: RequestHost, caller: Caller, params: RenameParams) -> SessionInfo:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    return hub.sessions.rename(agent, viewer_of_caller(caller), params.session_key, params.title)


@request("sessions.archive", ArchiveParams, SessionInfo)
async def sessions_archive(host: RequestHost, caller: Caller, params: ArchiveParams) -> SessionInfo:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    viewer = viewer_of_caller(caller)
    return hub.sessions.archive(agent, viewer, params.session_key, params.archived)


@request("sessions.delete", KeyParams, DeletedSession)
async def sessions_delete(host: RequestHost, caller: Caller, params: KeyParams) -> DeletedSession:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    viewer = viewer_of_caller(caller)
    deleted = await hub.sessions.delete(agent, viewer, params.session_key, hub.media)
    # A schedule running in the key keeps running: its next fire starts the key afresh.
    default = hub.default_agent.agent_id
    schedules = [
        name
        for name, spec in Scheduler.of(hub).specs().items()
        if (spec.agent or default) == agent.agent_id and spec.session == params.session_key
    ]
    return deleted.model_copy(update={"schedules": schedules})


@request("sessions.mark_read", MarkReadParams, SessionInfo)
async def sessions_mark_read(
    host: RequestHost, caller: Caller, params: MarkReadParams
) -> SessionInfo:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    return hub.sessions.mark_read(agent, viewer_of_caller(caller), params.session_key, params.seq)


@request("sessions.mode", ModeParams, SessionInfo)
async def sessions_mode(host: RequestHost, caller: Caller, params: ModeParams) -> SessionInfo:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    return hub.sessions.set_mode(agent, viewer_of_caller(caller), params.session_key, params.mode)
