"""Fuzz: odd Telegram updates through the local Bot API server, real python-telegram-bot.

Thousands of malformed or unusual updates (missing or mistyped fields, odd entities, lone
surrogates, huge texts, unknown update kinds, other bots, strangers, groups) arrive mixed with
legitimate messages. Nothing may log a traceback or an error, every legitimate message is
answered, and the process's RSS ends within 16 MiB of what it was after a warm-up (the first
`WARM_UP` updates). `AGENTHUB_FUZZ_UPDATES` sets the number of odd updates (default 2000,
about a minute on a loaded 2-core box); e.g. `AGENTHUB_FUZZ_UPDATES=20000` for a longer run.
The figures are printed at the end. What grows is the conversation: the allowed odd user's
updates are real turns (texts up to 10k characters), kept in the loaded sessions' memory
(+7.8 MiB at the default 2000; longer runs are bounded by that, not by the poller). Log
records are checked as they come, never collected (that would be this process's memory).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import JsonValue

from tests.telegram_rig import ScriptedModel, telegram_rig, until
from tests.test_fuzz_gateway import RSS_SLACK, rss_bytes

LEGIT = 7001  # only ever sends legitimate pings
ODD = 7002  # allowed too: its odd messages go the whole way to the agent
STRANGER = 7003
GROUP = -100777
UPDATES = int(os.environ.get("AGENTHUB_FUZZ_UPDATES", "2000"))
PING_EVERY = 100
WARM_UP = 300  # what the process allocates once (first parses, caches) is not a leak
# About 150 odd updates a second on a loaded 2-core box; longer runs get the time they need.
pytestmark = pytest.mark.timeout(max(120, UPDATES // 40))

Json = dict[str, JsonValue]
ODD_TEXTS = [
    "",
    " ",
    "\u200b",
    "\ud800 lone surrogate",
    "x\udfff",
    "\x00\x01\x02",
    "\u202eRTL override",
    "😀" * 300,
    "a" * 10_000,
    "/",
    "/new@",
    "/help@other_bot",
    "/unknown_command",
    "@",
    "@agenthub_test_bot",
    "<b>not html</b> & <i>",
    "```\nunclosed fence",
    "| a |\n|---|",
    "\n" * 50,
]


def _message(rng: random.Random, chat_id: int, text: JsonValue) -> Json:
    return {
        "message_id": rng.randint(1, 10**6),
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "Odd"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Odd"},
        "text": text,
    }


def _odd_entities(rng: random.Random, text: str) -> list[JsonValue]:
    kinds = ["mention", "bot_command", "bold", "url", "text_link", "nonsense", ""]
    entities: list[JsonValue] = []
    for _ in range(rng.randint(1, 4)):
        entity: Json = {
            "type": rng.choice(kinds),
            "offset": rng.choice([-5, 0, 1, 2, len(text), len(text) + 9, 2**31]),
            "length": rng.choice([-1, 0, 1, 3, 19, 2**31]),
        }
        if entity["type"] == "text_link" and rng.random() < 0.5:
            entity["url"] = "javascript:alert(1)"
        entities.append(entity)
    if rng.random() < 0.1:
        entities.append("not an entity")
    return entities


def _mutations() -> list[Callable[[random.Random], Json]]:
    def no_date(rng: random.Random) -> Json:
        message = _message(rng, ODD, "hi")
        del message["date"]
        return {"message": message}

    def no_chat(rng: random.Random) -> Json:
        message = _message(rng, ODD, "hi")
        del message["chat"]
        return {"message": message}

    def chat_wrong_type(rng: random.Random) -> Json:
        message = _message(rng, ODD, "hi")
        choices: list[JsonValue] = ["chat", 5, None, [], {"type": "private"}]
        message["chat"] = rng.choice(choices)
        return {"message": message}

    def text_wrong_type(rng: random.Random) -> Json:
        choices: list[JsonValue] = [5, None, [], {"a": 1}, True, 1.5]
        return {"message": _message(rng, ODD, rng.choice(choices))}

    def odd_text(rng: random.Random) -> Json:
        return {"message": _message(rng, ODD, rng.choice(ODD_TEXTS))}

    def odd_entities(rng: random.Random) -> Json:
        text = rng.choice([*ODD_TEXTS[7:], "😀@agenthub_test_bot hi", "/new 😀"])
        message = _message(rng, ODD, text)
        message["entities"] = _odd_entities(rng, text)
        return {"message": message}

    def wrong_ids(rng: random.Random) -> Json:
        message = _message(rng, ODD, "hi")
        message["message_id"] = rng.choice(["7", -1, 0, 2**63, None, 1.5])
        return {"message": message}

    def from_bot_or_missing(rng: random.Random) -> Json:
        message = _message(rng, ODD, "hi")
        if rng.random() < 0.5:
            del message["from"]
        else:
            message["from"] = {"id": 99, "is_bot": True, "first_name": "Bot"}
        return {"message": message}

    def stranger(rng: random.Random) -> Json:
        return {"message": _message(rng, STRANGER + rng.randint(0, 5), rng.choice(ODD_TEXTS))}

    def group(rng: random.Random) -> Json:
        text = rng.choice(["@agenthub_test_bot " + rng.choice(ODD_TEXTS), "chatter", "/new"])
        message = _message(rng, GROUP, text)
        message["chat"] = {"id": GROUP, "type": rng.choice(["group", "supergroup", "channel"])}
        message["from"] = {"id": ODD, "is_bot": False, "first_name": "Odd"}
        if rng.random() < 0.3:
            message["is_topic_message"] = True
            message["message_thread_id"] = rng.choice([5, "5", None])
        if rng.random() < 0.3:
            replies: list[JsonValue] = [{}, {"message_id": 1}, "x", None]
            message["reply_to_message"] = rng.choice(replies)
        return {"message": message}

    def other_kinds(rng: random.Random) -> Json:
        kind = rng.choice(["edited_message", "channel_post", "poll", "my_chat_member", "x"])
        bodies: list[JsonValue] = [{}, _message(rng, ODD, "hi"), "junk", None, [1, 2]]
        return {kind: rng.choice(bodies)}

    def no_message(rng: random.Random) -> Json:
        return rng.choice([{}, {"message": None}, {"message": "text"}, {"message": []}])

    def deep(rng: random.Random) -> Json:
        nested: JsonValue = "bottom"
        for _ in range(rng.choice([10, 200])):
            nested = {"n": nested}
        message = _message(rng, ODD, "deep")
        message["extra"] = nested
        return {"message": message}

    def media_without_text(rng: random.Random) -> Json:
        message = _message(rng, ODD, "x")
        del message["text"]
        message[rng.choice(["photo", "sticker", "voice", "document"])] = rng.choice([[], {}, "x"])
        return {"message": message}

    return [
        no_date, no_chat, chat_wrong_type, text_wrong_type, odd_text, odd_entities, wrong_ids,
        from_bot_or_missing, stranger, group, other_kinds, no_message, deep, media_without_text,
    ]  # fmt: skip


class _Failures(logging.Handler):
    """Records with a traceback or at ERROR and above, as one line each."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None or record.levelno >= logging.ERROR:
            self.seen.append(f"{record.name}: {record.getMessage()[:200]}")


async def test_odd_updates_never_raise_and_legitimate_messages_are_answered(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # caplog keeps every record (memory of this measured process): keep only the failures.
    failures = _Failures()
    caplog.handler.setLevel(logging.CRITICAL + 1)
    logging.getLogger().addHandler(failures)
    rng = random.Random(int(os.environ.get("AGENTHUB_FUZZ_SEED", "11")))
    mutations = _mutations()
    pings: list[str] = []
    async with telegram_rig(
        data_dir, ScriptedModel(), dm_policy="allowlist", allowed_users=[LEGIT, ODD]
    ) as rig:
        start_rss = 0
        for index in range(UPDATES):
            if index == min(WARM_UP, UPDATES // 4):
                await rig.settle()
                gc.collect()
                start_rss = rss_bytes()
            await rig.api.push_update(rng.choice(mutations)(rng))
            if index % PING_EVERY == PING_EVERY - 1:
                pings.append(f"ping {len(pings)}")
                await rig.api.user_says(pings[-1], chat_id=LEGIT)
                # Let the bot keep up, as a real chat's pace would.
                await until(
                    lambda: len(rig.api.replies_in(LEGIT)) == len(pings),
                    f"the answer to {pings[-1]}",
                    limit=60,
                )
        await rig.settle()
        gc.collect()
        end_rss = rss_bytes()
        assert rig.api.texts_in(LEGIT) == pings
        receiver = rig.plugin.receiver
        assert receiver.received + receiver.skipped >= UPDATES
        print(
            f"fuzz: {UPDATES} odd updates; {receiver.received} handled, {receiver.skipped}"
            f" skipped; {len(pings)} legitimate messages, all answered;"
            f" RSS {start_rss / 2**20:.1f} -> {end_rss / 2**20:.1f} MiB"
            f" ({(end_rss - start_rss) / 2**20:+.1f} MiB)"
        )
        assert end_rss - start_rss < RSS_SLACK
    logging.getLogger().removeHandler(failures)
    assert failures.seen == [], "\n".join(failures.seen)
