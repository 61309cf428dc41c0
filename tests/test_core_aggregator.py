"""MessageAggregator: break preference, fences, tables, max on every block, measure, idle flush,
event glue; and hypothesis properties over random Markdown, splittings and limits."""

from __future__ import annotations

import asyncio
import html
import itertools
import re
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.aggregator import Block, Measure, MessageAggregator
from hub.events import MessageEnd, MessageStart, MessageUpdate

_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_CLOSE = re.compile(r"(`{3,}|~{3,})[ \t]*")


def open_fence_after(text: str) -> str | None:
    """The fence still open at the end of `text` (CommonMark rules, written independently of
    the aggregator): None when every fence that opens also closes."""
    fence: str | None = None
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            continue
        if fence is None:
            match = _OPEN.fullmatch(stripped)
            if match and not (match[1][0] == "`" and "`" in match[2]):
                fence = match[1]
        else:
            match = _CLOSE.fullmatch(stripped)
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
                fence = None
    return fence


def html_len(text: str) -> int:
    """What a Telegram channel counts: the HTML-escaped length."""
    return len(html.escape(text, quote=False))


def chunk(
    deltas: Sequence[str],
    *,
    min_chars: int,
    max_chars: int,
    measure: Measure = len,
) -> list[Block]:
    blocks: list[Block] = []
    aggregator = MessageAggregator(
        blocks.append, min_chars=min_chars, max_chars=max_chars, measure=measure
    )
    for delta in deltas:
        aggregator.push(delta)
    aggregator.finish()
    return blocks


def check_blocks(text: str, blocks: list[Block], max_chars: int, measure: Measure = len) -> None:
    joined = "".join(block.body for block in blocks)
    # Only a trailing whitespace-only remainder may be left unsent.
    assert text.startswith(joined)
    assert text[len(joined) :].strip() == ""
    for index, block in enumerate(blocks):
        assert block.index == index
        assert measure(block.text) <= max_chars, block
        assert block.body.strip(), block
        assert open_fence_after(block.text) is None, block
        assert block.text == block.reopened + block.body + block.closed


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- break preference ---------------------------------------------------------------------


def test_paragraph_beats_newline() -> None:
    text = "one two three four.\nfive six.\n\nseven eight nine.\nten eleven twelve thirteen\n"
    blocks = chunk(pieces(text, 3), min_chars=10, max_chars=50)
    check_blocks(text, blocks, 50)
    assert blocks[0].text == "one two three four.\nfive six.\n\n"


def test_newline_beats_sentence() -> None:
    text = "First sentence. Second one here.\nThird sentence. Fourth is longer than that.\n"
    blocks = chunk(pieces(text, 4), min_chars=10, max_chars=60)
    check_blocks(text, blocks, 60)
    assert blocks[0].text == "First sentence. Second one here.\n"


def test_sentence_beats_word() -> None:
    text = "Alpha beta gamma. Delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron"
    blocks = chunk(pieces(text, 5), min_chars=10, max_chars=40)
    check_blocks(text, blocks, 40)
    assert blocks[0].text == "Alpha beta gamma. "


def test_word_beats_hard_cut() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    blocks = chunk(pieces(text, 7), min_chars=5, max_chars=20)
    check_blocks(text, blocks, 20)
    assert all(block.text.endswith(" ") for block in blocks[:-1])
    assert blocks[0].text == "alpha beta gamma "


def test_hard_cut_when_nothing_else_fits() -> None:
    text = "x" * 150
    blocks = chunk(pieces(text, 10), min_chars=20, max_chars=60)
    check_blocks(text, blocks, 60)
    assert [len(b.text) for b in blocks] == [60, 60, 30]


def test_later_break_of_the_same_kind_wins_within_max() -> None:
    text = "aaaa.\nbbbb.\ncccc.\ndddd.\neeee.\nffff.\ngggg.\nhhhh.\n"
    blocks = chunk([text], min_chars=5, max_chars=20)
    check_blocks(text, blocks, 20)
    assert [b.text for b in blocks[:2]] == ["aaaa.\nbbbb.\ncccc.\n", "dddd.\neeee.\nffff.\n"]


def test_nothing_sent_below_min_until_the_end() -> None:
    blocks: list[Block] = []
    aggregator = MessageAggregator(blocks.append, min_chars=100, max_chars=200)
    aggregator.push("Short.\n\nStill short.\n\n")
    assert blocks == []
    aggregator.finish()
    assert [b.text for b in blocks] == ["Short.\n\nStill short.\n\n"]


# -- fences and tables --------------------------------------------------------------------


def test_no_break_inside_an_open_fence_when_a_break_outside_fits() -> None:
    text = (
        "Intro line here.\n"
        "```python\nx = 1\ny = 2\nz = 3\n```\n"
        "Outro text follows here and it is long enough to overflow the block.\n"
    )
    blocks = chunk(pieces(text, 3), min_chars=10, max_chars=60)
    check_blocks(text, blocks, 60)
    assert all(not b.closed and not b.reopened for b in blocks)
    assert blocks[0].text == "Intro line here.\n```python\nx = 1\ny = 2\nz = 3\n```\n"


def test_forced_cut_in_a_fence_closes_and_reopens_with_the_info_string() -> None:
    code = "".join(f"line_{i} = {i}\n" for i in range(20))
    text = f"Code:\n~~~~ python title=x\n{code}~~~~\nDone.\n"
    blocks = chunk(pieces(text, 6), min_chars=30, max_chars=80)
    check_blocks(text, blocks, 80)
    cut = [b for b in blocks if b.closed]
    assert cut, blocks
    assert cut[0].closed.strip() == "~~~~"
    reopened = [b for b in blocks if b.reopened]
    assert reopened
    assert all(b.reopened == "~~~~ python title=x\n" for b in reopened)
    assert blocks[-1].text.endswith("~~~~\nDone.\n")


def test_fence_left_open_is_closed_in_the_last_block() -> None:
    text = "Look:\n```js\nlet a = 1;\n"
    blocks = chunk([text], min_chars=0, max_chars=100)
    check_blocks(text, blocks, 100)
    assert blocks[-1].text == "Look:\n```js\nlet a = 1;\n```"
    assert blocks[-1].closed == "```"


def test_fence_closing_line_without_newline_at_the_end_is_not_doubled() -> None:
    text = "```\ncode\n```"
    blocks = chunk(pieces(text, 2), min_chars=0, max_chars=100)
    assert [b.text for b in blocks] == [text]


def test_no_break_between_table_rows_when_a_break_before_the_table_fits() -> None:
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    text = "Here is the table, with some words.\n" + table + "After.\n"
    blocks = chunk(pieces(text, 5), min_chars=10, max_chars=60)
    check_blocks(text, blocks, 60)
    assert blocks[0].text == "Here is the table, with some words.\n"
    assert blocks[1].text.startswith(table)


def test_table_longer_than_max_is_cut_between_rows_not_inside_one() -> None:
    rows = "".join(f"| row {i:02} | value {i:02} |\n" for i in range(12))
    text = "| name | value |\n|---|---|\n" + rows
    blocks = chunk(pieces(text, 9), min_chars=20, max_chars=100)
    check_blocks(text, blocks, 100)
    assert len(blocks) > 1
    assert all(b.text.endswith("|\n") for b in blocks)


# -- max, measure, whitespace -------------------------------------------------------------


def test_final_flush_respects_max() -> None:
    text = "word " * 200
    blocks: list[Block] = []
    aggregator = MessageAggregator(blocks.append, min_chars=400, max_chars=500)
    aggregator.push(text[:480])  # below max: nothing yet
    assert blocks == []
    aggregator.push(text[480:])
    aggregator.finish()
    check_blocks(text, blocks, 500)
    assert len(blocks) >= 2


def test_custom_measure_counts_escaped_html() -> None:
    text = "a < b && c > d. " * 40
    blocks = chunk(pieces(text, 10), min_chars=20, max_chars=100, measure=html_len)
    check_blocks(text, blocks, 100, html_len)
    assert max(len(b.text) for b in blocks) < 100  # raw text is shorter than what is counted
    assert max(html_len(b.text) for b in blocks) > 80


def test_whitespace_only_remainder_is_not_sent() -> None:
    text = "Hello there.\n\n   \n"
    blocks = chunk([text], min_chars=0, max_chars=100)
    assert [b.text for b in blocks] == ["Hello there.\n\n   \n"]
    blocks = chunk(["Hello there.\n\n", " \n" * 5], min_chars=0, max_chars=20)
    assert [b.text for b in blocks] == ["Hello there.\n\n \n \n \n"]


def test_whitespace_run_longer_than_a_block_is_dropped_not_sent_alone() -> None:
    text = "start" + " " * 60 + "end"
    blocks = chunk([text], min_chars=0, max_chars=20)
    assert all(b.text.strip() and len(b.text) <= 20 for b in blocks)
    assert "".join(b.text for b in blocks).split() == ["start", "end"]


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        MessageAggregator(lambda b: None, min_chars=0, max_chars=10)
    with pytest.raises(ValueError, match="min_chars"):
        MessageAggregator(lambda b: None, min_chars=300, max_chars=200)


# -- events -------------------------------------------------------------------------------

BASE = {"agent_id": "main", "run_id": "r-1", "role": "assistant"}


def events(message_id: str, texts: Sequence[str], final: str) -> list[MessageUpdate | MessageEnd]:
    seq = iter(range(2, 10_000))
    updates: list[MessageUpdate | MessageEnd] = []
    previous = ""
    for text in texts:
        updates.append(
            MessageUpdate(
                **BASE,
                seq=next(seq),
                message_id=message_id,
                text=text,
                delta=text[len(previous) :],
            )
        )
        previous = text
    updates.append(MessageEnd(**BASE, seq=next(seq), message_id=message_id, text=final))
    return updates


def feed(
    aggregator: MessageAggregator, message_id: str, items: Sequence[MessageUpdate | MessageEnd]
) -> None:
    aggregator.handle(MessageStart(**BASE, seq=1, message_id=message_id))
    for item in items:
        aggregator.handle(item)


def test_text_only_in_message_end_is_still_sent() -> None:
    blocks: list[Block] = []
    aggregator = MessageAggregator(blocks.append, min_chars=0, max_chars=100)
    feed(aggregator, "m-1", events("m-1", ["Hello"], "Hello world, and more."))
    assert "".join(b.text for b in blocks) == "Hello world, and more."


def test_coalesced_updates_lose_nothing() -> None:
    text = ("Paragraph number one, with words. " * 4 + "\n\n") * 6
    prefixes = [text[:i] for i in range(7, len(text), 7)]
    full: list[Block] = []
    feed(
        MessageAggregator(full.append, min_chars=50, max_chars=200),
        "m",
        events("m", prefixes, text),
    )
    skipped: list[Block] = []
    feed(
        MessageAggregator(skipped.append, min_chars=50, max_chars=200),
        "m",
        events("m", prefixes[::9], text),
    )
    check_blocks(text, full, 200)
    check_blocks(text, skipped, 200)
    assert "".join(b.text for b in skipped) == "".join(b.text for b in full) == text


def test_a_new_message_resets_even_without_its_start() -> None:
    blocks: list[Block] = []
    aggregator = MessageAggregator(blocks.append, min_chars=0, max_chars=100)
    feed(aggregator, "m-1", events("m-1", ["First"], "First message."))
    # The second message's message_start was dropped (a ReadGap): its text still starts at 0.
    for item in events("m-2", ["Sec"], "Second message."):
        aggregator.handle(item)
    assert [b.text for b in blocks] == ["First message.", "Second message."]
    assert [b.index for b in blocks] == [0, 0]


async def test_idle_flush_sends_below_min_at_a_safe_break() -> None:
    blocks: list[Block] = []
    arrived = asyncio.Event()

    def on_block(block: Block) -> None:
        blocks.append(block)
        arrived.set()

    aggregator = MessageAggregator(on_block, min_chars=500, max_chars=1000, idle_flush=0.01)
    aggregator.push("A first line.\nand half of a seco")
    await asyncio.wait_for(arrived.wait(), 5)
    assert [b.text for b in blocks] == ["A first line.\n"]
    aggregator.push("nd line.")
    aggregator.finish()
    assert [b.text for b in blocks] == ["A first line.\n", "and half of a second line."]


async def test_idle_flush_never_cuts_inside_a_fence() -> None:
    blocks: list[Block] = []
    arrived = asyncio.Event()

    def on_block(block: Block) -> None:
        blocks.append(block)
        arrived.set()

    aggregator = MessageAggregator(on_block, min_chars=500, max_chars=1000, idle_flush=0.01)
    aggregator.push("Intro.\n```py\nx = 1\n")
    await asyncio.wait_for(arrived.wait(), 5)
    aggregator.flush()  # idle again: the open fence still holds
    assert [b.text for b in blocks] == ["Intro.\n"]
    aggregator.push("```\n")
    aggregator.finish()
    assert [b.text for b in blocks] == ["Intro.\n", "```py\nx = 1\n```\n"]


def test_flush_without_a_safe_break_sends_nothing() -> None:
    blocks: list[Block] = []
    aggregator = MessageAggregator(blocks.append, min_chars=500, max_chars=1000)
    aggregator.push("no newline yet")
    aggregator.flush()
    assert blocks == []
    aggregator.finish()
    assert [b.text for b in blocks] == ["no newline yet"]


# -- properties ---------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "x",
        "I",
        "a&b",
        "<tag>",
        "naïve",
        "🙂",
        "long" * 6,
        "l\u2028s",
        "c\rr",
    ]
)


@st.composite
def sentence(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORDS, min_size=1, max_size=8))
    return " ".join(words) + draw(st.sampled_from([".", "!", "?", "", ","]))


@st.composite
def paragraph(draw: st.DrawFn) -> str:
    return " ".join(draw(st.lists(sentence(), min_size=1, max_size=3)))


@st.composite
def fence(draw: st.DrawFn) -> str:
    marker = draw(st.sampled_from(["```", "~~~", "````", "~~~~"]))
    info = draw(st.sampled_from(["", "python", "js title=a", " sh"]))
    lines = draw(
        st.lists(st.one_of(sentence(), st.just(""), st.just("    indented()")), max_size=12)
    )
    closed = draw(st.booleans())
    body = "".join(line + "\n" for line in lines)
    return f"{marker}{info}\n{body}" + (f"{marker}\n" if closed else "")


@st.composite
def table(draw: st.DrawFn) -> str:
    rows = draw(st.lists(st.tuples(WORDS, WORDS), min_size=1, max_size=10))
    return "| k | v |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


@st.composite
def markdown(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(
                paragraph().map(lambda p: p + "\n\n"),
                paragraph().map(lambda p: p + "\n"),
                st.lists(sentence(), min_size=1, max_size=4).map(
                    lambda items: "".join(f"- {item}\n" for item in items) + "\n"
                ),
                fence(),
                table(),
            ),
            min_size=1,
            max_size=10,
        )
    )
    text = "".join(parts)
    if draw(st.booleans()):
        text = text.rstrip("\n")
    return text


@st.composite
def splitting(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=40))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def case(draw: st.DrawFn) -> tuple[str, list[str], int, int]:
    text = draw(markdown())
    max_chars = draw(st.integers(40, 400))
    min_chars = draw(st.integers(0, max_chars))
    return text, draw(splitting(text)), min_chars, max_chars


MEASURES: list[Callable[[str], int]] = [len, html_len]


@pytest.mark.parametrize("measure", MEASURES, ids=["len", "html"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=case())
def test_properties(measure: Measure, data: tuple[str, list[str], int, int]) -> None:
    text, deltas, min_chars, max_chars = data
    assert "".join(deltas) == text
    blocks = chunk(deltas, min_chars=min_chars, max_chars=max_chars, measure=measure)
    check_blocks(text, blocks, max_chars, measure)
    if text.strip():
        assert blocks
