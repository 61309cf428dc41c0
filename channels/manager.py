"""ChannelManager: connects chat-app plugins to the hub's agent.

Inbound: `route_incoming` answers commands itself and submits every other message through
`Hub.submit` with the chat's route bound to the run (`Origin(surface="channel", route=…)`),
so the reply goes back to the chat that asked even if another surface writes meanwhile.

Outbound: one subscriber per agent reads the channel column of the filter table. It binds
`run_id -> route` from each run's `agent_start` and replies only for runs a channel started:
a reply to a desktop or web turn never reaches a chat. Each run's reply is a `LiveReply`
(edited in place) when the plugin can show replies live, else a `BlockReply` (finished
blocks through the per-chat `Outbox`); `agent_error` becomes `[Error] …` text. Tool events
are not forwarded to chats; only the name of a running tool shows, as a live reply's status
line (the table's `STATUS` cell). The user's message gets a `working` mark when the run
starts and a `done` mark (or none) when its reply is complete (the plugin picks the
reactions); a typing indicator is refreshed while nothing of the reply is visible and stops
on `agent_end`, however the run ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.approvals import ChannelApprovals
from channels.base import ChannelMessage, ChannelPlugin
from channels.commands import HELP_TEXT, START_TEXT, answer_command
from channels.error_text import coded_error_text, error_text
from channels.live_reply import LiveReply
from channels.outbox import Outbox, Outgoing
from channels.outbox_store import OutboxStore
from channels.replies import BlockReply, Reply
from hub.aggregator import MessageAggregator
from hub.errors import CodedError
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    ApprovalRequest,
    ApprovalResolved,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadGap,
    ToolExecutionStart,
)
from hub.filters import Forward, rule
from hub.health import Probe
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.tasks import TaskFunnel
from hub.transcribe import heard_quote

log = logging.getLogger("agenthub.channels")

__all__ = ["HELP_TEXT", "START_TEXT", "ChannelManager"]


@dataclass(slots=True)
class _Run:
    """A run that a channel started: where its reply goes, and how it is shown."""

    plugin: ChannelPlugin
    route: ChannelRoute
    agent_id: str
    reply: Reply
    worker: asyncio.Task[None] | None = field(default=None, repr=False)
    typing: asyncio.Task[None] | None = field(default=None, repr=False)
    ack: asyncio.Task[None] | None = field(default=None, repr=False)


class ChannelManager:
    """The channels service. Register plugins, then `start()`; the composition root owns
    the order (`register` before `start`)."""

    def __init__(
        self,
        hub: Hub,
        *,
        typing_interval: float = 4.0,
        drain_grace: float = 10.0,
    ) -> None:
        self.hub = hub
        self.typing_interval = typing_interval
        self.drain_grace = drain_grace
        self.outbox = Outbox(OutboxStore(hub.data_dir / "outbox.jsonl"))
        self._plugins: dict[str, ChannelPlugin] = {}
        self._runs: dict[str, _Run] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._typing = TaskFunnel("channels:typing", log)
        self._live = TaskFunnel("channels:live", log)
        self._acks = TaskFunnel("channels:acks", log)
        self._commands = TaskFunnel("channels:commands", log)
        self.approvals = ChannelApprovals(hub)
        # The last live reply's worker per chat: the next reply there waits for it.
        self._last_live: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._started = False

    @property
    def name(self) -> str:
        return "channels"

    def probes(self) -> dict[str, Probe]:
        return {name: self._probe(plugin) for name, plugin in self._plugins.items()}

    def _probe(self, plugin: ChannelPlugin) -> Probe:
        return lambda: self.outbox.with_backlog(plugin.probe())

    @property
    def plugins(self) -> dict[str, ChannelPlugin]:
        return dict(self._plugins)

    def register(self, plugin: ChannelPlugin) -> None:
        if self._started:
            raise RuntimeError("register channel plugins before ChannelManager.start()")
        if plugin.name in self._plugins:
            raise ValueError(f"a channel named {plugin.name!r} is already registered")
        self._plugins[plugin.name] = plugin

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        # Subscribe before any plugin can deliver, so no run's agent_start is missed.
        for agent in self.hub.agents.values():
            self._unsubscribe.append(
                agent.subscribe(self._on_event, on_gap=self._on_gap, name="channels")
            )
        # What the last process left undelivered goes first; a new live reply in such a
        # chat waits for it.
        for key in self.outbox.resume(self._plugins):
            self._last_live[key] = self._live.spawn(self.outbox.wait_idle(*key), name="resume")
        started: list[ChannelPlugin] = []
        try:
            for plugin in self._plugins.values():
                await plugin.start(self.route_incoming)
                started.append(plugin)
        except BaseException:
            for plugin in reversed(started):
                await plugin.stop()
            raise
        self.outbox.open()

    async def drain(self) -> None:
        """Wait until every reply is shown and every queued send went out."""
        while True:
            workers = [t for t in self._last_live.values() if not t.done()]
            if workers:
                await asyncio.wait(workers)
                continue
            await self.outbox.drain()
            if not any(not t.done() for t in self._last_live.values()):
                return

    async def stop(self) -> None:
        """Finish replies and queued sends (within `drain_grace`), then stop the plugins.
        Close the hub's agents first when shutting down, so replies in progress are queued
        before this."""
        if not self._started:
            return
        self._started = False
        await self._typing.close()
        await self._commands.close()
        await self.approvals.close()
        for run in self._runs.values():
            run.reply.end()
        try:
            async with asyncio.timeout(self.drain_grace):
                await self.drain()
        except TimeoutError:
            log.warning("channels: replies still being sent at shutdown were cut short")
        await self._live.close()
        await self.outbox.close(0)
        await self._acks.close()
        for plugin in self._plugins.values():
            try:
                await plugin.stop()
            except Exception:
                log.exception("channel %s did not stop cleanly", plugin.name)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._runs.clear()
        self._last_live.clear()

    # -- inbound ----------------------------------------------------------------------------

    async def route_incoming(self, message: ChannelMessage) -> None:
        """Handle one inbound message: a command, or a turn for the agent."""
        plugin = self._plugins.get(message.route.channel)
        if plugin is None:
            log.error("message from unregistered channel %r dropped", message.route.channel)
            return
        # Plugins gate access themselves; checking again here keeps a plugin bug fail-closed.
        if not plugin.is_allowed(message.route.user_id or ""):
            log.warning("channel %s: message from unauthorised user dropped", plugin.name)
            return
        if message.command is not None or message.unknown_command is not None:
            await self._command(plugin, message)
            return
        if message.choice is not None:
            self._send(plugin, message.route, await self.approvals.on_choice(message))
            return
        try:
            # A voice note becomes text first; the person sees what was heard.
            submitted = await self.hub.submit_heard(
                self.hub.agent_for(message.route),
                message.text,
                Origin(surface="channel", route=message.route),
                attachments=message.attachments,
            )
            if submitted.transcripts:
                self._send(plugin, message.route, heard_quote(submitted.transcripts))
        except CodedError as exc:
            self._send(plugin, message.route, coded_error_text(exc))

    async def _command(self, plugin: ChannelPlugin, message: ChannelMessage) -> None:
        if message.command == "compact":
            # Compacting asks the model for a summary: other chats must not wait for it (the
            # session's own next turn does, behind the session's lock).
            self._commands.spawn(self._answer(plugin, message), name="command:compact")
            return
        await self._answer(plugin, message)

    async def _answer(self, plugin: ChannelPlugin, message: ChannelMessage) -> None:
        self._send(plugin, message.route, await answer_command(self.hub, message))

    def deliver(self, route: ChannelRoute, text: str) -> bool:
        """Send Markdown `text` to `route`'s chat as new messages, chunked like a reply, with
        no run behind it (a heartbeat's report, a notice). False when no plugin serves it."""
        plugin = self._plugins.get(route.channel)
        if plugin is None:
            return False
        aggregator = MessageAggregator(
            lambda block: self.outbox.put(Outgoing(plugin, route, block.text, "send")),
            min_chars=plugin.limits.min_chars,
            max_chars=plugin.limits.max_chars,
            measure=plugin.measure,
        )
        aggregator.push(text)
        aggregator.finish()
        return True

    def _send(self, plugin: ChannelPlugin, route: ChannelRoute, text: str) -> None:
        self.outbox.put(Outgoing(plugin, route, text, "reply", plain=True))

    # -- outbound ---------------------------------------------------------------------------

    def _on_event(self, event: AgentEvent) -> None:
        if isinstance(event, AgentStart):
            self._bind(event)
            return
        run = self._runs.get(event.run_id)
        if run is None:
            return  # a desktop or web turn: its reply stays there
        if isinstance(event, ApprovalRequest | ApprovalResolved):
            self.approvals.on_event(event, run.plugin, run.route)
            return
        cell = rule("channel", event)
        if cell is Forward.NO:
            return
        if cell is Forward.STATUS:
            run.reply.tool(event.tool_name if isinstance(event, ToolExecutionStart) else None)
            return
        if isinstance(event, AgentEnd):
            self._finish(event.run_id, run, done=event.status == "completed")
        elif isinstance(event, AgentError):
            run.reply.note(error_text(event.code, event.message))
        elif isinstance(event, MessageStart | MessageUpdate | MessageEnd):
            run.reply.message(event)

    def _on_gap(self, gap: ReadGap) -> None:
        log.warning(
            "channels fell behind agent %s: %d events dropped (seq %d..%d)",
            gap.agent_id,
            gap.dropped,
            gap.first_seq,
            gap.last_seq,
        )
        # An agent_end may be among them: finish runs of this agent that are over.
        agent = self.hub.agent(gap.agent_id)
        over = [
            i for i, r in self._runs.items() if r.agent_id == gap.agent_id and not agent.running(i)
        ]
        for run_id in over:
            self._finish(run_id, self._runs[run_id], done=False)

    def _bind(self, event: AgentStart) -> None:
        route = event.origin.route
        if route is None:  # a desktop or web turn outside a chat's session
            return
        plugin = self._plugins.get(route.channel)
        if plugin is None:
            return
        live = plugin.live
        key = (route.channel, route.chat_id)
        reply: Reply
        worker = None
        if live is not None:
            live_reply = LiveReply(
                live,
                route,
                plugin.limits,
                plugin.measure,
                outbox=self.outbox,
                after=self._last_live.get(key),
            )
            worker = self._live.spawn(live_reply.run(), name=f"live:{key[0]}:{key[1]}")
            self._last_live[key] = worker
            reply = live_reply
        else:
            reply = BlockReply(plugin, route, self.outbox)
        run = _Run(plugin, route, event.agent_id, reply, worker)
        self._runs[event.run_id] = run
        run.ack = self._acks.spawn(plugin.react(route, "working"), name="ack")
        run.typing = self._typing.spawn(
            self._keep_typing(run, event.run_id), name=f"typing:{key[0]}:{key[1]}"
        )

    def _finish(self, run_id: str, run: _Run, *, done: bool) -> None:
        del self._runs[run_id]
        self._stop_typing(run)
        run.reply.end()
        self._acks.spawn(self._final_ack(run, done), name="ack")

    async def _final_ack(self, run: _Run, done: bool) -> None:
        """The done reaction once the reply is complete (none when the run did not complete)."""
        waits = [t for t in (run.ack, run.worker) if t is not None]
        if waits:
            await asyncio.wait(waits)
        await run.plugin.react(run.route, "done" if done else None)

    # -- typing -----------------------------------------------------------------------------

    async def _keep_typing(self, run: _Run, run_id: str) -> None:
        agent = self.hub.agent(run.agent_id)
        # Asking the agent, not only waiting for agent_end, means the indicator can never be
        # left on (or sent after the final reply) even if events were lost.
        while agent.running(run_id) and not run.reply.visible:
            try:
                await run.plugin.typing(run.route)
            except Exception:
                log.debug("channel %s: typing indicator failed", run.plugin.name, exc_info=True)
            await asyncio.sleep(self.typing_interval)

    def _stop_typing(self, run: _Run) -> None:
        if run.typing is not None:
            run.typing.cancel()
            run.typing = None

    def typing_chats(self) -> set[tuple[str, str]]:
        """(channel, chat_id) pairs that currently show a typing indicator."""
        return {
            (run.route.channel, run.route.chat_id)
            for run in self._runs.values()
            if run.typing is not None and not run.typing.done()
        }
