"""MessageAggregator: turns a streamed assistant message into sendable text blocks.

A chat app cannot take one ever-growing message, so channel surfaces send a reply as blocks.
rules, in order of preference for where a block ends: after a paragraph (blank line), after a
line, after a sentence, after a word; a hard cut only when nothing else fits. A block never
ends inside an open ``` / ~~~ fence or between two table rows unless forced; a forced cut
inside a fence closes the fence in that block and reopens it (with its info string) in the
next. Every block, including the final flush, measures at most `max_chars` by the channel's
own `measure` function (Telegram counts rendered HTML, not Markdown).

Work is linear in the reply's length: text is kept as completed line records with their
measured size, so each delta costs O(len(delta)); a block's text is built once, when it is
emitted, from what is pending (at most about `max_chars` plus one line).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from hub.events import MessageEnd, MessageStart, MessageUpdate

Measure = Callable[[str], int]

_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r"(`{3,}|~{3,})[ \t]*")
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


@dataclass(frozen=True, slots=True)
class _Fence:
    char: str
    length: int
    opener: str

    def close_line(self) -> str:
        return self.char * self.length

    def reopen_line(self) -> str:
        return self.opener + "\n"


def _after_line(line: str, fence: _Fence | None) -> _Fence | None:
    """The fence state after `line`, given the state before it (CommonMark fences)."""
    body = line.rstrip("\n")
    stripped = body.lstrip(" ")
    if len(body) - len(stripped) > 3:
        return fence
    if fence is None:
        match = _FENCE_OPEN.fullmatch(stripped)
        if match is None or (match[1][0] == "`" and "`" in match[2]):
            return None
        return _Fence(match[1][0], len(match[1]), stripped)
    match = _FENCE_CLOSE.fullmatch(stripped)
    if match and match[1][0] == fence.char and len(match[1]) >= fence.length:
        return None
    return fence


class _Kind(IntEnum):
    """Break kinds, best first."""

    PARAGRAPH = 0
    NEWLINE = 1
    SENTENCE = 2
    WORD = 3
    # Forced breaks: inside an open fence (closed and reopened around the cut), between rows.
    FENCE_NEWLINE = 4
    TABLE_NEWLINE = 5


_FORCED = (_Kind.FENCE_NEWLINE, _Kind.TABLE_NEWLINE)


@dataclass(slots=True)
class _Line:
    text: str
    est: int
    fence_after: _Fence | None
    table_row: bool
    blank: bool


@dataclass(frozen=True, slots=True)
class _Cut:
    raw: int
    est: int
    kind: _Kind
    fence: _Fence | None


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
        self._lines: list[_Line] = []
        self._cuts: list[_Cut] = []
        self._paragraphs: list[_Cut] = []
        self._raw_ends: list[int] = []
        self._est_ends: list[int] = []
        self._fence: _Fence | None = None
        self._reopen = ""
        self._reopen_est = 0
        self._decided = 0
        self._partial: list[str] = []
        self._partial_len = 0
        self._partial_content = False

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
            self._reset_pending("", None)
            if isinstance(event, MessageStart):
                return
        if len(event.text) > self._seen:
            self.push(event.text[self._seen :])
        if isinstance(event, MessageEnd):
            self.finish()

    @property
    def blocks_emitted(self) -> int:
        return self._index

    # -- streaming --------------------------------------------------------------------------

    def push(self, delta: str) -> None:
        """Append text and emit every block that is ready."""
        if not delta:
            return
        self._seen += len(delta)
        start = 0
        while True:
            newline = delta.find("\n", start)
            if newline < 0:
                break
            self._partial.append(delta[start : newline + 1])
            self._complete_line()
            start = newline + 1
        if start < len(delta):
            rest = delta[start:]
            self._partial.append(rest)
            self._partial_len += len(rest)
            if not self._partial_content and not rest.isspace():
                self._partial_content = True
                self._decide_last()
        self._emit_ready(final=False)
        self._arm_idle()

    def finish(self) -> None:
        """End of the message: emit everything left, each block still within max."""
        self._disarm_idle()
        self._emit_ready(final=True)
        self._reset_pending("", None)

    def flush(self) -> None:
        """Emit what is pending up to its last safe break (never inside a fence or a table),
        without waiting for `min_chars`."""
        if self._partial_len == 0 and self._lines and not self._lines[-1].table_row:
            self._decide_last(force=True)
        text = self._text()
        safe = [c for c in self._cuts if c.kind not in _FORCED]
        cut = self._fitting(text, safe)
        if cut is not None:
            self._emit_cut(text, cut)

    # -- pending text -----------------------------------------------------------------------

    def _reset_pending(self, text: str, fence: _Fence | None) -> None:
        self._lines = []
        self._cuts = []
        self._paragraphs = []
        self._raw_ends = []
        self._est_ends = []
        self._fence = fence
        self._reopen = fence.reopen_line() if fence else ""
        self._reopen_est = self._measure(self._reopen) if fence else 0
        self._decided = 0
        self._partial = []
        self._partial_len = 0
        self._partial_content = False
        if text:
            # Lines end at "\n" only, as in `push` (str.splitlines also splits at \r, \u2028…).
            *lines, tail = text.split("\n")
            for line in lines:
                self._partial = [line + "\n"]
                self._complete_line()
            if tail:
                self._partial = [tail]
                self._partial_len = len(tail)
                self._partial_content = not tail.isspace()
                self._decide_last()

    def _complete_line(self) -> None:
        text = "".join(self._partial)
        self._partial = []
        self._partial_len = 0
        self._partial_content = False
        before = self._fence
        self._fence = _after_line(text, before)
        stripped = text.strip()
        self._lines.append(
            _Line(
                text=text,
                est=self._measure(text),
                fence_after=self._fence,
                table_row=before is None and stripped.startswith("|"),
                blank=before is None and not stripped,
            )
        )
        prev_raw = self._raw_ends[-1] if self._raw_ends else 0
        prev_est = self._est_ends[-1] if self._est_ends else self._reopen_est
        self._raw_ends.append(prev_raw + len(text))
        self._est_ends.append(prev_est + self._lines[-1].est)
        # The line before this one now has a known successor: its break can be judged.
        if len(self._lines) >= 2:
            self._decide(len(self._lines) - 2, self._lines[-1])

    def _decide_last(self, *, force: bool = False) -> None:
        """Judge the break after the last complete line once what follows it is known."""
        if self._lines and self._decided < len(self._lines):
            following = "".join(self._partial)
            next_line = _Line(
                following,
                0,
                None,
                self._fence is None and following.lstrip().startswith("|"),
                self._fence is None and not following.strip(),
            )
            if force or self._partial_content:
                self._decide(len(self._lines) - 1, next_line)

    def _decide(self, i: int, following: _Line) -> None:
        if i < self._decided:
            return
        self._decided = i + 1
        line = self._lines[i]
        if line.fence_after is not None:
            kind = _Kind.FENCE_NEWLINE
        elif line.table_row and following.table_row:
            kind = _Kind.TABLE_NEWLINE
        elif line.blank and not following.blank:
            kind = _Kind.PARAGRAPH
        else:
            kind = _Kind.NEWLINE
        cut = _Cut(self._raw_ends[i], self._est_ends[i], kind, line.fence_after)
        self._cuts.append(cut)
        if kind is _Kind.PARAGRAPH:
            self._paragraphs.append(cut)

    def _est_total(self) -> int:
        complete = self._est_ends[-1] if self._est_ends else self._reopen_est
        return complete + self._partial_len

    def _text(self) -> str:
        return "".join(line.text for line in self._lines) + "".join(self._partial)

    # -- emission ---------------------------------------------------------------------------

    def _emit_ready(self, *, final: bool) -> None:
        while True:
            total = self._est_total()
            if final:
                text = self._text()
                if not text.strip():
                    return
                whole = self._final_block(text)
                if self._measure(whole) <= self._max:
                    closed = whole[len(self._reopen) + len(text) :]
                    self._emit(whole, reopened=self._reopen, closed=closed)
                    self._reset_pending("", None)
                    return
            elif total < self._min:
                return
            else:
                paragraph = self._best(_Kind.PARAGRAPH, self._min, self._max)
                if paragraph is None and total <= self._max:
                    return
                text = self._text()
                if (
                    paragraph is not None
                    and text[: paragraph.raw].strip()
                    and self._fits(text, paragraph)
                ):
                    self._emit_cut(text, paragraph)
                    continue
            self._emit_cut(text, self._choose_cut(text))

    def _best(self, kind: _Kind, low: int, high: int) -> _Cut | None:
        """The last break of `kind` whose estimated size lies in [low, high]."""
        for cut in reversed(self._paragraphs if kind is _Kind.PARAGRAPH else self._cuts):
            if cut.est < low:
                return None
            if cut.kind is kind and cut.est <= high:
                return cut
        return None

    def _final_block(self, text: str) -> str:
        """All of `text` as the last block, closing a fence the reply left open."""
        fence = self._fence
        if self._partial:
            fence = _after_line("".join(self._partial), fence)
        if fence is None:
            return self._reopen + text
        newline = "" if text.endswith("\n") else "\n"
        return self._reopen + text + newline + fence.close_line()

    def _block_text(self, text: str, cut: _Cut) -> str:
        body = text[: cut.raw]
        if cut.fence is None:
            return self._reopen + body
        newline = "" if body.endswith("\n") else "\n"
        return self._reopen + body + newline + cut.fence.close_line()

    def _fits(self, text: str, cut: _Cut) -> bool:
        return self._measure(self._block_text(text, cut)) <= self._max

    def _choose_cut(self, text: str) -> _Cut:
        """The best break whose block measures within max; a hard cut when none does."""
        for kind in (_Kind.PARAGRAPH, _Kind.NEWLINE):
            cut = self._fitting(
                text, [c for c in self._cuts if c.kind is kind and c.est >= self._min]
            )
            if cut is not None:
                return cut
        for pattern, kind in ((_SENTENCE_END, _Kind.SENTENCE), (_WHITESPACE, _Kind.WORD)):
            inline = [c for c in self._inline_cuts(text, pattern, kind) if c.est >= self._min]
            cut = self._fitting(text, inline)
            if cut is not None:
                return cut
        cut = self._fitting(text, [c for c in self._cuts if c.kind in _FORCED])
        if cut is not None and cut.est >= self._min:
            return cut
        below = self._fitting(text, [c for c in self._cuts if c.est < self._min])
        if cut is None or (below is not None and below.raw > cut.raw):
            cut = below
        return cut if cut is not None else self._hard_cut(text)

    def _fitting(self, text: str, cuts: list[_Cut]) -> _Cut | None:
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

    def _inline_cuts(self, text: str, pattern: re.Pattern[str], kind: _Kind) -> list[_Cut]:
        """Sentence or word breaks inside lines that lie outside fences, up to about max."""
        cuts: list[_Cut] = []
        start = 0
        est_start = self._reopen_est
        fence = self._fence_at_start()
        spans = [(line.text, line.est, before) for line, before in self._with_fences(fence)]
        if self._partial:
            spans.append(("".join(self._partial), self._partial_len, self._fence))
        for line_text, line_est, before in spans:
            if est_start > self._max:
                break
            if (
                before is None
                and _after_line(line_text, None) is None
                and not line_text.lstrip().startswith("|")
            ):
                for match in pattern.finditer(line_text.rstrip("\n")):
                    raw = start + match.end()
                    if raw < len(text):
                        cuts.append(_Cut(raw, est_start + match.end(), kind, None))
            start += len(line_text)
            est_start += line_est
        return cuts

    def _fence_at_start(self) -> _Fence | None:
        if not self._reopen:
            return None
        return _after_line(self._reopen, None)

    def _with_fences(self, first: _Fence | None) -> list[tuple[_Line, _Fence | None]]:
        result: list[tuple[_Line, _Fence | None]] = []
        before = first
        for line in self._lines:
            result.append((line, before))
            before = line.fence_after
        return result

    def _hard_cut(self, text: str) -> _Cut:
        """The longest prefix that fits, found by binary search on the real measure."""
        fence = self._fence_at_start()
        lo, hi = 1, len(text)
        best = 1
        while lo <= hi:
            mid = (lo + hi) // 2
            cut = _Cut(mid, 0, _Kind.WORD, self._fence_for(text, mid, fence))
            if self._fits(text, cut):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return _Cut(best, 0, _Kind.WORD, self._fence_for(text, best, fence))

    def _fence_for(self, text: str, raw: int, first: _Fence | None) -> _Fence | None:
        """The fence open at raw offset `raw`: the state after the last complete line before it,
        or the state inside the line it falls in."""
        fence = first
        pos = 0
        for line in self._lines:
            if pos + len(line.text) > raw:
                return fence
            pos += len(line.text)
            fence = line.fence_after
        return fence

    def _emit_cut(self, text: str, cut: _Cut) -> None:
        block = self._block_text(text, cut)
        closed = block[len(self._reopen) + cut.raw :]
        if block[len(self._reopen) :].strip():
            self._emit(block, reopened=self._reopen, closed=closed)
        self._reset_pending(text[cut.raw :], cut.fence)

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
