"""Aggregator linearity: a 200k-character reply in 10-character deltas against a 100k one.

The reply is realistic Markdown (paragraphs, lists, code fences, a table), fed to
MessageAggregator with `push` exactly as `handle` feeds it from message updates. If the work
is linear the 200k reply takes twice as long. Target: time ratio <= 2.3. Also printed: the
absolute throughput, for the default limits (200/2000, `len`) and Telegram's (3800/4000,
measured as escaped HTML). Times are the process's CPU time (the box is shared), the median of
REPEATS runs with the two sizes interleaved (a best-of would let one lucky short run decide).

Run: .venv/bin/python bench/bench_aggregator.py
"""

from __future__ import annotations

import html
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from hub.aggregator import Block, Measure, MessageAggregator

DELTA = 10
REPEATS = 21


def markdown(size: int) -> str:
    """Whole sections of varied Markdown, at least `size` characters."""
    sections: list[str] = []
    n = length = 0
    while length < size:
        n += 1
        sections.append(
            f"## Section {n}\n\n"
            "This paragraph explains the idea in plain words. It has several sentences, "
            "some of them longer than others! Does it end? Eventually it does, after a "
            f"reference to item {n} and a little *emphasis* and `code`.\n\n"
            "- first point, short\n- second point, with a [link](https://example.com)\n"
            "- third point that goes on for a while to make the line longer than most\n\n"
            "```python\n"
            + "".join(
                f"def step_{n}_{i}(x: int) -> int:\n    return x * {i} + {n}\n" for i in range(6)
            )
            + "```\n\n"
            "| key | value | note |\n|-----|-------|------|\n"
            + "".join(f"| k{i} | {i * n} | row {i} & more |\n" for i in range(5))
            + "\n"
            "A closing paragraph < with > a few & characters that escape in HTML.\n\n"
        )
        length += len(sections[-1])
    return "".join(sections)


def html_len(text: str) -> int:
    return len(html.escape(text, quote=False))


def feed(text: str, min_chars: int, max_chars: int, measure: Measure) -> tuple[float, int]:
    """CPU seconds to chunk `text` once, and how many blocks it made."""
    blocks: list[Block] = []
    aggregator = MessageAggregator(
        blocks.append, min_chars=min_chars, max_chars=max_chars, measure=measure
    )
    start = time.process_time()
    for i in range(0, len(text), DELTA):
        aggregator.push(text[i : i + DELTA])
    aggregator.finish()
    elapsed = time.process_time() - start
    joined = "".join(b.body for b in blocks)
    assert text.startswith(joined)
    assert not text[len(joined) :].strip()
    return elapsed, len(blocks)


def median_of(
    small: str, large: str, min_chars: int, max_chars: int, measure: Measure
) -> tuple[tuple[float, int], tuple[float, int]]:
    """Median times for both texts (and their block counts), interleaved so load on the box
    hits both alike."""
    runs = [
        (feed(small, min_chars, max_chars, measure), feed(large, min_chars, max_chars, measure))
        for _ in range(REPEATS)
    ]
    small_runs = sorted(run[0] for run in runs)
    large_runs = sorted(run[1] for run in runs)
    return small_runs[REPEATS // 2], large_runs[REPEATS // 2]


def main() -> bool:
    # The long reply is the short one twice: the same mix of content, so a ratio above 2 can
    # only come from the algorithm, not from where breaks happen to fall.
    small = markdown(100_000)
    large = small * 2
    ok = True
    for label, min_chars, max_chars, measure in (
        ("default 200/2000, len", 200, 2000, len),
        ("telegram 3800/4000, html", 3800, 4000, html_len),
    ):
        (t_small, n_small), (t_large, n_large) = median_of(
            small, large, min_chars, max_chars, measure
        )
        print(
            f"aggregator [{label}]: 100k chars -> {n_small} blocks in {t_small * 1000:.1f} ms "
            f"({len(small) / t_small / 1e6:.2f} M chars/s); 200k chars -> {n_large} blocks in "
            f"{t_large * 1000:.1f} ms ({len(large) / t_large / 1e6:.2f} M chars/s)"
        )
        ok &= report(
            f"aggregator linearity [{label}] time 200k / 100k",
            baseline=t_small,
            candidate=t_large,
            unit="s",
            target=2.3,
            higher_is_better=False,
        )
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
