"""A run's reply in one chat, in finished blocks: each assistant message is chunked by a
`MessageAggregator` measured with the plugin's own `measure`; the run's first block replies
to the user's message, later ones follow; everything goes through the per-chat `Outbox`.
`LiveReply` (live_reply.py) is the other way, editing messages in place."""

from __future__ import annotations

from typing import Protocol

from channels.base import ChannelPlugin
from channels.outbox import Outbox, Outgoing, SendKind
from hub.aggregator import Block, MessageAggregator
from hub.events import MessageEnd, MessageStart, MessageUpdate
from hub.origin import ChannelRoute

MessageEvent = MessageStart | MessageUpdate | MessageEnd


class Reply(Protocol):
    """What the manager feeds a run's reply with, in event order."""

    @property
    def visible(self) -> bool:
        """Whether the user can already see part of the reply (typing can stop)."""
        ...

    def message(self, event: MessageEvent) -> None: ...

    def tool(self, name: str | None) -> None:
        """A tool started (its name) or ended (None)."""
        ...

    def note(self, text: str) -> None:
        """Plain text to show after what was sent (e.g. the run's error)."""
        ...

    def end(self) -> None:
        """The run ended: finish what is shown."""
        ...


class BlockReply:
    """Finished blocks through the outbox; typing stays on until the run ends."""

    def __init__(self, plugin: ChannelPlugin, route: ChannelRoute, outbox: Outbox) -> None:
        self._plugin = plugin
        self._route = route
        self._outbox = outbox
        self._aggregator: MessageAggregator | None = None
        self._sent_any = False

    @property
    def visible(self) -> bool:
        return False

    def message(self, event: MessageEvent) -> None:
        if isinstance(event, MessageStart):
            limits = self._plugin.limits
            self._aggregator = MessageAggregator(
                self._block,
                min_chars=limits.min_chars,
                max_chars=limits.max_chars,
                measure=self._plugin.measure,
            )
        if self._aggregator is None:
            return
        self._aggregator.handle(event)
        if isinstance(event, MessageEnd):
            self._aggregator = None

    def tool(self, name: str | None) -> None:
        return None

    def note(self, text: str) -> None:
        self._put(text, plain=True)

    def end(self) -> None:
        return None

    def _block(self, block: Block) -> None:
        self._put(block.text, plain=False)

    def _put(self, text: str, *, plain: bool) -> None:
        kind: SendKind = "send" if self._sent_any else "reply"
        self._sent_any = True
        self._outbox.put(Outgoing(self._plugin, self._route, text, kind, plain))
