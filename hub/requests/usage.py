"""The `usage` request: token and cost totals per agent, session and source since a moment."""

from __future__ import annotations

import asyncio

from pydantic import field_validator

from hub.errors import CodedError
from hub.requests.sessions import viewer_of_caller
from hub.requests.table import Caller, RequestHost, request
from hub.usage import UsageFile, UsageReport, parse_since, summarise
from hub.wire import WireModel

USAGE_FILE = "usage.jsonl"


class UsageParams(WireModel):
    """`since`: an ISO date or date-time (without an offset: the hub's local time); everything
    on record when left out. `agentId` / `sessionKey` narrow the runs counted."""

    since: str | None = None
    agent_id: str | None = None
    session_key: str | None = None

    @field_validator("since")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            parse_since(value)
        return value


@request("usage", UsageParams, UsageReport)
async def usage(host: RequestHost, caller: Caller, params: UsageParams) -> UsageReport:
    """The owner may ask about anything; anyone else only about one session they may see
    (`agentId` and `sessionKey` given)."""
    hub = host.need_hub()
    if not caller.owner or caller.program:
        if params.agent_id is None or params.session_key is None:
            raise CodedError(
                "usage across sessions is for the hub's owner only; name a session of yours",
                "forbidden",
            )
        agent = hub.agent(params.agent_id)
        meta = agent.sessions.meta(params.session_key)
        if not hub.sessions.may_see(meta, viewer_of_caller(caller)):
            raise CodedError(f"session {params.session_key!r} is not yours to see", "forbidden")
    since = parse_since(params.since) if params.since is not None else 0
    ledger = UsageFile(hub.data_dir / USAGE_FILE)

    def read() -> UsageReport:
        records = (
            r
            for r in ledger.read(since)
            if (params.agent_id is None or r.agent_id == params.agent_id)
            and (params.session_key is None or r.session_key == params.session_key)
        )
        return summarise(records, since)

    return await asyncio.to_thread(read)
