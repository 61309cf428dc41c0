"""Telegram channel benchmark: the real python-telegram-bot stack against the local fake Bot
API server (tests/fake_bot_api.py).

1. Block mode (TELEGRAM_STREAMING=off): sendMessage calls per reply vs the minimum,
   ceil(rendered length / 4096).
2. Block mode, 30 chats replying at once (4 blocks each) while the server enforces Telegram's
   flood limits (30 msg/s overall, 1 msg/s per chat): 429 responses with our outbound rate
   limiter vs without it (the bare baseline), and how long the burst took vs the fastest
   allowed.
3. Live replies vs block mode on the same streamed reply (10.7k characters of Markdown at
   about 50 tokens/s, server enforcing the limits): time from the model's first token to the
   first visible text, and Bot API calls per reply vs the edits the throttle allows.
4. 30 chats streaming live replies at once against the enforced limits: 429s with our
   limiter vs without it.

Run: .venv/bin/python bench/bench_telegram.py
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report
from channels.telegram import RateLimits
from channels.telegram.formatting import render_html
from hub.scopes import ConversationConfig
from tests.fake_bot_api import FakeBotApi, utf16_len
from tests.telegram_rig import ScriptedModel, long_markdown, telegram_rig, until

CHATS = 30


def prose(paragraphs: int) -> str:
    return "\n\n".join(
        " ".join(f"Paragraph {p} sentence {s} says something useful." for s in range(12))
        for p in range(paragraphs)
    )


def code_heavy(blocks: int) -> str:
    body = "\n".join(f'    if (a[{i}] < b && c > d) {{ out << "&{i}"; }}' for i in range(60))
    return "\n\n".join(f"Step {b}:\n\n```cpp\n{body}\n```" for b in range(blocks))


def table_heavy(tables: int) -> str:
    rows = "\n".join(f"| item {i} | {i * 7} | note <{i}> & more |" for i in range(40))
    return "\n\n".join(
        f"Table {t}\n\n| name | qty | note |\n|---|---|---|\n{rows}" for t in range(tables)
    )


REPLIES = {
    "prose 30k": prose(50),
    "code fences 25k": code_heavy(8),
    "tables 20k": table_heavy(8),
    "mixed markdown 20k": long_markdown(6),
}


async def calls_per_reply(root: Path) -> tuple[int, int]:
    total_calls = total_min = 0
    for index, (name, text) in enumerate(REPLIES.items()):
        data = root / f"calls{index}"
        data.mkdir()
        async with telegram_rig(data, ScriptedModel(text, pieces=40), streaming="off") as rig:
            await rig.ask("go")
            calls = rig.api.calls.get("sendMessage", 0)
            minimum = math.ceil(utf16_len(render_html(text)) / 4096)
            print(f"  {name:20s} sendMessage calls {calls:3d}  minimum {minimum:3d}")
            total_calls += calls
            total_min += minimum
    return total_calls, total_min


async def burst(
    root: Path, *, limited: bool, streaming: str = "off", pieces: int = 8, delay: float = 0.0
) -> tuple[int, float, int]:
    """30 chats get a multi-block reply at once; returns (429s, seconds, messages)."""
    api = FakeBotApi(enforce_limits=True)
    await api.start()
    limits = RateLimits() if limited else RateLimits(global_per_second=10_000, chat_interval=0)
    data = root / f"{'limited' if limited else 'bare'}-{streaming}"
    data.mkdir()
    text = prose(22)
    try:
        async with telegram_rig(
            data,
            ScriptedModel(text, pieces=pieces, delay=delay),
            api=api,
            rate_limits=limits,
            streaming=streaming,
            # Every chat its own conversation, all answered at once.
            conversations=ConversationConfig(
                dm_scope="per-channel-peer", max_concurrent_runs=CHATS
            ),
        ) as rig:
            start = time.perf_counter()
            for chat in range(CHATS):
                await api.user_says(f"question {chat}", chat_id=2000 + chat)
            await asyncio.sleep(0.2)
            await rig.settle()
            await until(
                lambda: all(len(api.replies_in(2000 + c)) >= 2 for c in range(CHATS)),
                "every chat's reply",
                limit=60,
            )
            await rig.settle()
            seconds = time.perf_counter() - start
            who = "ours" if limited else "bare"
            print(f"  limits hit ({who}, {streaming}): {api.violations_by_limit}")
            if streaming == "edit":
                print(f"  edits: {api.calls.get('editMessageText', 0)}")
            return api.rate_violations, seconds, len(api.bot_messages)
    finally:
        await api.stop()


REPLY_CHARS = 10_700
TOKENS_PER_SECOND = 50
CHARS_PER_TOKEN = 4


def streamed_reply() -> str:
    text = long_markdown(sections=8)
    return text[:REPLY_CHARS]


async def one_streamed_reply(root: Path, streaming: str) -> tuple[float, dict[str, int], float]:
    """The same reply streamed at ~50 tokens/s; returns (seconds from the first token to the
    first visible text, Bot API calls by method, seconds the stream took)."""
    text = streamed_reply()
    pieces = len(text) // CHARS_PER_TOKEN
    model = ScriptedModel(text, pieces=pieces, delay=1 / TOKENS_PER_SECOND)
    api = FakeBotApi(enforce_limits=True)
    await api.start()
    data = root / f"stream-{streaming}"
    data.mkdir()
    try:
        async with telegram_rig(
            data, model, api=api, rate_limits=RateLimits(), streaming=streaming
        ) as rig:
            calls_before = dict(api.calls)
            await api.user_says("tell me everything", chat_id=3000)
            await until(lambda: bool(api.replies_in(3000)), "the first text", limit=120)
            assert model.first_piece_at is not None
            first_visible = api.replies_in(3000)[0].at - model.first_piece_at
            await until(lambda: rig.agent.last_run is not None, "the run's end", limit=120)
            stream_seconds = time.monotonic() - model.first_piece_at
            await rig.settle()
            calls = {
                method: count - calls_before.get(method, 0)
                for method, count in api.calls.items()
                if method
                in ("sendMessage", "editMessageText", "sendChatAction", "setMessageReaction")
            }
            assert api.rate_violations == 0, api.violations_by_limit
            return first_visible, calls, stream_seconds
    finally:
        await api.stop()


async def live_vs_blocks(root: Path) -> bool:
    (live_first, live_calls, seconds), (block_first, block_calls, _) = await asyncio.gather(
        one_streamed_reply(root, "edit"), one_streamed_reply(root, "off")
    )
    print(f"streamed reply: {REPLY_CHARS} chars at ~{TOKENS_PER_SECOND} tokens/s ({seconds:.1f}s)")
    print(f"  live (edit):  first visible text {live_first * 1000:.0f} ms after the first token;")
    print(f"    calls {live_calls}")
    print(
        f"  blocks (off): first visible text {block_first:.2f}s after the first token;"
        f"\n    calls {block_calls}"
    )
    ok = report(
        "first visible text after the first token, live vs 1.5 s target",
        baseline=1.5,
        candidate=live_first,
        unit="s",
        target=1.0,
        higher_is_better=False,
    )
    print(f"  (block mode: {block_first:.2f}s; ratio live/blocks {live_first / block_first:.4f})")
    messages = live_calls.get("sendMessage", 0)
    # The throttle allows one edit per second of streaming, plus one post per message.
    allowed = math.floor(seconds) + messages
    used = messages + live_calls.get("editMessageText", 0)
    ok &= report(
        "live message calls (send + edit) per reply vs what the 1/s throttle allows",
        baseline=allowed,
        candidate=used,
        unit="calls",
        target=1.3,
        higher_is_better=False,
    )
    return ok


async def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("sendMessage calls per reply (minimum = ceil(rendered UTF-16 length / 4096)):")
        calls, minimum = await calls_per_reply(root)
        ok &= report(
            "sendMessage calls per reply",
            baseline=minimum,
            candidate=calls,
            unit="calls",
            target=1.25,
            higher_is_better=False,
        )
        bare_429, bare_s, bare_n = await burst(root, limited=False)
        ours_429, ours_s, ours_n = await burst(root, limited=True)
        print(f"  bare: {bare_n} messages, {bare_429} x 429, {bare_s:.1f}s")
        print(f"  ours: {ours_n} messages, {ours_429} x 429, {ours_s:.1f}s")
        ok &= report(
            f"429 responses, {CHATS} chats replying at once",
            baseline=max(bare_429, 1),
            candidate=ours_429,
            unit="429s",
            target=0.0,
            higher_is_better=False,
        )
        per_chat = ours_n // CHATS
        # The fastest any sender may go: 1 msg/s within a chat, 30 msg/s overall.
        floor = max((per_chat - 1) * 1.0, ours_n / 30)
        ok &= report(
            f"burst duration vs the flood-limit floor, {CHATS} chats x {per_chat} blocks",
            baseline=floor,
            candidate=ours_s,
            unit="s",
            target=1.5,
            higher_is_better=False,
        )
        ok &= await live_vs_blocks(root)
        bare_429, bare_s, bare_n = await burst(
            root, limited=False, streaming="edit", pieces=300, delay=0.01
        )
        ours_429, ours_s, ours_n = await burst(
            root, limited=True, streaming="edit", pieces=300, delay=0.01
        )
        print(f"  live, bare: {bare_n} messages, {bare_429} x 429, {bare_s:.1f}s")
        print(f"  live, ours: {ours_n} messages, {ours_429} x 429, {ours_s:.1f}s")
        ok &= report(
            f"429 responses, {CHATS} chats streaming live replies at once",
            baseline=max(bare_429, 1),
            candidate=ours_429,
            unit="429s",
            target=0.0,
            higher_is_better=False,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
