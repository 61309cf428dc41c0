"""Group chats: when the bot answers there, and what it saw meanwhile.

- **Activation**, per group: `mention` (the default: the bot answers messages that mention
  it, reply to it, or name it in a command) or `always` (every message from an allowed
  user). A group's administrators set it with `/activation mention|always` (checked with
  `getChatMember`); it is kept in `telegram-groups.json` in the data directory and survives
  restarts. `always` needs the bot to see every message: make it a group admin or turn its
  privacy mode off with @BotFather.
- **Recent context**: messages from allowed users that the bot saw in a group (or topic) but
  did not answer are kept in memory, the last `group_context_messages` of them within
  `group_context_chars` characters. When the bot is next addressed there, they are given to
  the model before the message, once, and the window starts over. They are lost on restart.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from telegram import Bot, ChatMember
from telegram.error import TelegramError

from channels.telegram.inbound import Inbound

log = logging.getLogger("agenthub.telegram")

Activation = Literal["mention", "always"]
ACTIVATIONS: tuple[Activation, ...] = ("mention", "always")
# Groups (or topics) whose recent messages are kept; the least recently active is dropped.
MAX_WINDOWS = 1000
ADMINS = (ChatMember.OWNER, ChatMember.ADMINISTRATOR)


@dataclass(frozen=True, slots=True)
class Seen:
    label: str
    text: str


class GroupActivations:
    """`mention` or `always` per group chat id, persisted in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._modes: dict[str, Activation] = self._load()

    def _load(self) -> dict[str, Activation]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); every group answers mentions only", self.path, exc)
            return {}
        modes = raw.get("activation") if isinstance(raw, dict) else None
        if not isinstance(modes, dict):
            return {}
        return {str(k): v for k, v in modes.items() if v in ACTIVATIONS}

    def get(self, chat_id: str) -> Activation:
        return self._modes.get(chat_id, "mention")

    def set(self, chat_id: str, mode: Activation) -> None:
        """Record `mode`; raises OSError when it cannot be saved (the change is undone)."""
        before = self._modes.get(chat_id)
        self._modes[chat_id] = mode
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"activation": self._modes}, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            if before is None:
                self._modes.pop(chat_id, None)
            else:
                self._modes[chat_id] = before
            raise


class GroupContext:
    """The recent unanswered messages of each group (or topic), bounded in count and size."""

    def __init__(self, messages: int, chars: int) -> None:
        self.messages = messages
        self.chars = chars
        self._windows: OrderedDict[tuple[str, str | None], deque[Seen]] = OrderedDict()

    def remember(self, chat_id: str, thread_id: str | None, label: str, text: str) -> None:
        if self.messages <= 0 or self.chars <= 0 or not text.strip():
            return
        key = (chat_id, thread_id)
        window = self._windows.pop(key, None) or deque(maxlen=self.messages)
        window.append(Seen(label or "someone", text[: self.chars]))
        while len(window) > 1 and sum(len(s.label) + len(s.text) + 3 for s in window) > self.chars:
            window.popleft()
        self._windows[key] = window
        while len(self._windows) > MAX_WINDOWS:
            self._windows.popitem(last=False)

    def take(self, chat_id: str, thread_id: str | None) -> list[Seen]:
        """The window's messages, oldest first; the window starts over."""
        window = self._windows.pop((chat_id, thread_id), None)
        return list(window) if window else []

    def with_context(self, chat_id: str, thread_id: str | None, label: str, text: str) -> str:
        """`text` as the model gets it: after the recent messages it did not answer."""
        seen = self.take(chat_id, thread_id)
        if not seen:
            return text
        lines = "\n".join(f"{s.label}: {s.text}" for s in seen)
        return (
            "Recent messages in this group, for context (not addressed to you):\n"
            f"{lines}\n\n"
            f"Message to you from {label or 'someone'}:\n{text}"
        )


async def is_admin(bot: Bot, chat_id: str, user_id: str) -> bool | None:
    """Whether the user administers the chat; None when Telegram could not say."""
    try:
        member = await bot.get_chat_member(chat_id=int(chat_id), user_id=int(user_id))
    except (TelegramError, ValueError) as exc:
        log.warning("telegram: getChatMember for chat %s failed: %s", chat_id, exc)
        return None
    return member.status in ADMINS


async def activation_answer(
    bot: Bot, activations: GroupActivations, chat_id: str, user_id: str, wanted: str
) -> str:
    """The answer to `/activation [mode]` in a group, setting the mode for an admin."""
    current = activations.get(chat_id)
    wanted = wanted.strip().lower()
    if not wanted:
        return (
            f"Activation: {current}. "
            "Admins set it with /activation mention (answer mentions and replies only) "
            "or /activation always (answer every message)."
        )
    if wanted not in ACTIVATIONS:
        return f"There is no activation {wanted!r}; use /activation mention or /activation always."
    admin = await is_admin(bot, chat_id, user_id)
    if admin is None:
        return "[Error] Telegram did not say whether you administer this group; try again."
    if not admin:
        return "Only the group's administrators can change when the bot answers."
    mode: Activation = "always" if wanted == "always" else "mention"
    try:
        activations.set(chat_id, mode)
    except OSError as exc:
        log.error("telegram: activation of chat %s not saved: %s", chat_id, exc)
        return "[Error] The setting could not be saved; ask the bot's owner to check the hub's log."
    if mode == "always":
        return "Activation: always. I'll answer every message here."
    return "Activation: mention. I'll answer when mentioned or replied to."


class GroupGate:
    """What the receiver asks about a group message: answer it (with what text), or only
    remember it; and the `/activation` command."""

    def __init__(self, activations: GroupActivations, context: GroupContext) -> None:
        self.activations = activations
        self.context = context

    def admit(self, inbound: Inbound) -> str | None:
        """The text for the model, or None when the message is only remembered."""
        thread = str(inbound.thread_id) if inbound.thread_id is not None else None
        if not inbound.addressed and self.activations.get(inbound.chat_id) != "always":
            self.context.remember(inbound.chat_id, thread, inbound.label, inbound.text)
            return None
        if inbound.command is not None or inbound.unknown_command is not None:
            return inbound.text
        return self.context.with_context(inbound.chat_id, thread, inbound.label, inbound.text)

    async def activation(self, bot: Bot, inbound: Inbound) -> str:
        return await activation_answer(
            bot, self.activations, inbound.chat_id, inbound.user_id, inbound.text
        )
