"""TelegramPlugin: python-telegram-bot embedded in the hub's event loop.

The plugin wires the parts: `BotConnection` (the Application, connecting and retrying),
`PollSupervisor` (long polling and its watchdog) or the webhook route, `UpdateReceiver`
(dedupe, addressing, DM policy, pairing notices) and the outbound side (`ReliableSender`
behind a rate limiter). The manager sees only the `ChannelPlugin` seam.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Bot, BotCommand, Update

from channels.base import AckStage, BlockLimits, Choice, InboundCallback, LiveSurface
from channels.commands import COMMAND_HELP
from channels.outbox_store import Ticket
from channels.telegram import buttons
from channels.telegram.config import TelegramConfig
from channels.telegram.connection import BotConnection, TelegramStartError, build_application
from channels.telegram.delivery import deliver, show_typing
from channels.telegram.formatting import measure
from channels.telegram.groups import GroupActivations, GroupContext, GroupGate
from channels.telegram.health import telegram_health
from channels.telegram.live import TelegramLive
from channels.telegram.policy import CHANNEL, AccessPolicy
from channels.telegram.polling import PollSupervisor, TrackingRequest
from channels.telegram.ratelimit import RateLimiter
from channels.telegram.receiver import UpdateReceiver
from channels.telegram.reliability import ReliableSender
from channels.telegram.webhook import Handler, webhook_handler
from hub.access import AccessStore
from hub.health import SubsystemHealth
from hub.origin import ChannelRoute

__all__ = ["BOT_COMMANDS", "TelegramPlugin", "TelegramStartError"]

log = logging.getLogger("agenthub.telegram")

# The command menu: the same commands and words as /help.
BOT_COMMANDS = [BotCommand(name, what[0].upper() + what[1:]) for name, _, what in COMMAND_HELP]


class TelegramPlugin:
    """The Telegram channel. Construct with its config and the hub's AccessStore; register
    with `ChannelManager.register` (which calls `start`/`stop` and reports `probe`)."""

    def __init__(self, config: TelegramConfig, access: AccessStore) -> None:
        self.config = config
        self.access = access
        self.policy = AccessPolicy(config.dm_policy, config.allowed_users, access)
        self.limiter = RateLimiter(config.rate_limits)
        # Group settings live next to the access records, in the data directory.
        self.groups = GroupGate(
            GroupActivations(access.path.parent / "telegram-groups.json"),
            GroupContext(config.group_context_messages, config.group_context_chars),
        )
        self.receiver = UpdateReceiver(
            self.policy, self._identity, self._note_message, self._current_bot, self.groups
        )
        self._connection: BotConnection | None = None
        self._sender: ReliableSender | None = None
        self._live: TelegramLive | None = None
        self._unlisten: Callable[[], None] | None = None

    # -- ChannelPlugin ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return CHANNEL

    @property
    def limits(self) -> BlockLimits:
        return BlockLimits(min_chars=3800, max_chars=4000)

    def measure(self, text: str) -> int:
        return measure(text)

    def is_allowed(self, user_id: str) -> bool:
        return self.policy.is_allowed(user_id)

    @property
    def sender(self) -> ReliableSender:
        if self._sender is None:
            raise RuntimeError("the Telegram channel is not started")
        return self._sender

    @property
    def webhook_mode(self) -> bool:
        return self.config.webhook_url is not None

    @property
    def updates_received(self) -> int:
        return self.receiver.received

    @property
    def poll_restarts(self) -> int:
        polling = self._polling
        return polling.restarts if polling is not None else 0

    @property
    def conflicts(self) -> int:
        polling = self._polling
        return polling.conflicts if polling is not None else 0

    @property
    def _polling(self) -> PollSupervisor | None:
        return self._connection.polling if self._connection is not None else None

    @property
    def _connected(self) -> bool:
        return self._connection is not None and self._connection.live

    @property
    def live(self) -> LiveSurface | None:
        """Replies shown live by editing (`streaming="edit"`), or None for finished blocks."""
        return self._live if self.config.streaming == "edit" else None

    async def start(self, on_message: InboundCallback) -> None:
        """Connect and begin receiving. Raises `TelegramStartError` for a bad token."""
        cfg = self.config
        self.receiver.bind(on_message, self._send_notice)
        poll_request = TrackingRequest(
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.poll_read_slack,
            write_timeout=cfg.write_timeout,
            on_unreadable=self.receiver.skip,
        )
        app = build_application(cfg, poll_request, self.receiver.on_update)
        polling = None if self.webhook_mode else PollSupervisor(cfg, poll_request)
        self._connection = BotConnection(app, cfg, BOT_COMMANDS, polling)
        self._sender = ReliableSender(app.bot, cfg, self.limiter)
        self._live = TelegramLive(self._sender, cfg)
        self._unlisten = self.access.listen(self.receiver.on_access)
        try:
            await self._connection.start()
        except TelegramStartError:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        await self.receiver.stop()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.stop()

    async def reply_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        return await self._deliver(route, text, plain=plain, reply=True, ticket=ticket)

    async def send_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        return await self._deliver(route, text, plain=plain, reply=False, ticket=ticket)

    async def typing(self, route: ChannelRoute) -> None:
        if self._connection is not None and self._connected:
            await show_typing(self._connection.app.bot, route)

    async def ask(self, route: ChannelRoute, text: str, choices: list[Choice]) -> str | None:
        bot, sender = self._current_bot(), self._sender
        if bot is None or sender is None or not self._connected:
            return None
        # Under the chat's lock and noted like any message of ours: a probe for a send whose
        # answer was lost must find the question below its floor, never edit it.
        async with sender.lock(route.chat_id):
            message_id = await buttons.ask(bot, route, text, choices)
            if message_id is not None:
                sender.note_message(route.chat_id, int(message_id))
        return message_id

    async def settle(self, route: ChannelRoute, message_id: str, text: str) -> None:
        bot = self._current_bot()
        if bot is not None and self._connected:
            await buttons.settle(bot, route, message_id, text)

    async def react(self, route: ChannelRoute, stage: AckStage | None) -> None:
        emoji = {"working": self.config.ack_reaction, "done": self.config.done_reaction}.get(
            stage or ""
        )
        if self._live is not None and self._connected:
            await self._live.react(route, emoji)

    # -- webhook ----------------------------------------------------------------------------

    @property
    def webhook_path(self) -> str:
        """The path Telegram POSTs to: the path of `webhook_url`."""
        if self.config.webhook_url is None:
            raise RuntimeError("webhook_url is not configured")
        return urlsplit(self.config.webhook_url).path or "/"

    def webhook_handler(self) -> Handler:
        """The aiohttp handler for webhook mode (checks the secret token header)."""
        if self.config.webhook_secret is None:
            raise RuntimeError("webhook_secret is not configured")
        return webhook_handler(
            self.config.webhook_secret.get_secret_value(),
            lambda: self._connection.app.bot if self._connection and self._connected else None,
            self._enqueue_update,
            self.receiver.skip,
        )

    def attach_webhook(self, app: web.Application, path: str | None = None) -> None:
        """Mount the webhook route on an aiohttp app (the gateway's), at `webhook_path`."""
        app.router.add_post(path or self.webhook_path, self.webhook_handler())

    async def _enqueue_update(self, update: Update) -> None:
        if self._connection is not None:
            await self._connection.app.update_queue.put(update)

    # -- helpers ----------------------------------------------------------------------------

    def _identity(self) -> tuple[int, str] | None:
        if self._connection is None:
            return None
        bot = self._connection.app.bot
        return bot.id, bot.username

    def _current_bot(self) -> Bot | None:
        return self._connection.app.bot if self._connection is not None else None

    def _note_message(self, chat_id: str, message_id: int) -> None:
        if self._sender is not None:
            self._sender.note_message(chat_id, message_id)

    async def _send_notice(self, route: ChannelRoute, text: str) -> bool:
        return await self._deliver(route, text, plain=True, reply=True, ticket=None)

    async def _deliver(
        self, route: ChannelRoute, text: str, *, plain: bool, reply: bool, ticket: Ticket | None
    ) -> bool:
        if ticket is not None:
            await self.connected()  # an outbox entry waits (its retry time runs meanwhile)
        if self._sender is None or not self._connected:
            log.error("telegram: not connected; a message to chat %s was dropped", route.chat_id)
            return False
        return await deliver(self._sender, route, text, plain=plain, reply=reply, ticket=ticket)

    async def connected(self) -> None:
        """Until the Bot API connection is up (outbox entries resumed at start wait here)."""
        if self._connection is not None:
            await self._connection.up.wait()

    def probe(self) -> SubsystemHealth:
        connection = self._connection
        return telegram_health(
            self.config,
            running=connection is not None,
            live=self._connected,
            live_since=connection.live_since if connection is not None else 0.0,
            connect_error=connection.error if connection is not None else None,
            polling=self._polling,
            receiver=self.receiver,
        )
