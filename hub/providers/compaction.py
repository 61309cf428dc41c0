"""`BudgetCompactor`: keeps an agent's context within its model's token budget.

After a run, when the context takes more than 80 % of the window (the provider's reported
count, else an estimate of 4 characters per token), the oldest part is cut so about 50 % is
left. Cuts fall only before a user message, so a run's assistant text and tool entries stay
together, and at least the last 10 entries are always kept. The removed part can be
summarised by the model; a failed summary just means none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from hub.model import CompactionPlan, UsageReport
from hub.sessions import HistoryEntry, MessageEntry

log = logging.getLogger("agenthub.compaction")

DEFAULT_CONTEXT_WINDOW = 32_000
# Longest prefix wins; the figures are the families' documented windows, rounded down.
_KNOWN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_000_000),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5", 16_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    ("llama3", 128_000),
    ("llama-3", 128_000),
    ("qwen", 32_000),
    ("mistral", 32_000),
    ("gemma3", 32_000),
    ("gemma", 8_192),
)
# Tokens a message costs beyond its text (role markers, separators).
_PER_ENTRY_TOKENS = 4

# (removed entries, max tokens, the summary they already had) -> the new summary.
Summarizer = Callable[[Sequence[HistoryEntry], int, str | None], Awaitable[str]]


def context_window_for(model_name: str, configured: int | None = None) -> int:
    """The configured window, else the known family's, else `DEFAULT_CONTEXT_WINDOW`."""
    if configured:
        return configured
    name = model_name.lower().rpartition("/")[2]
    matches = [(prefix, size) for prefix, size in _KNOWN_WINDOWS if name.startswith(prefix)]
    return max(matches, key=lambda m: len(m[0]))[1] if matches else DEFAULT_CONTEXT_WINDOW


def estimate_tokens(entry: HistoryEntry) -> int:
    if isinstance(entry, MessageEntry):
        chars = len(entry.text)
    else:
        chars = len(entry.tool_name) + len(json.dumps(entry.args)) + len(json.dumps(entry.result))
    return chars // 4 + _PER_ENTRY_TOKENS


class BudgetCompactor:
    """A `hub.model.Compactor` for one agent (it remembers the last reported overhead)."""

    def __init__(
        self,
        context_window: int,
        *,
        summarize: Summarizer | None = None,
        overhead_tokens: int = 0,
        trigger: float = 0.8,
        target: float = 0.5,
        keep_last: int = 10,
    ) -> None:
        self.context_window = context_window
        self.summarize = summarize
        self.trigger = trigger
        self.target = target
        self.keep_last = keep_last
        # System prompt and tool definitions: not in the entries, but in every request.
        self.overhead_tokens = overhead_tokens

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        estimate = sum(map(estimate_tokens, context))
        if usage is not None and usage.context_tokens:
            used = usage.context_tokens
            self.overhead_tokens = max(0, used - estimate)
            source = "reported"
        else:
            used = estimate + self.overhead_tokens
            source = "estimated"
        if used <= self.trigger * self.context_window:
            return None
        share = round(100 * used / self.context_window)
        return f"context at {used} of {self.context_window} tokens ({share}%, {source})"

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        """`previous_summary` (the last compaction's) is folded into the new summary, so what
        was compacted earlier is not forgotten."""
        cut = self._cut(context)
        if cut == 0:
            return CompactionPlan(first_kept_id=None, removed=0, kept=len(context))
        removed = context[:cut]
        summary = None
        if self.summarize is not None:
            try:
                budget = max(64, self.context_window // 10)
                summary = await self.summarize(removed, budget, previous_summary)
            except Exception as exc:
                log.warning("compaction summary failed, compacting without one: %s", exc)
        return CompactionPlan(
            first_kept_id=context[cut].id, removed=cut, kept=len(context) - cut, summary=summary
        )

    def _cut(self, context: Sequence[HistoryEntry]) -> int:
        """Index of the first kept entry: the latest allowed cut that fits the target, or the
        allowed cut keeping least when none fits; 0 when no cut is allowed."""
        budget = self.target * self.context_window - self.overhead_tokens
        last_allowed = len(context) - self.keep_last
        kept_tokens = 0
        best = 0
        for index in range(len(context) - 1, 0, -1):
            kept_tokens += estimate_tokens(context[index])
            if index > last_allowed or not _is_turn_start(context[index]):
                continue
            if kept_tokens > budget and best:
                break
            best = index
        return best


def _is_turn_start(entry: HistoryEntry) -> bool:
    return isinstance(entry, MessageEntry) and entry.role == "user"
