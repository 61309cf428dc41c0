"""Chat commands: what each one answers. The plugin registers the same list with the chat
app (Telegram's `setMyCommands`); an unknown command gets the help, never a model turn.

A command acts on the chat's agent and session (the session the chat's messages go to,
`Hub.session_key_for`). Where the hub has a request for it (`sessions.list`, `sessions.mode`,
`usage`) the command asks through the one request table, as the chat user: a non-owner only
ever sees and changes their own sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from channels.base import ChannelMessage, Command
from channels.error_text import coded_error_text
from hub.agent import AsyncAgent
from hub.conversations import SessionInfo, SessionsPage
from hub.errors import CodedError
from hub.hub import Hub
from hub.lanes import WRITE_MODES
from hub.origin import Origin
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.memory import MemoryAnswer
from hub.scopes import viewer_of
from hub.sessions import MessageEntry
from hub.usage import Totals, UsageReport
from hub.wire import WireModel

A = TypeVar("A", bound=WireModel)

# (command, arguments, what it does): the help text and the chat app's command menu.
COMMAND_HELP: tuple[tuple[Command, str, str], ...] = (
    ("new", "", "start a fresh conversation"),
    ("stop", "", "stop the reply in progress"),
    ("status", "", "model, conversation, queue mode and usage"),
    ("model", "[name]", "show the model; switch this conversation to another one"),
    ("compact", "", "fold older messages into a summary now"),
    ("queue", "[mode]", "what a message does while a reply runs: " + " · ".join(WRITE_MODES)),
    ("sessions", "", "your conversations"),
    ("usage", "", "tokens and cost: this conversation and today"),
    ("memory", "", "what the agent remembers about you"),
    ("forget", "N", "delete note N of /memory"),
    ("activation", "mention|always", "groups, admins: answer mentions only, or every message"),
    ("whoami", "", "your ids, for allow lists and identity links"),
    ("help", "", "this message"),
)

HELP_TEXT = (
    "Commands:\n"
    + "\n".join(
        f"/{name}{' ' + args if args else ''} — {what}" for name, args, what in COMMAND_HELP
    )
    + "\nAnything else you write goes to the agent."
)
START_TEXT = "Hi! Write a message and the agent will answer here.\n\n" + HELP_TEXT

QUEUE_MODES = {
    "queue": "waits its turn",
    "collect": "is merged with the others that arrive meanwhile into one next turn",
    "steer": "is given to the running reply at its next step",
    "interrupt": "stops the reply and is answered at once",
}


@dataclass(frozen=True)
class CommandContext:
    """One command: the hub, the message, its agent and session, and who asks."""

    hub: Hub
    message: ChannelMessage
    agent: AsyncAgent
    key: str
    caller: Caller

    @classmethod
    def of(cls, hub: Hub, message: ChannelMessage) -> CommandContext:
        origin = Origin(surface="channel", route=message.route)
        route = message.route
        caller = Caller(
            surface="channel",
            identity=f"{route.channel}:{route.user_id}" if route.user_id else None,
            owner=viewer_of(origin, hub.scope_config()).owner,
        )
        agent = hub.agent(hub.agent_for(route))
        return cls(hub, message, agent, hub.session_key_for(origin), caller)

    async def ask(self, method: str, answer: type[A], **params: str) -> A:
        """A request of the one table, as this chat's user."""
        host = RequestHost(access=self.hub.access, health=self.hub.health, hub=self.hub)
        result = await dispatch(host, self.caller, method, dict(params))
        assert isinstance(result, answer)
        return result

    async def session_usage(self, since: str | None = None) -> Totals:
        """This session's totals; none for a user who has not written in it yet."""
        params = {"agentId": self.agent.agent_id, "sessionKey": self.key}
        if since is not None:
            params["since"] = since
        try:
            return (await self.ask("usage", UsageReport, **params)).total
        except CodedError as exc:
            if exc.code != "forbidden":
                raise
            return Totals()


def usage_line(totals: Totals) -> str:
    text = (
        f"{totals.tokens} tokens ({totals.input_tokens} in, {totals.output_tokens} out) "
        f"in {totals.runs} replies"
    )
    if totals.runs and totals.unpriced < totals.runs:
        text += f", ${totals.cost:.4f}"
    if totals.unpriced:
        text += f" ({totals.unpriced} without a price)"
    return text


async def status_text(ctx: CommandContext) -> str:
    """Model, this chat's conversation, its queue mode, whether it is replying, its usage."""
    agent, key = ctx.agent, ctx.key
    session = agent.sessions.current(key)
    messages = sum(1 for e in session.entries if isinstance(e, MessageEntry))
    busy = agent.session_busy(key)
    state = "replying" if busy else "idle"
    waiting = len(agent.lane(key).turns) if busy else 0
    return (
        f"Model: {agent.models.for_session(key).name}\n"
        f"Conversation: {session.session_id} ({messages} messages) in session {key}\n"
        f"Queue mode: {agent.sessions.mode(key)}\n"
        f"Now: {state}; {waiting} waiting\n"
        f"Usage in this conversation: {usage_line(await ctx.session_usage())}"
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


def model_text(ctx: CommandContext) -> str:
    agent, key = ctx.agent, ctx.key
    wanted = ctx.message.text.strip()
    if wanted:
        model = agent.models.use(key, wanted)
        return f"This conversation now uses {model.name}."
    current = agent.models.for_session(key).name
    if len(agent.models) < 2:
        return f"Model: {current}\nNo other models are configured (`models` in config.toml)."
    others = "\n".join(f"• {name}{' (now)' if name == current else ''}" for name in agent.models)
    return f"Model: {current}\nSwitch this conversation with /model NAME:\n{others}"


async def compact_text(ctx: CommandContext) -> str:
    entry = await ctx.agent.compact(ctx.key)
    if entry is None:
        return "Nothing to compact yet: the conversation is still short."
    return f"Compacted: {entry.removed} older entries folded into a summary, {entry.kept} kept."


async def queue_text(ctx: CommandContext) -> str:
    agent, key = ctx.agent, ctx.key
    wanted = ctx.message.text.strip().lower()
    if not wanted:
        mode = agent.sessions.mode(key)
        modes = "\n".join(f"/queue {name}: a message {what}" for name, what in QUEUE_MODES.items())
        return (
            f"Queue mode: {mode}. While a reply runs, a new message {QUEUE_MODES[mode]}.\n{modes}"
        )
    if wanted not in QUEUE_MODES:
        return f"There is no queue mode {wanted!r}; use one of: {', '.join(QUEUE_MODES)}."
    if agent.sessions.meta(key) is None:
        return "This chat has no conversation yet: write a message first, then set its mode."
    info = await ctx.ask(
        "sessions.mode", SessionInfo, agentId=agent.agent_id, sessionKey=key, mode=wanted
    )
    return f"Queue mode: {info.mode}. While a reply runs, a new message {QUEUE_MODES[info.mode]}."


async def sessions_text(ctx: CommandContext) -> str:
    page = await ctx.ask("sessions.list", SessionsPage, agentId=ctx.agent.agent_id, limit="20")
    if not page.sessions:
        return "You have no conversations yet."
    lines = [f"Your conversations ({page.total}):"]
    for info in page.sessions:
        here = " ← this chat" if info.session_key == ctx.key else ""
        busy = ", replying" if info.busy else ""
        title = info.title or "(untitled)"
        lines.append(f"• {title} — {info.session_key} ({info.messages} messages{busy}){here}")
    if page.total > len(page.sessions):
        lines.append(f"… and {page.total - len(page.sessions)} more")
    return "\n".join(lines)


async def usage_text(ctx: CommandContext) -> str:
    today = date.today().isoformat()
    lines = [
        f"This conversation: {usage_line(await ctx.session_usage())}",
        f"This conversation today: {usage_line(await ctx.session_usage(today))}",
    ]
    if ctx.caller.owner:
        report = await ctx.ask("usage", UsageReport, since=today)
        lines.append(f"Today, every conversation: {usage_line(report.total)}")
    return "\n".join(lines)


async def memory_text(ctx: CommandContext) -> str:
    """The notes this chat's conversation uses; with /forget N, after deleting one."""
    if ctx.agent.sessions.meta(ctx.key) is None:
        return "No notes yet: write a message first."
    params = {"agentId": ctx.agent.agent_id, "sessionKey": ctx.key}
    if ctx.message.command == "forget":
        number = ctx.message.text.strip()
        if not number.isdigit():
            return "Which note? Send /forget N, with N from /memory."
        answer = await ctx.ask("memory.forget", MemoryAnswer, number=number, **params)
        forgotten = answer.forgotten or ""
        done = f"{forgotten[:1].upper()}{forgotten[1:]}\n"
    else:
        answer = await ctx.ask("memory.list", MemoryAnswer, **params)
        done = ""
    about = "this group" if ":group:" in answer.whose else "you"
    if not answer.notes:
        return f"{done}I have no notes about {about}."
    notes = "\n".join(f"{n}. {note}" for n, note in enumerate(answer.notes, 1))
    return f"{done}What I remember about {about}:\n{notes}\nDelete one with /forget N."


async def answer_command(hub: Hub, message: ChannelMessage) -> str:
    """Carry out a command (or an unknown one) for the chat's agent and session; the text
    to answer with. A refusal or failure is answered as an `[Error] …` text."""
    try:
        return await _answer(CommandContext.of(hub, message))
    except CodedError as exc:
        return coded_error_text(exc)


async def _answer(ctx: CommandContext) -> str:
    message, agent, key = ctx.message, ctx.agent, ctx.key
    match message.command:
        case "new":
            session = await agent.new_session(key)
            return f"Started a new conversation ({session.session_id})."
        case "stop":
            return "Stopped." if agent.abort(key) else "Nothing is running."
        case "start":
            return START_TEXT
        case "status":
            return await status_text(ctx)
        case "model":
            return model_text(ctx)
        case "compact":
            return await compact_text(ctx)
        case "queue":
            return await queue_text(ctx)
        case "sessions":
            return await sessions_text(ctx)
        case "usage":
            return await usage_text(ctx)
        case "memory" | "forget":
            return await memory_text(ctx)
        case "activation":
            return "/activation is for group chats: it sets when the bot answers there."
        case "whoami":
            return whoami_text(message)
    if message.unknown_command is not None:
        return unknown_text(message.unknown_command)
    return HELP_TEXT
