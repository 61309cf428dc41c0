"""Markdown -> Telegram HTML: only Telegram's tags, everything else escaped, and every block
the aggregator cuts with this measure is within Telegram's limit once rendered."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.telegram.formatting import (
    TELEGRAM_LIMIT,
    html_to_plain,
    measure,
    plain_chunks,
    render_html,
)
from channels.telegram.inbound import _cut16, _slice16
from hub.aggregator import MessageAggregator
from tests.fake_bot_api import ALLOWED_TAGS, parse_html, utf16_len

TAG = re.compile(r"</?([a-z-]+)")


def tags(html: str) -> set[str]:
    return set(TAG.findall(html))


def blocks_for(text: str) -> list[str]:
    out: list[str] = []
    aggregator = MessageAggregator(
        lambda b: out.append(render_html(b.text)), min_chars=3800, max_chars=4000, measure=measure
    )
    aggregator.push(text)
    aggregator.finish()
    return out


def test_markdown_constructs_map_to_telegram_tags() -> None:
    html = render_html(
        "# Head\n\n**b** *i* ~~s~~ `c` [l](https://x.org)\n\n> quote\n\n"
        "```py\nx = 1\n```\n\n- a\n- b"
    )
    assert tags(html) <= {"b", "i", "s", "code", "pre", "a", "blockquote"}
    assert "<b>Head</b>" in html
    assert '<pre><code class="language-py">x = 1</code></pre>' in html
    assert '<a href="https://x.org">l</a>' in html
    assert "• a\n• b" in html
    assert parse_html(html)


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<b>unclosed",
        "a < b && c > d",
        "[x](javascript:alert(1))",
        '![img](https://x.org/a.png "t") <img src=x onerror=y>',
        "```\n</pre><b>\n```",
        "`<i>`",
    ],
)
def test_raw_html_and_unsafe_links_are_escaped(source: str) -> None:
    html = render_html(source)
    assert tags(html) <= ALLOWED_TAGS
    assert "javascript:" not in re.findall(r'href="([^"]*)"', html)
    assert "<script" not in html and "<img" not in html
    parse_html(html)  # Telegram would accept it


def test_tables_become_aligned_monospace() -> None:
    html = render_html("| a | long header |\n|---|---|\n| 1 | 2 |")
    assert html.startswith("<pre>") and html.endswith("</pre>")
    lines = html_to_plain(html).splitlines()
    assert lines[0].index("|") == lines[2].index("|")


def test_plain_fallback_is_the_visible_text() -> None:
    html = render_html("**bold** &amp; <x>")
    assert html_to_plain(html) == "bold & <x>"  # CommonMark decodes the entity


def test_escaping_heavy_reply_is_chunked_by_rendered_size() -> None:
    # Every '<' or '&' grows 4-5x when rendered: a chunker counting Markdown would overflow.
    text = "\n".join(f"line {i}: <&><&><&> && << >> " * 3 for i in range(150))
    text = f"```\n{text}\n```\n\n" + text
    blocks = blocks_for(text)
    assert len(blocks) > 1
    for block in blocks:
        assert utf16_len(block) <= TELEGRAM_LIMIT
        assert utf16_len(parse_html(block)) <= TELEGRAM_LIMIT


def test_astral_characters_count_as_two_units() -> None:
    assert measure("😀") == 2
    blocks = blocks_for(("😀" * 50 + "\n") * 200)
    assert all(utf16_len(b) <= TELEGRAM_LIMIT for b in blocks)


def test_plain_chunks_respect_the_limit() -> None:
    text = ("x" * 3000 + "\n") * 3 + "😀" * 5000
    chunks = plain_chunks(text)
    assert "".join(chunks) == text
    assert all(utf16_len(c) <= TELEGRAM_LIMIT for c in chunks)


def test_utf16_entity_slicing() -> None:
    text = "😀 @bot hi"
    assert _slice16(text, 3, 4) == "@bot"
    assert _cut16(text, 3, 4) == "😀  hi"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>&*_`#|-\n[]()~😀")), max_size=9000))
def test_any_text_renders_to_valid_blocks_within_the_limit(text: str) -> None:
    for block in blocks_for(text):
        assert utf16_len(block) <= TELEGRAM_LIMIT
        assert tags(block) <= ALLOWED_TAGS
        parse_html(block)
