"""Webhook mode: an aiohttp route that Telegram POSTs updates to.

Every request must carry the secret token given to `setWebhook` in the
`X-Telegram-Bot-Api-Secret-Token` header (compared in constant time); anything else gets 403
and never reaches the bot. The composition root mounts the route on the gateway's app.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from telegram import Bot, Update

log = logging.getLogger("agenthub.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20

Handler = Callable[[web.Request], Awaitable[web.Response]]


def webhook_handler(
    secret: str,
    bot: Callable[[], Bot | None],
    deliver: Callable[[Update], Awaitable[None]],
    skip: Callable[[int, str], None],
) -> Handler:
    """The aiohttp handler. `bot` returns the running bot, or None while the plugin is down.
    An update the library cannot read is passed to `skip` and acknowledged (200), so
    Telegram does not deliver it again and again; anything else that is not an update is 400."""
    expected = secret.encode()

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("telegram webhook: request without the right secret refused")
            return web.Response(status=403, text="forbidden")
        current = bot()
        if current is None:
            return web.Response(status=503, text="telegram channel is not running")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="too large")
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            log.warning("telegram webhook: unreadable body refused (%s)", exc)
            data = None
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="not a Telegram update")
        try:
            update = Update.de_json(data, current)
        except Exception as exc:  # any parse failure means "unreadable"
            skip(update_id, f"{type(exc).__name__}: {exc}")
            return web.Response(text="skipped")
        if update is None:
            return web.Response(status=400, text="not a Telegram update")
        await deliver(update)
        return web.Response(text="ok")

    return handle
