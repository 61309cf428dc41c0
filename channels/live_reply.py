"""A run's reply shown live: one message edited in place as the text grows.

The reply is cut into messages by a `MessageAggregator` with the plugin's limits (paragraph >
line > sentence > word; fences and tables kept whole), so a message is finished at a good
break just before its rendered text would pass the chat app's limit, and the reply continues
in a follow-up message. What each message should show is always derived from the whole reply
so far (finished blocks, then the aggregator's `preview` of the unfinished tail, plus a tool
status line while a tool runs), never appended from a delta; one worker makes the chat match
it:

- a message that does not exist yet is posted (the first one as a reply to the user's
  message), exactly once: the plugin probes instead of resending when the outcome is unknown;
- a growing message is edited at most once per `edit_interval`, and only when its rendered
  text changed; the plugin holds every call to the chat while a 429 `retry_after` is pending;
- a finished message gets its final text in one edit (none when it already shows it) and is
  never touched again;
- a message that only showed a tool's status becomes the next text's message, or is deleted
  when the run ends without more text;
- notes (the run's error) follow as plain messages once the reply is complete.

Each message is an outbox entry (`Outbox.record_live`) from the moment it is first posted or
its text is finished, whichever comes first: its final text and message id are noted on it
as they become known, and it is done once the message shows its final text. After a crash
the outbox finishes what was recorded (`channels.outbox`); previews in between are not
recorded, as the final edit supersedes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from channels.base import BlockLimits, LiveSurface
from channels.outbox import Outbox
from channels.outbox_store import Facts, Ticket
from channels.replies import MessageEvent
from hub.aggregator import Block, Measure, MessageAggregator
from hub.events import MessageEnd, MessageStart
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.channels")


@dataclass(slots=True)
class _Posted:
    message_id: str | None  # None: given up on (its text could not be delivered)
    shown: str
    final: bool


class LiveReply:
    """Feed it the run's events (sync, in order); `run()` is its worker."""

    def __init__(
        self,
        surface: LiveSurface,
        route: ChannelRoute,
        limits: BlockLimits,
        measure: Measure,
        *,
        outbox: Outbox,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        self._surface = surface
        self._outbox = outbox
        # The outbox entry of each message (by index), and of each note.
        self._tickets: dict[int, Ticket] = {}
        self._note_tickets: list[Ticket] = []
        self._route = route
        self._limits = limits
        self._measure = measure
        self._after = after
        self._aggregator: MessageAggregator | None = None
        self._blocks: list[str] = []
        self._preview = ""
        self._status = ""
        self._notes: list[str] = []
        self._ended = False
        self._posted: list[_Posted] = []
        self._notes_sent = 0
        self._last_edit = float("-inf")
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self.first_visible_at: float | None = None

    @property
    def visible(self) -> bool:
        return self.first_visible_at is not None

    # -- feeding ----------------------------------------------------------------------------

    def message(self, event: MessageEvent) -> None:
        if isinstance(event, MessageStart):
            self._aggregator = MessageAggregator(
                self._block,
                min_chars=self._limits.min_chars,
                max_chars=self._limits.max_chars,
                measure=self._measure,
            )
        if self._aggregator is None:
            return
        self._aggregator.handle(event)
        self._preview = self._aggregator.preview()
        if isinstance(event, MessageEnd):
            self._aggregator = None
            self._preview = ""
        self._wake.set()

    def tool(self, name: str | None) -> None:
        self._status = f"_running {name}…_" if name else ""
        self._wake.set()

    def note(self, text: str) -> None:
        reply = not self._posted and not self._blocks
        facts: Facts = {"final": text, "plain": True, "reply": reply}
        self._note_tickets.append(self._outbox.record_live(self._route, facts))
        self._notes.append(text)
        self._wake.set()

    def end(self) -> None:
        if self._aggregator is not None:
            # The message's end was lost (events dropped): what arrived is its final text.
            self._aggregator.finish()
            self._aggregator = None
        self._ended = True
        self._preview = ""
        self._status = ""
        self._wake.set()

    def _block(self, block: Block) -> None:
        index = len(self._blocks)
        self._blocks.append(block.text)
        ticket = self._tickets.get(index)
        if ticket is None:
            self._ticket(index, final=block.text)
        else:
            ticket.note(final=block.text)

    def _ticket(self, index: int, **facts: str) -> Ticket:
        ticket = self._tickets.get(index)
        if ticket is None:
            ticket = self._outbox.record_live(self._route, {"reply": index == 0, **facts})
            self._tickets[index] = ticket
        return ticket

    def _settle(self, index: int, outcome: str = "sent") -> None:
        """The message at `index` shows its final text (or never will): its entry is done."""
        ticket = self._tickets.get(index)
        if ticket is not None:
            ticket.done(outcome)

    # -- the worker -------------------------------------------------------------------------

    async def run(self) -> None:
        """Make the chat show the reply until the run ended and everything is shown."""
        if self._after is not None:
            # The previous reply in this chat finishes first, so messages stay in order.
            await asyncio.wait([self._after])
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while await self._step():
                    pass
                if self._ended and self._complete():
                    return
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _view(self) -> list[str]:
        """The Markdown each message of the reply should show now: the finished blocks, then
        the unfinished tail with the tool status line under it (or the status alone)."""
        texts = list(self._blocks)
        tail = self._preview if self._preview.strip() else ""
        if self._status:
            tail = f"{tail}\n\n{self._status}" if tail else self._status
        if tail:
            texts.append(tail)
        return texts

    def _complete(self) -> bool:
        view = self._view()
        return (
            len(self._posted) == len(view)
            and all(p.final or p.message_id is None for p in self._posted)
            and self._notes_sent == len(self._notes)
        )

    async def _step(self) -> bool:
        """Do the first thing that makes the chat closer to the view; False when nothing can
        be done now (a growing message waits for its edit interval: a timer wakes us)."""
        view = self._view()
        for index, markdown in enumerate(view):
            settled = index < len(self._blocks)
            if index < len(self._posted) and (
                self._posted[index].final or self._posted[index].message_id is None
            ):
                continue
            text = self._surface.render(markdown)
            if text is None:
                if index >= len(self._posted):
                    if not settled:
                        return False  # nothing to show yet, or too long: its block will fit
                    self._posted.append(_Posted(None, "", final=True))  # nothing visible
                    self._settle(index, "nothing to show")
                    continue
                continue  # keep showing the last text that fitted
            if index >= len(self._posted):
                await self._post(index, text, settled)
                return True
            posted = self._posted[index]
            if posted.shown == text:
                posted.final = settled
                if settled:
                    self._settle(index)
                continue
            if not settled:
                wait = self._last_edit + self._surface.edit_interval - time.monotonic()
                if wait > 0:
                    self._wake_in(wait)
                    return False
            await self._edit(index, posted, text, settled)
            return True
        if self._ended and len(self._posted) > len(view):
            # A message that only showed a tool's status, with no text after the tool.
            extra = self._posted.pop()
            self._settle(len(self._posted), "deleted: it only showed a tool's status")
            if extra.message_id is not None:
                await self._surface.delete(self._route, extra.message_id)
            return True
        if self._ended and self._notes_sent < len(self._notes):
            note, ticket = self._notes[self._notes_sent], self._note_tickets[self._notes_sent]
            self._notes_sent += 1
            note_id = await self._surface.post(
                self._route, note, reply=not self._posted, plain=True, ticket=ticket
            )
            ticket.done("sent" if note_id is not None else "ended")
            return True
        return False

    async def _post(self, index: int, text: str, settled: bool) -> None:
        ticket = self._ticket(index)
        message_id = await self._surface.post(
            self._route, text, reply=index == 0, plain=False, ticket=ticket
        )
        self._last_edit = time.monotonic()
        if message_id is None:
            log.error("channel %s: a live reply's message was lost", self._route.channel)
            self._settle(index, "ended")
        else:
            ticket.note(message=message_id)
            if settled:
                self._settle(index)
            if self.first_visible_at is None:
                self.first_visible_at = self._last_edit
        self._posted.append(_Posted(message_id, text, settled))

    async def _edit(self, index: int, posted: _Posted, text: str, settled: bool) -> None:
        """Edits go through the message's outbox entry, retried as long as a send is: the
        chat waits meanwhile, and the next edit shows the newest text."""
        assert posted.message_id is not None
        ticket = self._tickets.get(index)
        ok = await self._surface.edit(self._route, posted.message_id, text, ticket=ticket)
        self._last_edit = time.monotonic()
        if ok:
            posted.shown, posted.final = text, settled
            if settled:
                self._settle(index)
        else:
            log.error("channel %s: a live reply's message can no longer be edited",
                      self._route.channel)  # fmt: skip
            posted.message_id = None
            self._settle(index, "ended: the message can no longer be edited")

    def _wake_in(self, delay: float) -> None:
        if self._timer is None or self._timer.when() <= asyncio.get_running_loop().time():
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)
