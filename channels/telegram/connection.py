"""The python-telegram-bot Application: building it, connecting (with background retries
when the Bot API is unreachable at start), and shutting it down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler
from telegram.request import HTTPXRequest

from channels.telegram.config import TelegramConfig
from channels.telegram.polling import PollSupervisor, TelegramApp, TrackingRequest
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.telegram")

UpdateHandler = Callable[[Update], Awaitable[None]]


class TelegramStartError(RuntimeError):
    """The bot could not start for a reason retrying will not fix (e.g. a revoked token)."""


def build_application(
    config: TelegramConfig, poll_request: TrackingRequest, on_update: UpdateHandler
) -> TelegramApp:
    builder = (
        ApplicationBuilder()
        .token(config.bot_token.get_secret_value())
        .base_url(config.api_base_url)
        .request(
            HTTPXRequest(
                connection_pool_size=64,
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                write_timeout=config.write_timeout,
                pool_timeout=config.read_timeout,
            )
        )
        .get_updates_request(poll_request)
        .job_queue(None)
    )
    if config.api_base_file_url:
        builder = builder.base_file_url(config.api_base_file_url)
    app: TelegramApp = builder.build()

    async def handle(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await on_update(update)

    async def on_error(_update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # `on_update` handles its own failures; this only sees the library's.
        log.warning("telegram: handling an update failed: %r", context.error)

    app.add_handler(TypeHandler(Update, handle))
    app.add_error_handler(on_error)
    return app


class BotConnection:
    """Connects `app` and keeps it connected: `connect()` raises `TelegramStartError` for a
    refused token; an unreachable Bot API is retried in the background (2 s doubling)."""

    def __init__(
        self,
        app: TelegramApp,
        config: TelegramConfig,
        commands: list[BotCommand],
        polling: PollSupervisor | None,
    ) -> None:
        self.app = app
        self.config = config
        self.commands = commands
        self.polling = polling
        self.live = False
        self.live_since = 0.0
        # Set while live: outbox entries waiting for the connection await it.
        self.up = asyncio.Event()
        self.error: str | None = None
        self._tasks = TaskFunnel("telegram:connect", log)
        self._stopping = False

    @property
    def name(self) -> str:
        return "telegram:connection"

    async def start(self) -> None:
        self._stopping = False
        try:
            await self._connect()
        except InvalidToken as exc:
            raise TelegramStartError(f"Telegram refused the bot token: {exc.message}") from None
        except TelegramError as exc:
            # Telegram unreachable at boot must not take the hub down: keep trying.
            self.error = str(exc)
            log.warning("telegram: cannot reach the Bot API (%s); retrying in the background", exc)
            self._tasks.spawn(self._keep_connecting(), name="telegram:connect")

    async def _connect(self) -> None:
        """Initialise, start, and begin receiving; each step is skipped when already done,
        so a failed attempt can simply be repeated."""
        app, cfg = self.app, self.config
        await app.initialize()
        if not app.running:
            await app.start()
        with contextlib.suppress(TelegramError):
            await app.bot.set_my_commands(self.commands)
        if self.polling is None:
            assert cfg.webhook_url is not None and cfg.webhook_secret is not None
            await app.bot.set_webhook(
                url=cfg.webhook_url,
                secret_token=cfg.webhook_secret.get_secret_value(),
                allowed_updates=["message", "callback_query"],
            )
            log.info("telegram: @%s receiving by webhook", app.bot.username)
        else:
            await self.polling.start(app)
            log.info("telegram: @%s long polling %s", app.bot.username, cfg.api_base_url)
        self.live = True
        self.live_since = time.monotonic()
        self.up.set()
        self.error = None

    async def _keep_connecting(self) -> None:
        delay = self.config.reconnect_initial
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except InvalidToken as exc:
                self.error = f"Telegram refused the bot token: {exc.message}"
                log.error("telegram: %s; the channel stays off", self.error)
                return
            except TelegramError as exc:
                self.error = str(exc)
                delay = min(self.config.backoff_max, delay * 2)
                log.warning("telegram: still cannot reach the Bot API (%s)", exc)
            else:
                return

    async def stop(self) -> None:
        self._stopping = True
        self.live = False
        self.up.clear()
        await self._tasks.close()
        if self.polling is not None:
            await self.polling.stop()
        app = self.app
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
