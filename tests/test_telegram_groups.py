"""Groups and forum topics end to end (the real python-telegram-bot against the local Bot
API server): a session per group and per topic with replies in the right thread,
`/activation` for admins (checked with getChatMember, kept across restarts), and the group's
recent unanswered messages given to the model when the bot is addressed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.telegram.groups import GroupActivations, GroupContext
from tests.fake_bot_api import FakeBotApi
from tests.telegram_rig import Rig, ScriptedModel, telegram_rig, until

GROUP = -100900
BOT = "@agenthub_test_bot"


async def in_group(
    rig: Rig,
    text: str,
    *,
    user: int = 7,
    name: str = "Alice",
    thread: int | None = None,
    group: int = GROUP,
) -> int:
    return await rig.api.user_says(
        text,
        chat_id=group,
        user_id=user,
        chat_type="supergroup",
        first_name=name,
        username=name.lower(),
        thread_id=thread,
    )


async def answered(rig: Rig, count: int, group: int = GROUP) -> list[str]:
    """Wait until the group has `count` bot messages and every reply is complete."""
    await until(lambda: len(rig.api.replies_in(group)) >= count, f"{count} answers")
    await rig.settle()
    return rig.api.texts_in(group)


async def test_each_topic_has_its_own_session_and_replies_in_its_thread(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        await in_group(rig, f"{BOT} in topic five", thread=5)
        await answered(rig, 1)
        await in_group(rig, f"{BOT} in topic nine", thread=9)
        await answered(rig, 2)
        await in_group(rig, f"{BOT} in the general chat")
        await answered(rig, 3)
        threads = {m.text: m.thread_id for m in rig.api.replies_in(GROUP)}
        assert threads == {"in topic five": 5, "in topic nine": 9, "in the general chat": None}
        for key, text in (
            (f"telegram:group:{GROUP}:topic:5", "in topic five"),
            (f"telegram:group:{GROUP}:topic:9", "in topic nine"),
            (f"telegram:group:{GROUP}", "in the general chat"),
        ):
            users = [
                e.text
                for e in rig.agent.history(session_key=key)
                if e.type == "message" and e.role == "user"
            ]
            assert users == [text]
        assert rig.agent.history() == []  # nothing reached the owner's `main`
        # A command in a topic answers in that topic.
        await in_group(rig, f"/whoami{BOT}", thread=5)
        await answered(rig, 4)
        whoami = rig.api.replies_in(GROUP)[-1]
        assert whoami.thread_id == 5
        assert "This topic's id: 5" in whoami.text


async def test_recent_unanswered_messages_are_given_once_as_context(data_dir: Path) -> None:
    async with telegram_rig(
        data_dir, ScriptedModel(), dm_policy="allowlist", allowed_users=[7, 8]
    ) as rig:
        await in_group(rig, "the deploy broke at noon", user=7, name="Alice")
        await in_group(rig, "stranger text that must not count", user=99, name="Mallory")
        await in_group(rig, "it was the cache", user=8, name="Bob")
        await in_group(rig, "topic chatter stays in its topic", user=8, name="Bob", thread=3)
        await in_group(rig, f"{BOT} what happened?", user=7, name="Alice")
        (first,) = await answered(rig, 1)
        assert first == (
            "Recent messages in this group, for context (not addressed to you):\n"
            "Alice (@alice): the deploy broke at noon\n"
            "Bob (@bob): it was the cache\n\n"
            "Message to you from Alice (@alice):\n"
            "what happened?"
        )
        # Given once: the next question comes alone.
        await in_group(rig, f"{BOT} and now?", user=8, name="Bob")
        texts = await answered(rig, 2)
        assert texts[1] == "and now?"
        # The topic kept its own window.
        await in_group(rig, f"{BOT} summary please", user=7, thread=3)
        texts = await answered(rig, 3)
        assert "Bob (@bob): topic chatter stays in its topic" in texts[2]
        assert "deploy" not in texts[2]


def test_the_context_window_is_bounded_by_count_and_characters() -> None:
    window = GroupContext(messages=3, chars=1000)
    for i in range(5):
        window.remember("-1", None, "A", f"message {i}")
    assert [s.text for s in window.take("-1", None)] == ["message 2", "message 3", "message 4"]
    assert window.take("-1", None) == []
    small = GroupContext(messages=20, chars=40)
    for i in range(5):
        small.remember("-1", None, "A", f"message number {i}")
    kept = small.take("-1", None)
    assert [s.text for s in kept] == ["message number 4", "message number 3"][::-1]
    off = GroupContext(messages=0, chars=1000)
    off.remember("-1", None, "A", "ignored")
    assert off.with_context("-1", None, "B", "hello") == "hello"


async def test_activation_is_for_admins_and_survives_a_restart(data_dir: Path) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    try:
        api.admins[GROUP] = {8}
        async with telegram_rig(data_dir, ScriptedModel(), api=api) as rig:
            await in_group(rig, f"/activation{BOT}")
            texts = await answered(rig, 1)
            assert texts[0].startswith("Activation: mention. Admins set it with")
            await in_group(rig, f"/activation{BOT} always", user=7)
            texts = await answered(rig, 2)
            assert texts[1] == "Only the group's administrators can change when the bot answers."
            await in_group(rig, f"/activation{BOT} sometimes", user=8, name="Bob")
            texts = await answered(rig, 3)
            assert texts[2].startswith("There is no activation 'sometimes'")
            await in_group(rig, f"/activation{BOT} always", user=8, name="Bob")
            texts = await answered(rig, 4)
            assert texts[3] == "Activation: always. I'll answer every message here."
            await in_group(rig, "no mention at all", user=7)
            texts = await answered(rig, 5)
            assert texts[4] == "no mention at all"
        saved = json.loads((data_dir / "telegram-groups.json").read_text())
        assert saved == {"activation": {str(GROUP): "always"}}
        async with telegram_rig(data_dir, ScriptedModel(), api=api) as rig:
            await in_group(rig, "still answered after a restart", user=7)
            texts = await answered(rig, 6)
            assert texts[5] == "still answered after a restart"
            await in_group(rig, f"/activation{BOT} mention", user=8, name="Bob")
            texts = await answered(rig, 7)
            assert texts[6] == "Activation: mention. I'll answer when mentioned or replied to."
            await in_group(rig, "not answered any more", user=7)
            await in_group(rig, f"/help{BOT}", user=7)  # a marker: handled after the above
            texts = await answered(rig, 8)
            assert texts[7].startswith("Commands:")
            assert "not answered any more" not in texts
            # In a private chat the command only explains itself.
            await rig.api.user_says("/activation always", chat_id=7)
            await until(lambda: bool(rig.api.replies_in(7)), "the private answer")
            assert rig.api.texts_in(7) == [
                "/activation is for group chats: it sets when the bot answers there."
            ]
    finally:
        await api.stop()


async def test_activation_when_get_chat_member_fails(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        rig.api.admins[GROUP] = {7}
        rig.api.fault_methods = {"getChatMember"}
        rig.api.faults.append("502")
        await in_group(rig, f"/activation{BOT} always")
        (answer,) = await answered(rig, 1)
        assert (
            answer == "[Error] Telegram did not say whether you administer this group; try again."
        )
        assert GroupActivations(data_dir / "telegram-groups.json").get(str(GROUP)) == "mention"
        await in_group(rig, f"/activation{BOT} always")
        texts = await answered(rig, 2)
        assert texts[1] == "Activation: always. I'll answer every message here."


def test_an_unreadable_activation_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "telegram-groups.json"
    path.write_text("{not json")
    activations = GroupActivations(path)
    assert activations.get("-1") == "mention"
    activations.set("-1", "always")
    assert GroupActivations(path).get("-1") == "always"
    (tmp_path / "blocked").mkdir()
    blocked = GroupActivations(tmp_path / "blocked")  # a directory: cannot be written
    with pytest.raises(IsADirectoryError):
        blocked.set("-1", "always")
    assert blocked.get("-1") == "mention"
