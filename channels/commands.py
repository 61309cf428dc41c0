"""Chat commands: what each one answers. The plugin registers the same list with the chat
app (Telegram's `setMyCommands`); an unknown command gets the help, never a model turn."""

from __future__ import annotations

from channels.base import ChannelMessage
from hub.agent import AsyncAgent
from hub.hub import Hub
from hub.origin import Origin
from hub.sessions import MessageEntry, RunEntry

HELP_TEXT = (
    "Commands:\n"
    "/new — start a fresh conversation\n"
    "/stop — stop the reply in progress\n"
    "/status — model, conversation and what is running\n"
    "/whoami — your ids, for allow lists\n"
    "/help — this message\n"
    "Anything else you write goes to the agent."
)
START_TEXT = "Hi! Write a message and the agent will answer here.\n\n" + HELP_TEXT


def status_text(agent: AsyncAgent, session_key: str) -> str:
    """Model, this chat's conversation, whether it is replying, what waits, tokens used."""
    session = agent.sessions.current(session_key)
    entries = session.entries
    messages = sum(1 for e in entries if isinstance(e, MessageEntry))
    runs = [e for e in entries if isinstance(e, RunEntry)]
    tokens_in = sum(r.input_tokens for r in runs)
    tokens_out = sum(r.output_tokens for r in runs)
    state = "replying" if agent.session_busy(session_key) else "idle"
    return (
        f"Model: {agent.model.name}\n"
        f"Conversation: {session.session_id} ({messages} messages)\n"
        f"Now: {state}; {agent.queued} waiting\n"
        f"Usage in this conversation: {tokens_in} tokens in, {tokens_out} out"
    )


def whoami_text(message: ChannelMessage) -> str:
    route = message.route
    lines = [
        f"Your {route.channel} user id: {route.user_id or 'unknown'}",
        f"This chat's id: {route.chat_id}",
    ]
    if route.thread_id:
        lines.append(f"This topic's id: {route.thread_id}")
    return "\n".join(lines)


def unknown_text(name: str) -> str:
    return f"There is no /{name} command.\n\n{HELP_TEXT}"


async def answer_command(hub: Hub, message: ChannelMessage) -> str:
    """Carry out a command (or an unknown one) for the chat's agent and session; the text
    to answer with."""
    agent = hub.agent(hub.agent_for(message.route))
    key = hub.session_key_for(Origin(surface="channel", route=message.route))
    if message.command == "new":
        session = await agent.new_session(key)
        return f"Started a new conversation ({session.session_id})."
    if message.command == "stop":
        return "Stopped." if agent.abort(key) else "Nothing is running."
    if message.command == "start":
        return START_TEXT
    if message.command == "status":
        return status_text(agent, key)
    if message.command == "whoami":
        return whoami_text(message)
    if message.unknown_command is not None:
        return unknown_text(message.unknown_command)
    return HELP_TEXT
