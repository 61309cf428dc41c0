"""The `usage` request: token and cost totals per agent, session and source since a moment."""

from __future__ import annotations

import asyncio

from pydantic import field_validator

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


@request("usage", UsageParams, UsageReport, owner_only=True)
async def usage(host: RequestHost, caller: Caller, params: UsageParams) -> UsageReport:
    hub = host.need_hub()
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
