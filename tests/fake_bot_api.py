"""A local Telegram Bot API server for tests and benchmarks (aiohttp, loopback, free port).

It implements the subset agenthub uses, the way Telegram does: `POST /bot<token>/<method>`
with form-encoded bodies whose non-string values are JSON-encoded; answers
`{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`;
long-poll `getUpdates` honouring `offset` and `timeout`; per-chat message ids shared by the
user's and the bot's messages; HTML parse mode validated like Telegram (only its tags,
balanced, text <= 4096 UTF-16 units after parsing); `bot_command` / `mention` entities.

Also `editMessageText`, `setMessageReaction`, `sendChatAction`, `deleteMessage`, `getFile` and
file downloads (`/file/bot<token>/<path>`; `download` in `fault_methods` injects faults there
too), each recorded. `user_sends` delivers documents, photos (two sizes), voice notes and audio.

`refusing` makes a chat refuse the bot for good (blocked, chat not found). Fault injection,
on every method named in `fault_methods` (default `sendMessage` only):
queued or random faults (429 with retry_after, 502, timeouts and dropped connections either
before or after the call took effect, refused HTML), optionally in runs (`burst`: after a
random fault, the next calls fail too); stalled or 409-conflicting polls; and optional
enforcement of Telegram's flood limits (30 messages/s overall, 1/s per chat, 20/min per
group; edits count like messages).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal

from aiohttp import ClientSession, web
from pydantic import JsonValue

from tests.conftest import free_port

FaultKind = Literal[
    "429", "502", "timeout_lost", "timeout_landed", "drop_lost", "drop_landed", "parse"
]
TRANSIENT_FAULTS: tuple[FaultKind, ...] = (
    "429",
    "502",
    "timeout_lost",
    "timeout_landed",
    "drop_lost",
    "drop_landed",
)
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
    "blockquote", "span", "tg-spoiler", "tg-emoji",
}  # fmt: skip
LIMIT = 4096
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# The rights a getChatMember answer for an administrator carries.
ADMIN_RIGHTS = (
    "be_edited",
    "manage_chat",
    "delete_messages",
    "manage_video_chats",
    "restrict_members",
    "promote_members",
    "change_info",
    "invite_users",
    "post_stories",
    "edit_stories",
    "delete_stories",
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


class _TelegramHtml(HTMLParser):
    """Parses Telegram HTML the way the Bot API does: known tags only, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f'Unmatched end tag "{tag}"'
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.error is None and parser.stack:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    if parser.error is not None:
        raise ApiError(400, f"Bad Request: can't parse entities: {parser.error}")
    return "".join(parser.text)


@dataclass
class StoredMessage:
    chat_id: int
    message_id: int
    from_bot: bool
    text: str
    raw: str
    parse_mode: str | None
    reply_to: int | None
    at: float
    # The forum topic it was sent in (`message_thread_id`), if any.
    thread_id: int | None = None


@dataclass
class Chat:
    chat_id: int
    type: str
    next_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)


class FakeBotApi:
    """Start with `await start()`; point python-telegram-bot at `base_url`."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST-token",
        bot_id: int = 777000,
        username: str = "agenthub_test_bot",
        hang_seconds: float = 2.0,
        enforce_limits: bool = False,
        seed: int = 7,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.hang_seconds = hang_seconds
        self.enforce_limits = enforce_limits
        self.port = 0
        self.chats: dict[int, Chat] = {}
        self.bot_messages: list[StoredMessage] = []
        self.chat_actions: list[tuple[int, str, float]] = []
        # (chat_id, message_id, shown text, when) for every edit that changed a message.
        self.edits: list[tuple[int, int, str, float]] = []
        # (chat_id, message_id) -> the reaction emojis now set on that message.
        self.reactions: dict[tuple[int, int], list[str]] = {}
        self.reaction_log: list[tuple[int, int, tuple[str, ...]]] = []
        self.deleted: list[tuple[int, int]] = []
        self.fault_methods: set[str] = {"sendMessage"}
        # Chats that refuse the bot for good: sends and edits there answer with this error.
        self.refusing: dict[int, ApiError] = {}
        # file_id -> (file_path, content) for getFile and downloads.
        self.files: dict[str, tuple[str, bytes]] = {}
        # Inline keyboards under the bot's messages, and the button presses it acknowledged.
        self.keyboards: dict[tuple[int, int], JsonValue] = {}
        self.answered_queries: list[str] = []
        # After a random fault, the next `burst` calls of faulty methods fail too.
        self.burst = 0
        self._burst_left = 0
        self.longest_fault_run = 0
        self._fault_run = 0
        self.calls: dict[str, int] = {}
        self.faults: deque[FaultKind] = deque()
        self.fault_rate = 0.0
        # Every `fault_every`-th sendMessage call fails, cycling through `fault_kinds`.
        self.fault_every = 0
        self._send_calls = 0
        self._cycle = 0
        self.fault_kinds: tuple[FaultKind, ...] = TRANSIENT_FAULTS
        self.faults_injected: dict[str, int] = {}
        self.stall_polls = 0
        self.conflict_polls = 0
        self.polls_completed = 0
        self.rate_violations = 0
        self.violations_by_limit: dict[str, int] = {}
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_statuses: list[int] = []
        self.commands: list[JsonValue] = []
        # chat_id -> user ids that getChatMember reports as administrators.
        self.admins: dict[int, set[int]] = {}
        self._rng = random.Random(seed)
        self._updates: list[dict[str, JsonValue]] = []
        self._next_update = 1
        self._new_update = asyncio.Event()
        self._closing = asyncio.Event()
        self._sent_global: deque[float] = deque()
        self._sent_chat: dict[int, float] = {}
        self._sent_group: dict[int, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def reserve_port(self) -> None:
        """Choose the port now (for a client configured before the server starts)."""
        self.port = free_port()

    async def start(self, port: int | None = None) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._client = ClientSession()

    async def stop(self) -> None:
        self._closing.set()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the user's side --------------------------------------------------------------------

    def chat(self, chat_id: int, chat_type: str = "private") -> Chat:
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(chat_id, chat_type)
        return self.chats[chat_id]

    async def user_says(
        self,
        text: str,
        *,
        chat_id: int = 1001,
        user_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Alice",
        username: str = "alice",
        reply_to: int | None = None,
        update_id: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        """A user writes `text`; returns its message id. Commands and @mentions get entities
        as Telegram would create them. `thread_id`: a forum topic of a supergroup."""
        chat = self.chat(chat_id, chat_type)
        message_id = chat.next_id
        chat.next_id += 1
        user = user_id if user_id is not None else chat_id
        chat.messages[message_id] = StoredMessage(
            chat_id, message_id, False, text, text, None, reply_to, time.monotonic()
        )
        chat_json: dict[str, JsonValue] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat_json["first_name"] = first_name
        else:
            chat_json["title"] = "Group"
        message: dict[str, JsonValue] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat_json,
            "from": {"id": user, "is_bot": False, "first_name": first_name, "username": username},
            "text": text,
        }
        entities = _entities(text)
        if entities:
            message["entities"] = entities
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            chat_json["is_forum"] = True
        if reply_to is not None:
            original = chat.messages[reply_to]
            message["reply_to_message"] = self._message_json(original, chat)
        await self.push_update({"message": message}, update_id=update_id)
        return message_id

    async def user_sends(
        self,
        kind: str,
        *,
        content: bytes = b"",
        file_name: str = "file.txt",
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int = 1001,
        size: int | None = None,
        duration: int = 3,
    ) -> int:
        """A user sends a `document`, `photo`, `voice`, `audio` or `video` (`content` behind
        getFile); returns its message id. A photo comes in two sizes, as Telegram sends them:
        a small preview (other bytes) first, `content` last."""
        chat = self.chat(chat_id)
        message_id = chat.next_id
        chat.next_id += 1
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = (f"{kind}s/{file_id}-{file_name}", content)
        stored = StoredMessage(
            chat_id, message_id, False, caption or "", caption or "", None, None, time.monotonic()
        )
        chat.messages[message_id] = stored
        ref: dict[str, JsonValue] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": size if size is not None else len(content),
        }
        media: JsonValue
        if kind == "document":
            ref["file_name"] = file_name
            if mime_type:
                ref["mime_type"] = mime_type
            media = ref
        elif kind == "photo":
            preview = f"{file_id}-preview"
            self.files[preview] = (f"photos/{preview}.jpg", b"small preview")
            small: dict[str, JsonValue] = {
                "file_id": preview,
                "file_unique_id": f"u{preview}",
                "file_size": 13,
            }
            media = [small | {"width": 90, "height": 90}, ref | {"width": 1280, "height": 960}]
        else:
            media = ref | {"duration": duration}
            if kind == "video":
                media |= {"width": 640, "height": 480}
            if kind == "audio":
                media |= {"file_name": file_name}
            if mime_type:
                media["mime_type"] = mime_type
        message: dict[str, JsonValue] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Alice"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"},
            kind: media,
        }
        if caption is not None:
            message["caption"] = caption
        await self.push_update({"message": message})
        return message_id

    async def user_presses(
        self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None
    ) -> int:
        """A user presses the button carrying `data` under the bot's message `message_id`."""
        chat = self.chat(chat_id)
        user = user_id if user_id is not None else chat_id
        query: dict[str, JsonValue] = {
            "id": f"cq-{len(self.answered_queries) + self._next_update}",
            "from": {"id": user, "is_bot": False, "first_name": f"User {user}"},
            "chat_instance": str(chat_id),
            "data": data,
            "message": self._message_json(chat.messages[message_id], chat),
        }
        return await self.push_update({"callback_query": query})

    async def _m_answerCallbackQuery(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue:
        self.answered_queries.append(params["callback_query_id"])
        return True

    async def push_update(
        self, update: dict[str, JsonValue], *, update_id: int | None = None
    ) -> int:
        """Deliver a raw update as given (odd ones included), with the next `update_id`
        unless one is named; returns the id."""
        update_id = update_id if update_id is not None else self._next_update
        self._next_update = max(self._next_update, update_id + 1)
        update = {"update_id": update_id, **update}
        if self.webhook_url:
            await self._post_webhook(update)
        else:
            self._updates.append(update)
            self._new_update.set()
        return update_id

    def bot_said(self, chat_id: int, text: str) -> int:
        """A message of the bot's that is already in the chat (sent by an earlier process)."""
        chat = self.chat(chat_id)
        message = StoredMessage(
            chat_id, chat.next_id, True, text, text, None, None, time.monotonic()
        )
        chat.next_id += 1
        chat.messages[message.message_id] = message
        self.bot_messages.append(message)
        return message.message_id

    async def _post_webhook(self, update: dict[str, JsonValue]) -> None:
        assert self._client is not None
        headers = {SECRET_HEADER: self.webhook_secret} if self.webhook_secret else {}
        async with self._client.post(self.webhook_url, json=update, headers=headers) as response:
            self.webhook_statuses.append(response.status)

    def replies_in(self, chat_id: int) -> list[StoredMessage]:
        """The bot's messages in a chat, in the order they were accepted."""
        return [m for m in self.bot_messages if m.chat_id == chat_id]

    def texts_in(self, chat_id: int) -> list[str]:
        return [m.text for m in self.replies_in(chat_id)]

    # -- HTTP -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        self.calls[method] = self.calls.get(method, 0) + 1
        form = dict((await request.post()).items()) if request.method == "POST" else {}
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            result = await handler(params, request)
        except ApiError as exc:
            return _error(exc.status, exc.description, exc.retry_after)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response({"ok": True, "result": result})

    # -- methods ----------------------------------------------------------------------------

    async def _m_getFile(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        fault = self._next_fault("getFile")
        if fault is not None and fault != "parse":
            return await self._fail(request, fault, landed=False)
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        self.calls["download"] = self.calls.get("download", 0) + 1
        fault = self._next_fault("download")
        if fault is not None and fault != "parse":
            return await self._fail(request, fault, landed=False)
        for path, content in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=content)
        return _error(404, "Not Found")

    async def _m_getMe(self, params: dict[str, str], request: web.Request) -> JsonValue:
        return self._bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_deleteWebhook(self, params: dict[str, str], request: web.Request) -> JsonValue:
        self.webhook_url = ""
        return True

    async def _m_setWebhook(self, params: dict[str, str], request: web.Request) -> JsonValue:
        self.webhook_url = params.get("url", "")
        self.webhook_secret = params.get("secret_token", "")
        return True

    async def _m_setMyCommands(self, params: dict[str, str], request: web.Request) -> JsonValue:
        self.commands = json.loads(params.get("commands", "[]"))
        return True

    async def _m_getChatMember(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        """`administrator` for the ids in `admins[chat_id]`, else `member`."""
        fault = self._next_fault("getChatMember")
        if fault is not None and fault != "parse":
            return await self._fail(request, fault, landed=False)
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        user: dict[str, JsonValue] = {"id": user_id, "is_bot": False, "first_name": "User"}
        if user_id in self.admins.get(chat_id, set()):
            rights: dict[str, JsonValue] = {f"can_{right}": True for right in ADMIN_RIGHTS}
            return {"status": "administrator", "user": user, "is_anonymous": False, **rights}
        return {"status": "member", "user": user}

    async def _m_sendChatAction(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        fault = self._next_fault("sendChatAction")
        if fault is not None and fault != "parse":
            return await self._fail(request, fault, landed=False)
        self.chat_actions.append((int(params["chat_id"]), params["action"], time.monotonic()))
        return True

    async def _m_setMessageReaction(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        chat = self.chats.get(int(params["chat_id"]))
        message_id = int(params["message_id"])
        if chat is None or message_id not in chat.messages:
            raise ApiError(400, "Bad Request: message to react not found")
        fault = self._next_fault("setMessageReaction")
        if fault is not None and fault != "parse" and not fault.endswith("landed"):
            return await self._fail(request, fault, landed=False)
        reaction = json.loads(params.get("reaction", "[]"))
        emojis = [r["emoji"] for r in reaction if isinstance(r, dict) and "emoji" in r]
        self.reactions[(chat.chat_id, message_id)] = emojis
        self.reaction_log.append((chat.chat_id, message_id, tuple(emojis)))
        if fault is not None and fault.endswith("landed"):
            return await self._fail(request, fault, landed=True)
        return True

    async def _m_getUpdates(self, params: dict[str, str], request: web.Request) -> JsonValue:
        offset = int(params.get("offset", "0") or 0)
        timeout = float(params.get("timeout", "0") or 0)
        if self.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        if self.conflict_polls > 0:
            self.conflict_polls -= 1
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        if self.stall_polls > 0 and timeout > 0:
            self.stall_polls -= 1
            await self._closing.wait()  # a poll that never answers
            raise ApiError(502, "Bad Gateway")
        if offset:
            self._updates = [u for u in self._updates if _update_id(u) >= offset]
        if not self._updates and timeout > 0:
            self._new_update.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._new_update.wait()
            except TimeoutError:
                pass
        self.polls_completed += 1
        return list(self._updates[:100])

    async def _m_sendMessage(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        chat_id = int(params["chat_id"])
        text = params.get("text", "")
        parse_mode = params.get("parse_mode") or None
        reply = json.loads(params["reply_parameters"]) if "reply_parameters" in params else None
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        if chat_id in self.refusing:
            raise self.refusing[chat_id]
        fault = self._next_fault("sendMessage")
        if fault == "parse" and parse_mode:
            raise ApiError(400, "Bad Request: can't parse entities: injected fault at offset 0")
        if fault is not None and fault != "parse" and not fault.endswith("landed"):
            return await self._fail(request, fault, landed=False)
        shown = parse_html(text) if parse_mode == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(shown) > LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        self._check_limits(chat_id)
        chat = self.chat(chat_id, "private" if chat_id > 0 else "supergroup")
        message = StoredMessage(
            chat_id, chat.next_id, True, shown, text, parse_mode, reply_to, time.monotonic()
        )
        chat.next_id += 1
        if params.get("message_thread_id"):
            message.thread_id = int(params["message_thread_id"])
        chat.messages[message.message_id] = message
        self.bot_messages.append(message)
        if "reply_markup" in params:
            self.keyboards[(chat_id, message.message_id)] = json.loads(params["reply_markup"])
        if fault in ("timeout_landed", "drop_landed"):
            return await self._fail(request, fault, landed=True)
        return self._message_json(message, chat)

    async def _m_editMessageText(
        self, params: dict[str, str], request: web.Request
    ) -> JsonValue | web.StreamResponse:
        fault = self._next_fault("editMessageText")
        if fault == "parse" and params.get("parse_mode"):
            raise ApiError(400, "Bad Request: can't parse entities: injected fault at offset 0")
        if fault is not None and fault != "parse" and not fault.endswith("landed"):
            return await self._fail(request, fault, landed=False)
        result = self._edit(params)
        if fault is not None and fault.endswith("landed"):
            return await self._fail(request, fault, landed=True)
        return result

    async def _m_deleteMessage(self, params: dict[str, str], request: web.Request) -> JsonValue:
        chat = self.chats.get(int(params["chat_id"]))
        message_id = int(params["message_id"])
        if chat is None or message_id not in chat.messages:
            raise ApiError(400, "Bad Request: message to delete not found")
        message = chat.messages.pop(message_id)
        if message in self.bot_messages:
            self.bot_messages.remove(message)
        self.deleted.append((chat.chat_id, message_id))
        return True

    def _edit(self, params: dict[str, str]) -> JsonValue:
        if int(params["chat_id"]) in self.refusing:
            raise self.refusing[int(params["chat_id"])]
        chat = self.chats.get(int(params["chat_id"]))
        message = chat.messages.get(int(params["message_id"])) if chat else None
        if chat is None or message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not message.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        text = params.get("text", "")
        parse_mode = params.get("parse_mode") or None
        shown = parse_html(text) if parse_mode == "HTML" else text
        if shown == message.text:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        if utf16_len(shown) > LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        self._check_limits(chat.chat_id)
        message.text, message.raw, message.parse_mode = shown, text, parse_mode
        if "reply_markup" not in params:  # an edit without a keyboard removes it
            self.keyboards.pop((chat.chat_id, message.message_id), None)
        self.edits.append((chat.chat_id, message.message_id, shown, time.monotonic()))
        return self._message_json(message, chat)

    # -- helpers ----------------------------------------------------------------------------

    def _next_fault(self, method: str) -> FaultKind | None:
        if method not in self.fault_methods:
            return None
        fault: FaultKind | None = None
        self._send_calls += 1
        if self.faults:
            fault = self.faults.popleft()
        elif self._burst_left > 0:
            self._burst_left -= 1
            fault = self._rng.choice(self.fault_kinds)
        elif self.fault_every and self._send_calls % self.fault_every == 0:
            fault = self.fault_kinds[self._cycle % len(self.fault_kinds)]
            self._cycle += 1
        elif self.fault_rate and self._rng.random() < self.fault_rate:
            fault = self._rng.choice(self.fault_kinds)
            self._burst_left = self.burst
        if fault is not None:
            self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            self._fault_run += 1
            self.longest_fault_run = max(self.longest_fault_run, self._fault_run)
        else:
            self._fault_run = 0
        return fault

    async def _fail(self, request: web.Request, fault: FaultKind, *, landed: bool) -> web.Response:
        """Answer a call with `fault`; `landed` says whether the call already took effect."""
        if fault == "429":
            return _error(429, "Too Many Requests: retry after 1", retry_after=1)
        if fault == "502":
            return _error(502, "Bad Gateway")
        return await self._fail_transport(request, fault)

    async def _fail_transport(self, request: web.Request, fault: FaultKind) -> web.Response:
        if fault.startswith("timeout"):
            # Longer than the client's read timeout: it gives up without an answer.
            await asyncio.sleep(self.hang_seconds)
        elif request.transport is not None:
            request.transport.close()
        return _error(504, "Gateway Timeout")

    def _check_limits(self, chat_id: int) -> None:
        if not self.enforce_limits:
            return
        now = time.monotonic()
        while self._sent_global and now - self._sent_global[0] >= 1.0:
            self._sent_global.popleft()
        group = self._sent_group.setdefault(chat_id, deque())
        while group and now - group[0] >= 60.0:
            group.popleft()
        broken = [
            name
            for name, hit in (
                ("global", len(self._sent_global) >= 30),
                ("chat", now - self._sent_chat.get(chat_id, -10.0) < 1.0),
                ("group", chat_id < 0 and len(group) >= 20),
            )
            if hit
        ]
        if broken:
            self.rate_violations += 1
            for name in broken:
                self.violations_by_limit[name] = self.violations_by_limit.get(name, 0) + 1
            raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        self._sent_global.append(now)
        self._sent_chat[chat_id] = now
        if chat_id < 0:
            group.append(now)

    def _bot_user(self) -> dict[str, JsonValue]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Agenthub",
            "username": self.username,
        }

    def _message_json(self, message: StoredMessage, chat: Chat) -> dict[str, JsonValue]:
        sender: dict[str, JsonValue] = (
            self._bot_user()
            if message.from_bot
            else {"id": chat.chat_id, "is_bot": False, "first_name": "Alice"}
        )
        return {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": chat.chat_id, "type": chat.type},
            "from": sender,
            "text": message.text,
        }


def _update_id(update: dict[str, JsonValue]) -> int:
    value = update["update_id"]
    assert isinstance(value, int)
    return value


def _entities(text: str) -> list[JsonValue]:
    entities: list[JsonValue] = []
    if text.startswith("/"):
        word = text.split()[0]
        entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(word)})
    position = 0
    for word in text.split(" "):
        if word.startswith("@") and len(word) > 1:
            entities.append(
                {
                    "type": "mention",
                    "offset": utf16_len(text[:position]),
                    "length": utf16_len(word),
                }
            )
        position += len(word) + 1
    return entities


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, JsonValue] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
