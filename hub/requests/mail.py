"""`mail.inbox`: the messages other agents sent to an agent (`hub.agent_mail`), for the owner
and the owner's programs (MCP hosts' `inbox` tool). Reading does not mark them read: the
inbox is the agent's, and its own `get_messages` decides that."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import Field

from hub.agent_mail import Inbox, MailMessage, Priority, inbox_path
from hub.errors import CodedError
from hub.requests.table import AgentId, Caller, RequestHost, request
from hub.wire import WireModel


class InboxParams(WireModel):
    agent_id: AgentId
    unread_only: bool = True
    limit: Annotated[int, Field(ge=1, le=200)] = 20


class InboxMessage(WireModel):
    id: str
    sender: str
    text: str
    priority: Priority
    sent_at: float
    read: bool


class InboxAnswer(WireModel):
    """The newest `limit` messages, oldest first."""

    agent_id: str
    messages: list[InboxMessage]


@request("mail.inbox", InboxParams, InboxAnswer)
async def mail_inbox(host: RequestHost, caller: Caller, params: InboxParams) -> InboxAnswer:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    if not caller.owner:
        raise CodedError("an agent's inbox is for the hub's owner only", "forbidden")
    inbox = await asyncio.to_thread(Inbox, inbox_path(hub.data_dir, agent.agent_id))
    pool: list[MailMessage] = list(inbox.messages.values())
    if params.unread_only:
        pool = [m for m in pool if m.id not in inbox.read]
    chosen = sorted(pool, key=lambda m: m.sent_at)[-params.limit :]
    return InboxAnswer(
        agent_id=agent.agent_id,
        messages=[
            InboxMessage(
                id=m.id,
                sender=m.sender,
                text=m.text,
                priority=m.priority,
                sent_at=m.sent_at,
                read=m.id in inbox.read,
            )
            for m in chosen
        ],
    )
