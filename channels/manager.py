"""ChannelManager: connects chat-app plugins to the hub's agent.

Inbound: `route_incoming` sets lastRoute and writes the text to the agent with the chat's
route bound to the run (`Origin(surface="channel", route=…)`), so the reply goes back to the
chat that asked even if another surface writes meanwhile.

Outbound: one subscriber per agent reads the channel column of the filter table. It binds
`run_id -> route` from each run's `agent_start` and sends only for runs that a channel
started: a reply to a desktop or web turn never reaches a chat. Each assistant message is
chunked by a `MessageAggregator` measured with the plugin's own `measure`; the run's first
block replies to the user's message, later blocks are follow-ups; `agent_error` becomes
`[Error] …` text. Sends go through a per-chat `Outbox`. A typing indicator is refreshed
while the run is active and stops on `agent_end`, however the run ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.base import ChannelMessage, ChannelPlugin
from channels.error_text import coded_error_text, error_text
from channels.outbox import Outbox, Outgoing, SendKind
from hub.aggregator import Block, MessageAggregator
from hub.errors import CodedError
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadGap,
)
from hub.filters import Forward, rule
from hub.health import Probe
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.channels")

HELP_TEXT = (
    "Commands:\n"
    "/new — start a fresh conversation\n"
    "/stop — stop the reply in progress\n"
    "/help — this message\n"
    "Anything else you write goes to the agent."
)
START_TEXT = "Hi! Write a message and the agent will answer here.\n\n" + HELP_TEXT


@dataclass(slots=True)
class _Run:
    """A run that a channel started: where its reply goes, and how far it got."""

    plugin: ChannelPlugin
    route: ChannelRoute
    agent_id: str
    aggregator: MessageAggregator | None = None
    sent_any: bool = False
    typing: asyncio.Task[None] | None = field(default=None, repr=False)


class ChannelManager:
    """The channels service. Register plugins, then `start()`; the composition root
    owns the order (`register` before `start`)."""

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
        self.outbox = Outbox()
        self._plugins: dict[str, ChannelPlugin] = {}
        self._runs: dict[str, _Run] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._typing = TaskFunnel("channels:typing", log)
        self._started = False

    @property
    def name(self) -> str:
        return "channels"

    def probes(self) -> dict[str, Probe]:
        return {name: plugin.probe for name, plugin in self._plugins.items()}

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
        started: list[ChannelPlugin] = []
        try:
            for plugin in self._plugins.values():
                await plugin.start(self.route_incoming)
                started.append(plugin)
        except BaseException:
            for plugin in reversed(started):
                await plugin.stop()
            raise

    async def stop(self) -> None:
        """Send what is queued (within `drain_grace`), then stop the plugins. Close the hub's
        agents first when shutting down, so replies in progress are queued before this."""
        if not self._started:
            return
        self._started = False
        await self._typing.close()
        await self.outbox.close(self.drain_grace)
        for plugin in self._plugins.values():
            try:
                await plugin.stop()
            except Exception:
                log.exception("channel %s did not stop cleanly", plugin.name)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._runs.clear()

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
        if message.command is not None:
            await self._command(plugin, message)
            return
        try:
            self.hub.submit(
                self.hub.agent_for(message.route),
                message.text,
                Origin(surface="channel", route=message.route),
            )
        except CodedError as exc:
            self._send(plugin, message.route, coded_error_text(exc), kind="reply", plain=True)

    async def _command(self, plugin: ChannelPlugin, message: ChannelMessage) -> None:
        agent = self.hub.agent(self.hub.agent_for(message.route))
        if message.command == "new":
            key = self.hub.session_key_for(Origin(surface="channel", route=message.route))
            session = await agent.new_session(key)
            text = f"Started a new conversation ({session.session_id})."
        elif message.command == "stop":
            key = self.hub.session_key_for(Origin(surface="channel", route=message.route))
            text = "Stopped." if agent.abort(key) else "Nothing is running."
        elif message.command == "start":
            text = START_TEXT
        else:
            text = HELP_TEXT
        self._send(plugin, message.route, text, kind="reply", plain=True)

    # -- outbound ---------------------------------------------------------------------------

    def _on_event(self, event: AgentEvent) -> None:
        cell = rule("channel", event)
        if cell is Forward.NO:
            return
        if isinstance(event, AgentStart):
            self._bind(event)
            return
        run = self._runs.get(event.run_id)
        if run is None:
            return  # a desktop or web turn: its reply stays there
        if isinstance(event, AgentEnd):
            self._stop_typing(run)
            del self._runs[event.run_id]
        elif isinstance(event, AgentError):
            kind: SendKind = "send" if run.sent_any else "reply"
            run.sent_any = True
            text = error_text(event.code, event.message)
            self._send(run.plugin, run.route, text, kind=kind, plain=True)
        elif isinstance(event, MessageStart):
            limits = run.plugin.limits
            run.aggregator = MessageAggregator(
                lambda block: self._block(run, block),
                min_chars=limits.min_chars,
                max_chars=limits.max_chars,
                measure=run.plugin.measure,
            )
            run.aggregator.handle(event)
        elif isinstance(event, MessageUpdate | MessageEnd) and run.aggregator is not None:
            run.aggregator.handle(event)
            if isinstance(event, MessageEnd):
                run.aggregator = None

    def _on_gap(self, gap: ReadGap) -> None:
        log.warning(
            "channels fell behind agent %s: %d events dropped (seq %d..%d)",
            gap.agent_id,
            gap.dropped,
            gap.first_seq,
            gap.last_seq,
        )
        # An agent_end may be among them: forget runs of this agent that are over.
        agent = self.hub.agent(gap.agent_id)
        over = [
            i for i, r in self._runs.items() if r.agent_id == gap.agent_id and not agent.running(i)
        ]
        for run_id in over:
            self._stop_typing(self._runs.pop(run_id))

    def _bind(self, event: AgentStart) -> None:
        route = event.origin.route
        if event.origin.surface != "channel" or route is None:
            return
        plugin = self._plugins.get(route.channel)
        if plugin is None:
            return
        run = _Run(plugin, route, event.agent_id)
        self._runs[event.run_id] = run
        run.typing = self._typing.spawn(
            self._keep_typing(plugin, route, event.agent_id, event.run_id),
            name=f"typing:{route.channel}:{route.chat_id}",
        )

    def _block(self, run: _Run, block: Block) -> None:
        kind: SendKind = "send" if run.sent_any else "reply"
        run.sent_any = True
        self._send(run.plugin, run.route, block.text, kind=kind)

    def _send(
        self,
        plugin: ChannelPlugin,
        route: ChannelRoute,
        text: str,
        *,
        kind: SendKind,
        plain: bool = False,
    ) -> None:
        self.outbox.put(Outgoing(plugin, route, text, kind, plain))

    # -- typing -----------------------------------------------------------------------------

    async def _keep_typing(
        self, plugin: ChannelPlugin, route: ChannelRoute, agent_id: str, run_id: str
    ) -> None:
        agent = self.hub.agent(agent_id)
        # Asking the agent, not only waiting for agent_end, means the indicator can never be
        # left on (or sent after the final reply) even if events were lost.
        while agent.running(run_id):
            try:
                await plugin.typing(route)
            except Exception:
                log.debug("channel %s: typing indicator failed", plugin.name, exc_info=True)
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
