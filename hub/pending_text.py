"""The text a `MessageAggregator` holds but has not sent yet, kept as line records.

Each completed line carries its measured size and the code-fence state after it, and every
line end is judged once as a break (paragraph, newline, or a forced break inside a fence or
between table rows) as soon as what follows it is known. So a delta costs O(len(delta)) and
choosing where a block ends never re-reads the whole reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

Measure = Callable[[str], int]

_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r"(`{3,}|~{3,})[ \t]*")


@dataclass(frozen=True, slots=True)
class Fence:
    char: str
    length: int
    opener: str

    def close_line(self) -> str:
        return self.char * self.length

    def reopen_line(self) -> str:
        return self.opener + "\n"


def after_line(line: str, fence: Fence | None) -> Fence | None:
    """The fence state after `line`, given the state before it (CommonMark fences)."""
    body = line.rstrip("\n")
    stripped = body.lstrip(" ")
    if len(body) - len(stripped) > 3:
        return fence
    if fence is None:
        match = _FENCE_OPEN.fullmatch(stripped)
        if match is None or (match[1][0] == "`" and "`" in match[2]):
            return None
        return Fence(match[1][0], len(match[1]), stripped)
    match = _FENCE_CLOSE.fullmatch(stripped)
    if match and match[1][0] == fence.char and len(match[1]) >= fence.length:
        return None
    return fence


def closed_fence(text: str, fence: Fence | None) -> str:
    """`text` with `fence` (open at its end) closed on a line of its own."""
    if fence is None:
        return text
    newline = "" if text.endswith("\n") else "\n"
    return text + newline + fence.close_line()


class Kind(IntEnum):
    """Break kinds, best first."""

    PARAGRAPH = 0
    NEWLINE = 1
    SENTENCE = 2
    WORD = 3
    # Forced breaks: inside an open fence (closed and reopened around the cut), between rows.
    FENCE_NEWLINE = 4
    TABLE_NEWLINE = 5


FORCED = (Kind.FENCE_NEWLINE, Kind.TABLE_NEWLINE)


@dataclass(slots=True)
class Line:
    text: str
    est: int
    fence_after: Fence | None
    table_row: bool
    blank: bool


@dataclass(frozen=True, slots=True)
class Cut:
    """A place a block may end: `raw` offset into the pending text, `est` measured size of
    the block up to it, and the fence left open there (closed and reopened around the cut)."""

    raw: int
    est: int
    kind: Kind
    fence: Fence | None


class PendingText:
    """Unsent text: completed lines with their judged breaks, plus the partial last line.
    `reopen` is the fence line a previous forced cut left open, repeated at the start."""

    def __init__(self, measure: Measure) -> None:
        self._measure = measure
        self.reset("", None)

    def reset(self, text: str, fence: Fence | None) -> None:
        self.lines: list[Line] = []
        self.cuts: list[Cut] = []
        self.paragraphs: list[Cut] = []
        self._raw_ends: list[int] = []
        self._est_ends: list[int] = []
        self.fence = fence
        self.reopen = fence.reopen_line() if fence else ""
        self.reopen_est = self._measure(self.reopen) if fence else 0
        self._decided = 0
        self.partial: list[str] = []
        self.partial_len = 0
        self._partial_content = False
        if text:
            # Lines end at "\n" only, as in `append` (str.splitlines also splits at \r, …).
            *lines, tail = text.split("\n")
            for line in lines:
                self.partial = [line + "\n"]
                self._complete_line()
            if tail:
                self.partial = [tail]
                self.partial_len = len(tail)
                self._partial_content = not tail.isspace()
                self.decide_last()

    def append(self, delta: str) -> None:
        start = 0
        while True:
            newline = delta.find("\n", start)
            if newline < 0:
                break
            self.partial.append(delta[start : newline + 1])
            self._complete_line()
            start = newline + 1
        if start < len(delta):
            rest = delta[start:]
            self.partial.append(rest)
            self.partial_len += len(rest)
            if not self._partial_content and not rest.isspace():
                self._partial_content = True
                self.decide_last()

    def _complete_line(self) -> None:
        text = "".join(self.partial)
        self.partial = []
        self.partial_len = 0
        self._partial_content = False
        before = self.fence
        self.fence = after_line(text, before)
        stripped = text.strip()
        self.lines.append(
            Line(
                text=text,
                est=self._measure(text),
                fence_after=self.fence,
                table_row=before is None and stripped.startswith("|"),
                blank=before is None and not stripped,
            )
        )
        prev_raw = self._raw_ends[-1] if self._raw_ends else 0
        prev_est = self._est_ends[-1] if self._est_ends else self.reopen_est
        self._raw_ends.append(prev_raw + len(text))
        self._est_ends.append(prev_est + self.lines[-1].est)
        # The line before this one now has a known successor: its break can be judged.
        if len(self.lines) >= 2:
            self._decide(len(self.lines) - 2, self.lines[-1])

    def decide_last(self, *, force: bool = False) -> None:
        """Judge the break after the last complete line once what follows it is known."""
        if self.lines and self._decided < len(self.lines):
            following = "".join(self.partial)
            next_line = Line(
                following,
                0,
                None,
                self.fence is None and following.lstrip().startswith("|"),
                self.fence is None and not following.strip(),
            )
            if force or self._partial_content:
                self._decide(len(self.lines) - 1, next_line)

    def _decide(self, i: int, following: Line) -> None:
        if i < self._decided:
            return
        self._decided = i + 1
        line = self.lines[i]
        if line.fence_after is not None:
            kind = Kind.FENCE_NEWLINE
        elif line.table_row and following.table_row:
            kind = Kind.TABLE_NEWLINE
        elif line.blank and not following.blank:
            kind = Kind.PARAGRAPH
        else:
            kind = Kind.NEWLINE
        cut = Cut(self._raw_ends[i], self._est_ends[i], kind, line.fence_after)
        self.cuts.append(cut)
        if kind is Kind.PARAGRAPH:
            self.paragraphs.append(cut)

    def est_total(self) -> int:
        complete = self._est_ends[-1] if self._est_ends else self.reopen_est
        return complete + self.partial_len

    def text(self) -> str:
        return "".join(line.text for line in self.lines) + "".join(self.partial)

    def best(self, kind: Kind, low: int, high: int) -> Cut | None:
        """The last break of `kind` whose estimated size lies in [low, high]."""
        for cut in reversed(self.paragraphs if kind is Kind.PARAGRAPH else self.cuts):
            if cut.est < low:
                return None
            if cut.kind is kind and cut.est <= high:
                return cut
        return None

    def whole(self, text: str) -> str:
        """All of `text` as one block, closing a fence the reply left open."""
        fence = self.fence
        if self.partial:
            fence = after_line("".join(self.partial), fence)
        return closed_fence(self.reopen + text, fence)

    def block_text(self, text: str, cut: Cut) -> str:
        return closed_fence(self.reopen + text[: cut.raw], cut.fence)

    def inline_cuts(self, text: str, pattern: re.Pattern[str], kind: Kind, limit: int) -> list[Cut]:
        """Sentence or word breaks inside lines that lie outside fences, up to about `limit`."""
        cuts: list[Cut] = []
        start = 0
        est_start = self.reopen_est
        fence = self.fence_at_start()
        spans: list[tuple[str, int, Fence | None]] = []
        for line in self.lines:
            spans.append((line.text, line.est, fence))
            fence = line.fence_after
        if self.partial:
            spans.append(("".join(self.partial), self.partial_len, self.fence))
        for line_text, line_est, before in spans:
            if est_start > limit:
                break
            if (
                before is None
                and after_line(line_text, None) is None
                and not line_text.lstrip().startswith("|")
            ):
                for match in pattern.finditer(line_text.rstrip("\n")):
                    raw = start + match.end()
                    if raw < len(text):
                        cuts.append(Cut(raw, est_start + match.end(), kind, None))
            start += len(line_text)
            est_start += line_est
        return cuts

    def fence_at_start(self) -> Fence | None:
        if not self.reopen:
            return None
        return after_line(self.reopen, None)

    def fence_for(self, raw: int) -> Fence | None:
        """The fence open at raw offset `raw`: the state after the last complete line before
        it, or the state inside the line it falls in."""
        fence = self.fence_at_start()
        pos = 0
        for line in self.lines:
            if pos + len(line.text) > raw:
                return fence
            pos += len(line.text)
            fence = line.fence_after
        return fence
