"""From a Telegram update to a `ChannelMessage` for the manager, or to nothing.

Updates are deduplicated by `update_id` (the last `DEDUPE_SIZE`), parsed (`inbound.py`),
checked against the DM policy (`policy.py`), passed through the group gate (`groups.py`:
activation and recent context), and only then handed on. A stranger in a
private chat gets a pairing code; the owner's decision is announced to them. An update that
cannot be read or handled is logged once, one line, and counted as skipped: it never stops
the updates behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Bot, Update

from channels.base import ChannelMessage, InboundCallback
from channels.error_text import coded_error_text
from channels.telegram import buttons
from channels.telegram.groups import GroupGate
from channels.telegram.inbound import Inbound, parse_message
from channels.telegram.media import UNREAD_KINDS, download
from channels.telegram.policy import CHANNEL, AccessPolicy, Allowed, NeedsPairing
from hub.access import Decision, DeviceRecord
from hub.attachments import Attachment, MediaRefused
from hub.origin import ChannelRoute
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.telegram")

DEDUPE_SIZE = 2000

# (route, text) -> whether it was delivered; plain text, as a reply when the route has one.
PlainSend = Callable[[ChannelRoute, str], Coroutine[Any, Any, bool]]
# The id and @username of the bot, once connected.
BotIdentity = Callable[[], tuple[int, str] | None]
# Remember the highest message id seen in a chat (for the ambiguous-send probe).
NoteMessage = Callable[[str, int], None]


class UpdateReceiver:
    """Turns updates into messages for `on_message`; counts what it received and skipped."""

    def __init__(
        self,
        policy: AccessPolicy,
        identity: BotIdentity,
        note: NoteMessage,
        bot: Callable[[], Bot | None],
        groups: GroupGate | None = None,
    ) -> None:
        self.policy = policy
        self._groups = groups
        self._identity = identity
        self._bot = bot
        self._note = note
        self.received = 0
        self.skipped = 0
        self.last_processed_at: float | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._on_message: InboundCallback | None = None
        self._send_plain: PlainSend | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = TaskFunnel("telegram:notices", log)

    @property
    def name(self) -> str:
        return "telegram:receiver"

    def bind(self, on_message: InboundCallback, send_plain: PlainSend) -> None:
        """Where authorised messages go, and how notices (pairing codes) are sent."""
        self._on_message = on_message
        self._send_plain = send_plain
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        await self._tasks.close()

    def skip(self, update_id: int, reason: str) -> None:
        """Count an update that could not be read or handled; logged once, one line."""
        self.skipped += 1
        log.warning("telegram: update %d skipped: %s", update_id, reason.splitlines()[0][:200])

    async def on_update(self, update: Update) -> None:
        """Handle one update; never raises (a failure skips this update only)."""
        if update.update_id in self._seen:
            log.info("telegram: update %d seen before; ignored", update.update_id)
            return
        self._seen[update.update_id] = None
        if len(self._seen) > DEDUPE_SIZE:
            self._seen.popitem(last=False)
        self.received += 1
        try:
            await self._handle(update)
        except Exception as exc:  # one bad update must not stop the others
            self.skip(update.update_id, f"{type(exc).__name__}: {exc}")
            return
        self.last_processed_at = time.monotonic()

    async def _handle(self, update: Update) -> None:
        identity = self._identity()
        if identity is None or self._on_message is None:
            return
        press = buttons.pressed(update)
        if press is not None:
            bot = self._bot()
            if bot is not None:
                await buttons.acknowledge(bot, update)
            if self.policy.is_allowed(press.route.user_id or ""):
                await self._on_message(press)
            return
        inbound = parse_message(update, *identity)
        if inbound is None:
            return
        self._note(inbound.chat_id, inbound.message_id)
        if inbound.private:
            verdict = self.policy.check_private(inbound.user_id, inbound.label)
            if isinstance(verdict, NeedsPairing):
                self._notify(route_of(inbound), pairing_text(verdict.code))
                return
            if not isinstance(verdict, Allowed):
                if verdict.reason:
                    self._notify(route_of(inbound), verdict.reason)
                return
        elif not self.policy.is_allowed(inbound.user_id):
            if inbound.addressed:
                log.info(
                    "telegram: group message from unauthorised user %s ignored", inbound.user_id
                )
            return
        text: str | None = inbound.text
        if not inbound.private and self._groups is not None:
            bot = self._bot()
            if inbound.command == "activation" and bot is not None:
                self._notify(route_of(inbound), await self._groups.activation(bot, inbound))
                return
            text = self._groups.admit(inbound)
        if text is None:
            return
        if inbound.unread is not None:
            if UNREAD_KINDS[inbound.unread]:
                self._notify(route_of(inbound), UNREAD_KINDS[inbound.unread])
            return
        attachments: tuple[Attachment, ...] = ()
        if inbound.media is not None:
            bot = self._bot()
            if bot is None:
                return
            try:
                attachments = (await download(bot, inbound.media),)
            except MediaRefused as exc:
                self._notify(route_of(inbound), coded_error_text(exc))
                return
        await self._on_message(
            ChannelMessage(
                route=route_of(inbound),
                text=text,
                sender_label=inbound.label,
                command=inbound.command,
                unknown_command=inbound.unknown_command,
                attachments=attachments,
            )
        )

    def _notify(self, route: ChannelRoute, text: str) -> None:
        if self._send_plain is not None:
            self._tasks.spawn(self._send_plain(route, text), name="telegram:notice")

    def on_access(self, what: str, payload: Decision | DeviceRecord) -> None:
        """AccessStore listener: tell a Telegram user the owner's decision on their code."""
        if what != "decided" or not isinstance(payload, Decision):
            return
        request = payload.request
        channel, _, user_id = request.subject.partition(":")
        if request.kind != "channel" or channel != CHANNEL or self._loop is None:
            return
        text = (
            "You're in! The owner approved your access. Write a message to talk to the agent."
            if payload.approved
            else "The owner declined your access request."
        )
        route = ChannelRoute(channel=CHANNEL, chat_id=user_id, user_id=user_id)
        # Approvals come from the control socket or the UI, possibly on another thread.
        self._loop.call_soon_threadsafe(self._notify, route, text)


def route_of(inbound: Inbound) -> ChannelRoute:
    return ChannelRoute(
        channel=CHANNEL,
        chat_id=inbound.chat_id,
        reply_to_message_id=str(inbound.message_id),
        thread_id=str(inbound.thread_id) if inbound.thread_id is not None else None,
        user_id=inbound.user_id,
        chat_kind="private" if inbound.private else "group",
    )


def pairing_text(code: str) -> str:
    return (
        "Hi! This bot only talks to people its owner approved.\n"
        f"Your pairing code: {code}\n"
        f"Ask the owner to run: agenthub ctl pair approve {code}\n"
        "I'll tell you here once you're in."
    )
