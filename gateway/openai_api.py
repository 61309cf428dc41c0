"""The OpenAI-compatible endpoint on the gateway port (docs/api.md).

- `GET /v1/models`: one model per agent id (`agents.list`).
- `POST /v1/chat/completions`: the last message (a user message) goes to the agent named by
  `model`, in the session named by the `X-Agenthub-Session` header or, without it, the API
  key's own session `api:<deviceId>`; the hub keeps each session's history, so earlier
  messages of the body are not replayed. Streaming (`stream: true`) answers with
  server-sent events as the reply is written; otherwise with the whole reply.
- `Authorization: Bearer <device token>` (from `agenthub ctl tokens new`, or a paired
  device's): the call acts as that device (`gateway.api_device`).

Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`. Sampling
parameters (`temperature`, `max_tokens`, `tools`, …) are ignored: the agent's configuration
decides them; `n` other than 1 is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from gateway.api_device import ApiDevice, ApiDevices, RunStream, bearer_device
from hub.access import AccessStore
from hub.errors import CodedError, describe_validation
from hub.requests.agents import AgentsAnswer
from hub.requests.messages import SendAnswer
from hub.run_watch import ReplyText

_Answer = TypeVar("_Answer", bound=BaseModel)

SESSION_HEADER = "X-Agenthub-Session"
REPLY_SECONDS = 600.0
REQUEST_SECONDS = 30.0

# Hub and gateway codes -> HTTP status (other `invalid*` and bad-input codes: 400; else 502).
_STATUS: dict[str, int] = {
    "unknown_agent": 404,
    "forbidden": 403,
    "UNAUTHORIZED": 401,
    "queue_full": 429,
    "RATE_LIMITED": 429,
    "DEVICE_NOT_FOUND": 503,
    "unavailable": 503,
    "agent_closed": 503,
    "timeout": 504,
}
_BAD_INPUT = {"empty", "too_large", "invalid_text", "invalid_input", "invalid_params"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class ChatRequest(_Lenient):
    model: Annotated[str, Field(min_length=1, max_length=64)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    n: int = 1


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> web.Response:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        kind = "rate_limit_error" if self.status == 429 else kind
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return web.json_response({"error": error}, status=self.status)


def _from_coded(exc: CodedError) -> ApiError:
    status = 400 if exc.code in _BAD_INPUT or exc.code.startswith("invalid") else 502
    status = _STATUS.get(exc.code, status)
    code = "model_not_found" if exc.code == "unknown_agent" else exc.code
    return ApiError(status, exc.message, code)


def _prompt(body: ChatRequest) -> str:
    """The text of the body's last message, which must be the user's."""
    last = body.messages[-1]
    if last.role != "user":
        raise ApiError(
            400,
            "the last message must be the user's (role 'user')",
            "invalid_value",
            param="messages",
        )
    if isinstance(last.content, list):
        if any(part.type != "text" for part in last.content):
            raise ApiError(
                400, "only text content is supported", "unsupported_content", param="messages"
            )
        return "".join(part.text or "" for part in last.content)
    return last.content or ""


Handler = Callable[[web.Request, ApiDevice], Awaitable[web.StreamResponse]]


class OpenAIApi:
    """The routes; `close()` drops the devices' connections."""

    def __init__(self, access: AccessStore, local_url: Callable[[], str]) -> None:
        self._access = access
        # The gateway's port is known once it listens; the devices connect on first use.
        self.devices = ApiDevices(local_url)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._guard(self._models))
        app.router.add_post("/v1/chat/completions", self._guard(self._completions))

    async def close(self) -> None:
        await self.devices.close()

    def _guard(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                device_id, token = self._key(request)
                async with self.devices.use(device_id, token) as device:
                    return await handler(request, device)
            except ApiError as exc:
                return exc.response()
            except CodedError as exc:
                return _from_coded(exc).response()

        return route

    def _key(self, request: web.Request) -> tuple[str, str]:
        """The device id and token of the call's API key, or 401."""
        key = bearer_device(self._access, request.headers.get("Authorization"))
        if key is None:
            raise ApiError(
                401,
                "missing, unknown or revoked API key: send `Authorization: Bearer <token>` "
                "with a token from `agenthub ctl tokens new`",
                "invalid_api_key",
            )
        return key

    async def _models(self, request: web.Request, device: ApiDevice) -> web.Response:
        answer = await device.request("agents.list", {}, seconds=REQUEST_SECONDS)
        agents = _answer(AgentsAnswer, answer).agents
        data = [
            {"id": a.agent_id, "object": "model", "created": 0, "owned_by": "agenthub"}
            for a in agents
        ]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request, device: ApiDevice) -> web.StreamResponse:
        try:
            raw = await request.json()
        except ValueError:
            raise ApiError(400, "the body is not JSON", "invalid_json") from None
        try:
            body = ChatRequest.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(400, describe_validation(exc), "invalid_request") from None
        if body.n != 1:
            raise ApiError(400, "only n = 1 is supported", "unsupported_parameter", param="n")
        text = _prompt(body)
        session = request.headers.get(SESSION_HEADER) or f"api:{device.device_id}"
        params: dict[str, JsonValue] = {
            "agentId": body.model,
            "content": text,
            "sessionKey": session,
            "wait": not body.stream,
            "timeout": REPLY_SECONDS,
        }
        created = int(time.time())
        if not body.stream:
            answer = await device.request(
                "messages.send", params, seconds=REPLY_SECONDS + REQUEST_SECONDS
            )
            return _completion(_answer(SendAnswer, answer), body.model, created)
        answer = await device.request("messages.send", params, seconds=REQUEST_SECONDS)
        run_id = _answer(SendAnswer, answer).run_id
        stream = device.claim(run_id)
        try:
            return await _stream(request, stream, run_id, body.model, created)
        finally:
            device.release(run_id)


def _answer(model: type[_Answer], payload: JsonValue) -> _Answer:
    try:
        return model.model_validate(payload)
    except ValidationError:
        raise ApiError(502, "the hub answered something unexpected", "bad_gateway") from None


def _completion(answer: SendAnswer, model: str, created: int) -> web.Response:
    if answer.error is not None:
        raise ApiError(502, f"the agent failed: {answer.error.message}", answer.error.code)
    if answer.status is None:
        raise ApiError(504, "the agent did not finish in time", "timeout")
    return web.json_response(
        {
            "id": f"chatcmpl-{answer.run_id}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.reply},
                    "finish_reason": "stop",
                }
            ],
        }
    )


async def _stream(
    request: web.Request, stream: RunStream, run_id: str, model: str, created: int
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)

    async def send(data: dict[str, JsonValue] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        await response.write(f"data: {text}\n\n".encode())

    def chunk(delta: dict[str, JsonValue], finish: str | None = None) -> dict[str, JsonValue]:
        return {
            "id": f"chatcmpl-{run_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    try:
        await _relay(send, chunk, stream)
    except ConnectionResetError:
        # The client went away; the run goes on and its reply stays in the session's history.
        return response
    await response.write_eof()
    return response


async def _relay(
    send: Callable[[dict[str, JsonValue] | str], Awaitable[None]],
    chunk: Callable[..., dict[str, JsonValue]],
    stream: RunStream,
) -> None:
    """The run's assistant text as chunks (a blank line between its messages), then the end
    (or the failure), then `[DONE]`."""
    await send(chunk({"role": "assistant", "content": ""}))
    reply = ReplyText()
    try:
        async with asyncio.timeout(REPLY_SECONDS):
            while True:
                event = (await stream.next()).event
                kind = event.get("type")
                if delta := reply.take(event):
                    await send(chunk({"content": delta}))
                elif kind == "agent_error":
                    error = {"message": str(event.get("message")), "code": event.get("code")}
                    await send({"error": {**error, "type": "server_error", "param": None}})
                elif kind == "agent_end":
                    break
    except CodedError as exc:
        await send({"error": {"message": exc.message, "type": "server_error", "code": exc.code}})
    except TimeoutError:
        message = "the agent did not finish in time"
        await send({"error": {"message": message, "type": "server_error", "code": "timeout"}})
    else:
        await send(chunk({}, "stop"))
    await send("[DONE]")
