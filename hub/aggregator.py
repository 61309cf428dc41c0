"""MessageAggregator: turns a streamed assistant message into sendable text blocks.

A chat app cannot take one ever-growing message, so channel surfaces send a reply as blocks.
Where a block ends, in order of preference: after a paragraph (blank line), after a line,
after a sentence, after a word; a hard cut only when nothing else fits. A block never ends
inside an open ``` / ~~~ fence or between two table rows unless forced; a forced cut inside a
fence closes the fence in that block and reopens it (with its info string) in the next.
Every block, including the final flush, measures at most `max_chars` by the channel's own
`measure` function (Telegram counts rendered HTML, not Markdown).

Work is linear in the reply's length: unsent text is kept as line records (`PendingText`),
so each delta costs O(len(delta)); a block's text is built once, when it is emitted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.events import MessageEnd, MessageStart, MessageUpdate
from hub.pending_text import FORCED, Cut, Kind, Measure, PendingText

__all__ = ["Block", "Measure", "MessageAggregator"]

_SENTENCE_END = re.compile(r"[.!?]+[)\"'\]]*\s+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a reply. `text` is what to send.

    `reopened` / `closed` are the synthetic fence lines the aggregator added around a forced cut
    inside a code fence; `body` is the slice of the original reply this block carries.
    """

    index: int
    text: str
    reopened: str = ""
    closed: str = ""

    @property
    def body(self) -> str:
        return self.text[len(self.reopened) : len(self.text) - len(self.closed)]


class MessageAggregator:
    """Chunks one assistant message at a time into blocks passed to `on_block`.

    Feed it `message_start` / `message_update` / `message_end` events (`handle`), or raw
    text with `push` and `finish`. With `idle_flush` (seconds) set, text that has waited that
    long without a new delta is sent without waiting for `min_chars`.
    """

    def __init__(
        self,
        on_block: Callable[[Block], None],
        *,
        min_chars: int = 200,
        max_chars: int = 2000,
        measure: Measure = len,
        idle_flush: float | None = None,
    ) -> None:
        if max_chars < 16:
            raise ValueError(f"max_chars must be at least 16, got {max_chars}")
        if not 0 <= min_chars <= max_chars:
            raise ValueError(f"min_chars must be in 0..max_chars, got {min_chars}")
        self._on_block = on_block
        self._min = min_chars
        self._max = max_chars
        self._measure = measure
        self._idle = idle_flush
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_push = 0.0
        self._seen = 0
        self._message_id: str | None = None
        self._index = 0
        self._pending = PendingText(measure)

    # -- event glue -------------------------------------------------------------------------

    def handle(self, event: MessageStart | MessageUpdate | MessageEnd) -> None:
        """Feed one message event. Updates are read by their full text, so coalesced updates
        (which skip intermediate deltas) lose nothing; text only present in message_end is
        still sent. An event of another message than the current one starts that message
        (as if its `message_start` had been dropped)."""
        if isinstance(event, MessageStart) or event.message_id != self._message_id:
            self._disarm_idle()
            self._message_id = event.message_id
            self._seen = 0
            self._index = 0
            self._pending.reset("", None)
            if isinstance(event, MessageStart):
                return
        if len(event.text) > self._seen:
            self.push(event.text[self._seen :])
        if isinstance(event, MessageEnd):
            self.finish()

    # -- streaming --------------------------------------------------------------------------

    def push(self, delta: str) -> None:
        """Append text and emit every block that is ready."""
        if not delta:
            return
        self._seen += len(delta)
        self._pending.append(delta)
        self._emit_ready(final=False)
        self._arm_idle()

    def finish(self) -> None:
        """End of the message: emit everything left, each block still within max."""
        self._disarm_idle()
        self._emit_ready(final=True)
        self._pending.reset("", None)

    def flush(self) -> None:
        """Emit what is pending up to its last safe break (never inside a fence or a table),
        without waiting for `min_chars`."""
        pending = self._pending
        if pending.partial_len == 0 and pending.lines and not pending.lines[-1].table_row:
            pending.decide_last(force=True)
        text = pending.text()
        cut = self._fitting(text, [c for c in pending.cuts if c.kind not in FORCED])
        if cut is not None:
            self._emit_cut(text, cut)

    def preview(self) -> str:
        """What is pending, as it would read if the message ended now (a fence left open
        closed): the live tail of the reply after the blocks already emitted."""
        text = self._pending.text()
        return self._pending.whole(text) if text.strip() else ""

    # -- emission ---------------------------------------------------------------------------

    def _emit_ready(self, *, final: bool) -> None:
        pending = self._pending
        while True:
            total = pending.est_total()
            if final:
                text = pending.text()
                if not text.strip():
                    return
                whole = pending.whole(text)
                if self._measure(whole) <= self._max:
                    closed = whole[len(pending.reopen) + len(text) :]
                    self._emit(whole, reopened=pending.reopen, closed=closed)
                    pending.reset("", None)
                    return
            elif total < self._min:
                return
            else:
                paragraph = pending.best(Kind.PARAGRAPH, self._min, self._max)
                if paragraph is None and total <= self._max:
                    return
                text = pending.text()
                if (
                    paragraph is not None
                    and text[: paragraph.raw].strip()
                    and self._fits(text, paragraph)
                ):
                    self._emit_cut(text, paragraph)
                    continue
            self._emit_cut(text, self._choose_cut(text))

    def _fits(self, text: str, cut: Cut) -> bool:
        return self._measure(self._pending.block_text(text, cut)) <= self._max

    def _choose_cut(self, text: str) -> Cut:
        """The best break whose block measures within max; a hard cut when none does."""
        cuts = self._pending.cuts
        for kind in (Kind.PARAGRAPH, Kind.NEWLINE):
            cut = self._fitting(text, [c for c in cuts if c.kind is kind and c.est >= self._min])
            if cut is not None:
                return cut
        for pattern, kind in ((_SENTENCE_END, Kind.SENTENCE), (_WHITESPACE, Kind.WORD)):
            inline = self._pending.inline_cuts(text, pattern, kind, self._max)
            cut = self._fitting(text, [c for c in inline if c.est >= self._min])
            if cut is not None:
                return cut
        cut = self._fitting(text, [c for c in cuts if c.kind in FORCED])
        if cut is not None and cut.est >= self._min:
            return cut
        below = self._fitting(text, [c for c in cuts if c.est < self._min])
        if cut is None or (below is not None and below.raw > cut.raw):
            cut = below
        return cut if cut is not None else self._hard_cut(text)

    def _fitting(self, text: str, cuts: list[Cut]) -> Cut | None:
        """The last of `cuts` (ordered by position) whose block fits and is not blank."""
        lead = len(text) - len(text.lstrip())
        cuts = [c for c in cuts if c.raw > lead]
        lo, hi, found = 0, len(cuts) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._fits(text, cuts[mid]):
                found, lo = cuts[mid], mid + 1
            else:
                hi = mid - 1
        return found

    def _hard_cut(self, text: str) -> Cut:
        """The longest prefix that fits, found by binary search on the real measure."""
        lo, hi = 1, len(text)
        best = 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._fits(text, Cut(mid, 0, Kind.WORD, self._pending.fence_for(mid))):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return Cut(best, 0, Kind.WORD, self._pending.fence_for(best))

    def _emit_cut(self, text: str, cut: Cut) -> None:
        pending = self._pending
        reopen = pending.reopen
        block = pending.block_text(text, cut)
        closed = block[len(reopen) + cut.raw :]
        if block[len(reopen) :].strip():
            self._emit(block, reopened=reopen, closed=closed)
        pending.reset(text[cut.raw :], cut.fence)

    def _emit(self, text: str, *, reopened: str = "", closed: str = "") -> None:
        block = Block(self._index, text, reopened, closed)
        self._index += 1
        self._on_block(block)

    # -- idle flush -------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is None:
            return
        self._last_push = time.monotonic()
        if self._idle_handle is None:
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(self._idle, self._on_idle)

    def _disarm_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _on_idle(self) -> None:
        assert self._idle is not None
        self._idle_handle = None
        waited = time.monotonic() - self._last_push
        if waited < self._idle:
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(self._idle - waited, self._on_idle)
            return
        self.flush()
