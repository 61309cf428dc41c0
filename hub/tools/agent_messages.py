"""The tools an agent that opts in (`enable_tools = ["agents"]`) uses to reach the others:
list_agents, send_to_agent, broadcast, get_messages, mark_read (see `hub.agent_mail`)."""

from __future__ import annotations

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from hub.agent_mail import AgentMail, Priority
from hub.approvals import CallContext
from hub.tools.config import ToolsConfig
from hub.tools.policy import enabled_builtins

Ctx = RunContext[CallContext]


def mail_toolset(config: ToolsConfig, mail: AgentMail) -> FunctionToolset[CallContext]:
    enabled = set(enabled_builtins(config))
    toolset: FunctionToolset[CallContext] = FunctionToolset()

    async def list_agents(ctx: Ctx) -> str:
        """The other agents of this hub: id, name, status, model, unread messages."""
        cards = [c for c in mail.directory() if c.agent_id != ctx.deps.agent_id]
        if not cards:
            return "There are no other agents."
        return "\n".join(
            f"{c.agent_id} ({c.name}): {c.status}, model {c.model}, {c.unread} unread"
            for c in cards
        )

    async def send_to_agent(
        ctx: Ctx, agent: str, text: str, priority: Priority = "normal", wait_for_reply: bool = True
    ) -> str:
        """Send a message to another agent. With `wait_for_reply` (the default) it runs as a
        turn of that agent and its answer is returned; otherwise it is only delivered."""
        message, reply = await mail.send(
            ctx.deps.agent_id,
            agent,
            text,
            priority=priority,
            from_run=ctx.deps.run_id,
            wait=wait_for_reply,
        )
        if reply is None:
            return f"Sent to {agent} as message {message.id}."
        return f"Reply from {agent}:\n{reply}"

    async def broadcast(ctx: Ctx, text: str) -> str:
        """Send the same message to every other agent (no replies are waited for)."""
        sent = await mail.broadcast(ctx.deps.agent_id, text, from_run=ctx.deps.run_id)
        return f"Sent to {', '.join(m.recipient for m in sent) or 'nobody'}."

    async def get_messages(
        ctx: Ctx, unread_only: bool = True, limit: int = 20, mark_read: bool = True
    ) -> str:
        """Messages other agents sent you, oldest first (urgent ones first)."""
        found = mail.messages(
            ctx.deps.agent_id,
            unread_only=unread_only,
            limit=max(1, min(limit, 100)),
            mark_read=mark_read,
        )
        if not found:
            return "No messages."
        return "\n\n".join(f"[{m.id}] from {m.sender} ({m.priority}):\n{m.text}" for m in found)

    async def mark_read(ctx: Ctx, ids: list[str]) -> str:
        """Mark messages of yours as read."""
        return f"{mail.mark_read(ctx.deps.agent_id, ids)} marked read."

    for tool in (list_agents, send_to_agent, broadcast, get_messages, mark_read):
        if tool.__name__ in enabled:
            toolset.add_function(tool)
    return toolset
