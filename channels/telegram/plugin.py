"""TelegramPlugin: python-telegram-bot embedded in the hub's event loop.

`start` runs `Application.initialize/start` and either long polling (`updater.start_polling`,
watched by a watchdog) or webhook mode (`setWebhook`; mount `webhook_handler` with
`attach_webhook`). Updates are deduplicated by `update_id`, checked against the DM policy,
and only then handed to the manager as `ChannelMessage` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, Update
from telegram.constants import ChatAction
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.request import HTTPXRequest

from channels.base import BlockLimits, ChannelMessage, InboundCallback
from channels.telegram.config import TelegramConfig
from channels.telegram.formatting import (
    TELEGRAM_LIMIT,
    html_to_plain,
    measure,
    plain_chunks,
    render_html,
)
from channels.telegram.inbound import Inbound, parse_message
from channels.telegram.policy import CHANNEL, AccessPolicy, Allowed, NeedsPairing
from channels.telegram.polling import TrackingRequest
from channels.telegram.ratelimit import RateLimiter
from channels.telegram.reliability import ReliableSender
from channels.telegram.webhook import Handler, webhook_handler
from hub.access import AccessStore, Decision, DeviceRecord
from hub.health import HealthRegistry, SubsystemHealth
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.telegram")

DEDUPE_SIZE = 2000
BOT_COMMANDS = [
    BotCommand("new", "Start a fresh conversation"),
    BotCommand("stop", "Stop the reply in progress"),
    BotCommand("help", "What this bot understands"),
]
TelegramApp = Application[Any, Any, Any, Any, Any, Any]


class TelegramStartError(RuntimeError):
    """The bot could not start for a reason retrying will not fix (e.g. a revoked token)."""


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class TelegramPlugin:
    """The Telegram channel. Construct with its config, the hub's AccessStore and
    HealthRegistry; register with `ChannelManager.register` (which calls `start`/`stop`)."""

    def __init__(self, config: TelegramConfig, access: AccessStore, health: HealthRegistry) -> None:
        self.config = config
        self.access = access
        self.health = health
        self.policy = AccessPolicy(config.dm_policy, config.allowed_users, access)
        self.limiter = RateLimiter(config.rate_limits)
        self.poll_restarts = 0
        self.conflicts = 0
        self.updates_received = 0
        self._app: TelegramApp | None = None
        self._poll_request: TrackingRequest | None = None
        self._sender: ReliableSender | None = None
        self._on_message: InboundCallback | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conflict_at: float | None = None
        self._last_update_at: float | None = None
        self._stopping = False
        self._live = False
        self._live_since = 0.0
        self._connect_error: str | None = None
        self._connecting: asyncio.Task[None] | None = None
        health.register(CHANNEL, self._health)

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

    async def start(self, on_message: InboundCallback) -> None:
        """Connect and begin receiving. Raises `TelegramStartError` for a bad token."""
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        cfg = self.config
        self._poll_request = TrackingRequest(
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.poll_read_slack,
            write_timeout=cfg.write_timeout,
        )
        builder = (
            ApplicationBuilder()
            .token(cfg.bot_token.get_secret_value())
            .base_url(cfg.api_base_url)
            .request(
                HTTPXRequest(
                    connection_pool_size=64,
                    connect_timeout=cfg.connect_timeout,
                    read_timeout=cfg.read_timeout,
                    write_timeout=cfg.write_timeout,
                    pool_timeout=cfg.read_timeout,
                )
            )
            .get_updates_request(self._poll_request)
            .job_queue(None)
        )
        if cfg.api_base_file_url:
            builder = builder.base_file_url(cfg.api_base_file_url)
        app: TelegramApp = builder.build()
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        self._app = app
        self._sender = ReliableSender(app.bot, cfg, self.limiter)
        self._unlisten = self.access.listen(self._on_access)
        try:
            await self._connect(app)
        except InvalidToken as exc:
            await self.stop()
            raise TelegramStartError(f"Telegram refused the bot token: {exc.message}") from None
        except TelegramError as exc:
            # Telegram unreachable at boot must not take the hub down: keep trying.
            self._connect_error = str(exc)
            log.warning("telegram: cannot reach the Bot API (%s); retrying in the background", exc)
            self._connecting = asyncio.get_running_loop().create_task(
                self._keep_connecting(app), name="telegram:connect"
            )

    async def _connect(self, app: TelegramApp) -> None:
        """Initialise, start, and begin receiving; each step is skipped when already done,
        so a failed attempt can simply be repeated."""
        cfg = self.config
        await app.initialize()
        if not app.running:
            await app.start()
        with contextlib.suppress(TelegramError):
            await app.bot.set_my_commands(BOT_COMMANDS)
        if self.webhook_mode:
            assert cfg.webhook_url is not None and cfg.webhook_secret is not None
            await app.bot.set_webhook(
                url=cfg.webhook_url,
                secret_token=cfg.webhook_secret.get_secret_value(),
                allowed_updates=["message"],
            )
            log.info("telegram: @%s receiving by webhook", app.bot.username)
        else:
            if app.updater is not None and not app.updater.running:
                await self._start_polling()
            if self._watchdog is None:
                self._watchdog = asyncio.get_running_loop().create_task(
                    self._watch(), name="telegram:watchdog"
                )
            log.info("telegram: @%s long polling %s", app.bot.username, cfg.api_base_url)
        self._live = True
        self._live_since = time.monotonic()
        self._connect_error = None

    async def _keep_connecting(self, app: TelegramApp) -> None:
        delay = self.config.reconnect_initial
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._connect(app)
            except InvalidToken as exc:
                self._connect_error = f"Telegram refused the bot token: {exc.message}"
                log.error("telegram: %s; the channel stays off", self._connect_error)
                return
            except TelegramError as exc:
                self._connect_error = str(exc)
                delay = min(self.config.backoff_max, delay * 2)
                log.warning("telegram: still cannot reach the Bot API (%s)", exc)
            else:
                return

    async def stop(self) -> None:
        self._stopping = True
        self._live = False
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for task in list(self._tasks):
            task.cancel()
        app, self._app = self._app, None
        if app is None:
            return
        try:
            if app.updater is not None and app.updater.running:
                # Stopping cancels the long poll, then confirms the offset with a short poll.
                async with asyncio.timeout(self.config.poll_read_slack + 5):
                    await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()  # a no-op when initialize never succeeded
        except (TimeoutError, TelegramError) as exc:
            log.warning("telegram: stopped uncleanly (%s)", exc)

    async def reply_text(self, route: ChannelRoute, text: str, *, plain: bool = False) -> bool:
        return await self._deliver(route, text, plain=plain, reply=True)

    async def send_text(self, route: ChannelRoute, text: str, *, plain: bool = False) -> bool:
        return await self._deliver(route, text, plain=plain, reply=False)

    async def typing(self, route: ChannelRoute) -> None:
        if self._app is None or not self._live:
            return
        try:
            await self._app.bot.send_chat_action(
                chat_id=route.chat_id,
                action=ChatAction.TYPING,
                message_thread_id=int(route.thread_id) if route.thread_id else None,
            )
        except TelegramError as exc:
            log.debug("telegram: typing indicator for chat %s failed: %s", route.chat_id, exc)

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
            lambda: self._app.bot if self._app is not None and self._live else None,
            self._enqueue_update,
        )

    def attach_webhook(self, app: web.Application, path: str | None = None) -> None:
        """Mount the webhook route on an aiohttp app (the gateway's), at `webhook_path`."""
        app.router.add_post(path or self.webhook_path, self.webhook_handler())

    async def _enqueue_update(self, update: Update) -> None:
        if self._app is not None:
            await self._app.update_queue.put(update)

    # -- polling ----------------------------------------------------------------------------

    async def _start_polling(self) -> None:
        assert self._app is not None and self._app.updater is not None
        await self._app.updater.start_polling(
            timeout=int(self.config.poll_timeout),
            allowed_updates=["message"],
            error_callback=self._on_poll_error,
        )

    def _on_poll_error(self, exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            self.conflicts += 1
            if self._conflict_at is None:
                log.error(
                    "telegram: 409 Conflict: another process is polling with this bot token "
                    "(or a webhook is set). Stop the other instance; polling keeps retrying."
                )
            self._conflict_at = time.monotonic()
            return
        log.warning("telegram: polling failed: %s", exc)

    async def _watch(self) -> None:
        """Restart polling that has not completed a poll for `watchdog_stall` seconds."""
        assert self._poll_request is not None
        started = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(self.config.watchdog_interval)
            last = self._poll_request.last_completed or started
            if time.monotonic() - last < self.config.watchdog_stall:
                continue
            log.error(
                "telegram: no poll completed for %.0fs; restarting polling",
                time.monotonic() - last,
            )
            await self._restart_polling()
            started = time.monotonic()

    async def _restart_polling(self) -> None:
        app = self._app
        if app is None or app.updater is None:
            return
        self.poll_restarts += 1
        if app.updater.running:
            try:
                async with asyncio.timeout(self.config.poll_read_slack):
                    await app.updater.stop()
            except (TimeoutError, TelegramError) as exc:
                log.warning("telegram: stopping the stalled poll: %s", exc)
        try:
            await self._start_polling()
        except (TelegramError, RuntimeError) as exc:
            log.error("telegram: restarting polling failed (%s); the watchdog retries", exc)

    # -- inbound ----------------------------------------------------------------------------

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        self._last_update_at = time.monotonic()
        if update.update_id in self._seen:
            log.info("telegram: update %d seen before; ignored", update.update_id)
            return
        self._seen[update.update_id] = None
        self.updates_received += 1
        if len(self._seen) > DEDUPE_SIZE:
            self._seen.popitem(last=False)
        app = self._app
        if app is None or self._on_message is None:
            return
        inbound = parse_message(update, app.bot.id, app.bot.username)
        if inbound is None:
            return
        self.sender.note_message(inbound.chat_id, inbound.message_id)
        if inbound.private:
            verdict = self.policy.check_private(inbound.user_id, inbound.label)
            if isinstance(verdict, NeedsPairing):
                self._spawn(self._send_plain(inbound, _pairing_text(verdict.code)))
                return
            if not isinstance(verdict, Allowed):
                if verdict.reason:
                    self._spawn(self._send_plain(inbound, verdict.reason))
                return
        elif not self.policy.is_allowed(inbound.user_id):
            log.info("telegram: group message from unauthorised user %s ignored", inbound.user_id)
            return
        await self._on_message(
            ChannelMessage(
                route=_route(inbound),
                text=inbound.text,
                sender_label=inbound.label,
                command=inbound.command,
            )
        )

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handling an update failed", exc_info=context.error)

    async def _send_plain(self, inbound: Inbound, text: str) -> None:
        await self.reply_text(_route(inbound), text, plain=True)

    # -- pairing ----------------------------------------------------------------------------

    def _on_access(self, what: str, payload: Decision | DeviceRecord) -> None:
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
        self._loop.call_soon_threadsafe(self._spawn, self.send_text(route, text, plain=True))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- outbound ---------------------------------------------------------------------------

    async def _deliver(self, route: ChannelRoute, text: str, *, plain: bool, reply: bool) -> bool:
        if self._sender is None or not self._live:
            log.error("telegram: not connected; a message to chat %s was dropped", route.chat_id)
            return False
        html = not plain
        if plain:
            chunks = plain_chunks(text)
        else:
            rendered = render_html(text)
            if _utf16_len(rendered) <= TELEGRAM_LIMIT:
                chunks = [rendered] if rendered.strip() else []
            else:
                # Only text that did not come through the aggregator can get here.
                log.warning("telegram: formatted text too long; sending it as plain text")
                chunks, html = plain_chunks(html_to_plain(rendered)), False
        delivered = True
        reply_to = int(route.reply_to_message_id) if reply and route.reply_to_message_id else None
        for index, chunk in enumerate(chunks):
            ok = await self._sender.send(
                route.chat_id,
                chunk,
                html=html,
                reply_to=reply_to if index == 0 else None,
                thread_id=int(route.thread_id) if route.thread_id else None,
                group=route.chat_id.startswith("-"),
            )
            delivered = delivered and ok
        return delivered

    # -- health -----------------------------------------------------------------------------

    def _health(self) -> SubsystemHealth:
        if self._app is None:
            return SubsystemHealth(name=CHANNEL, status="down", detail="not running")
        if not self._live:
            detail = f"connecting: {self._connect_error or 'starting'}"
            return SubsystemHealth(name=CHANNEL, status="down", detail=detail)
        if self.webhook_mode:
            age = time.monotonic() - self._last_update_at if self._last_update_at else None
            return SubsystemHealth(name=CHANNEL, status="ok", detail="webhook", age_seconds=age)
        assert self._poll_request is not None
        age = self._poll_request.age()
        recent_conflict = (
            self._conflict_at is not None
            and (self._poll_request.last_completed or 0) < self._conflict_at
        )
        if recent_conflict:
            return SubsystemHealth(
                name=CHANNEL,
                status="down",
                detail="409 Conflict: another process is polling with this bot token",
                age_seconds=age,
            )
        # Before the first long poll returns, polling is as fresh as the moment it began.
        quiet_for = age if age is not None else time.monotonic() - self._live_since
        stale = quiet_for > self.config.poll_timeout + self.config.poll_read_slack
        detail = f"polling; last poll {'in progress' if age is None else f'{age:.1f}s ago'}"
        if self.poll_restarts:
            detail += f"; watchdog restarts: {self.poll_restarts}"
        return SubsystemHealth(
            name=CHANNEL, status="degraded" if stale else "ok", detail=detail, age_seconds=age
        )


def _route(inbound: Inbound) -> ChannelRoute:
    return ChannelRoute(
        channel=CHANNEL,
        chat_id=inbound.chat_id,
        reply_to_message_id=str(inbound.message_id),
        thread_id=str(inbound.thread_id) if inbound.thread_id is not None else None,
        user_id=inbound.user_id,
    )


def _pairing_text(code: str) -> str:
    return (
        "Hi! This bot only talks to people its owner approved.\n"
        f"Your pairing code: {code}\n"
        f"Ask the owner to run: agenthub ctl pair approve {code}\n"
        "I'll tell you here once you're in."
    )
