"""A second Telegram user and a group never see or influence the owner's conversation.

End to end: the real python-telegram-bot against the local Bot API server, the real openai
client (through pydantic-ai) against the local OpenAI stand-in, and the owner configured the
way a person does it (`AGENTHUB_OWNERS`). What each model request carried is checked word by
word, and each reply must land in the chat that asked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import load_settings
from app.hub_setup import conversation_config
from hub.events import MAIN_SESSION
from hub.origin import Origin
from hub.providers import ModelConfig, build_model
from tests.fake_openai import FakeOpenAI, Reply
from tests.telegram_rig import Rig, telegram_rig, until

OWNER = 111
GUEST = 222
MEMBER = 333
GROUP = -100500
BOT = "@agenthub_test_bot"


def words_in(server: FakeOpenAI, index: int) -> str:
    """Everything the model was given in request `index`, as one text."""
    return "\n".join(str(m.get("content")) for m in server.requests[index].messages)


def replies_at_least(rig: Rig, chat: int, count: int) -> Callable[[], bool]:
    return lambda: len(rig.api.replies_in(chat)) >= count


async def turn(
    rig: Rig,
    server: FakeOpenAI,
    text: str,
    answer: str,
    *,
    chat: int,
    user: int,
    group: bool = False,
) -> str:
    """`user` writes `text` in `chat`; the model answers `answer`. Returns what the model
    was given."""
    server.enqueue(Reply(chunks=(answer,)))
    asked = len(server.requests)
    before = len(rig.api.replies_in(chat))
    await rig.api.user_says(
        text, chat_id=chat, user_id=user, chat_type="supergroup" if group else "private"
    )
    await until(lambda: len(server.requests) > asked, f"the model request for {text!r}")
    await until(lambda: len(rig.api.replies_in(chat)) > before, f"the reply to {text!r}")
    await rig.settle()
    return words_in(server, asked)


async def test_guest_and_group_never_see_or_steer_the_owners_conversation(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AGENTHUB_OWNERS", f"telegram:{OWNER}")
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", f"{OWNER},{GUEST},{MEMBER}")
    conversations = conversation_config(load_settings())
    assert conversations.scope == "per-channel-peer"  # the safe default with owners set
    async with FakeOpenAI() as server:
        model = build_model(
            ModelConfig.model_validate(
                {"spec": "openai:gpt-test", "openai_base_url": server.base_url}
            )
        )
        async with telegram_rig(
            data_dir,
            model,
            conversations=conversations,
            dm_policy="allowlist",
            allowed_users=[OWNER, GUEST, MEMBER],
        ) as rig:
            seen = await turn(
                rig, server, "owner-secret-alpha", "answer-for-owner-1", chat=OWNER, user=OWNER
            )
            assert "owner-secret-alpha" in seen
            seen = await turn(
                rig, server, "guest-words-beta", "answer-for-guest-1", chat=GUEST, user=GUEST
            )
            assert "guest-words-beta" in seen
            assert "owner-secret-alpha" not in seen and "answer-for-owner-1" not in seen
            # The owner writing in the group talks in the group's session, not in `main`.
            await rig.api.user_says(
                "group-chatter-gamma", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup"
            )
            seen = await turn(
                rig,
                server,
                f"{BOT} group-question-delta",
                "answer-for-group-1",
                chat=GROUP,
                user=OWNER,
                group=True,
            )
            assert "group-question-delta" in seen and "group-chatter-gamma" in seen
            for leak in ("owner-secret-alpha", "answer-for-owner-1", "guest-words-beta"):
                assert leak not in seen
            # The guest cannot reset, stop or re-mode the owner's session: commands act on
            # the guest's own.
            main_id = rig.agent.sessions.current(MAIN_SESSION).session_id
            for count, command in enumerate(("/new", "/queue interrupt", "/stop"), start=2):
                await rig.api.user_says(command, chat_id=GUEST, user_id=GUEST)
                await until(replies_at_least(rig, GUEST, count), command)
            await rig.settle()
            assert rig.agent.sessions.current(MAIN_SESSION).session_id == main_id
            assert rig.agent.sessions.mode(MAIN_SESSION) == "queue"
            # The owner's next turn carries the owner's history only.
            seen = await turn(
                rig, server, "owner-again-epsilon", "answer-for-owner-2", chat=OWNER, user=OWNER
            )
            assert "owner-secret-alpha" in seen and "answer-for-owner-1" in seen
            for leak in (
                "guest-words-beta",
                "answer-for-guest-1",
                "group-question-delta",
                "group-chatter-gamma",
                "answer-for-group-1",
            ):
                assert leak not in seen
            # The owner follows `main` from the desktop too: same history, nobody else's.
            server.enqueue(Reply(chunks=("answer-for-desktop",)))
            asked = len(server.requests)
            rig.hub.submit("main", "desktop-zeta", Origin(surface="desktop"))
            await until(lambda: len(server.requests) > asked, "the desktop turn")
            await rig.settle()
            seen = words_in(server, asked)
            assert "owner-again-epsilon" in seen and "desktop-zeta" in seen
            assert "guest-words-beta" not in seen and "group-question-delta" not in seen
            # Every reply went to the chat that asked, and only there.
            assert rig.api.texts_in(OWNER) == ["answer-for-owner-1", "answer-for-owner-2"]
            assert rig.api.texts_in(GUEST)[0] == "answer-for-guest-1"
            assert rig.api.texts_in(GROUP) == ["answer-for-group-1"]
            everything = [m.text for m in rig.api.bot_messages]
            assert "answer-for-desktop" not in everything
            # The sessions: main, the guest's own (a fresh one after /new), the group's.
            keys = {meta.session_key for meta in rig.agent.sessions.metas()}
            assert keys == {MAIN_SESSION, f"telegram:dm:{GUEST}", f"telegram:group:{GROUP}"}
