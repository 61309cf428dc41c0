"""A local Anthropic Messages API server for tests.

It speaks the streaming (SSE) form of `POST /v1/messages`: `message_start`, a
`content_block_start` / `content_block_delta` / `content_block_stop` run per text block
(`text_delta`) and per tool use (`input_json_delta`), `message_delta` with the stop reason and
usage, and `message_stop`. Tests script what each request gets, in order, with `Reply` and
`Fault` plans; a fault is an HTTP error with Anthropic's error body
(`{"type": "error", "error": {"type": ..., "message": ...}}`), optionally with retry-after.
The server records every request body and its headers.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from pydantic import BaseModel, JsonValue

from tests.conftest import free_port


@dataclass(frozen=True)
class ToolUse:
    name: str
    input_json: str
    tool_use_id: str = "toolu_1"


@dataclass(frozen=True)
class Reply:
    """A streamed answer: one text block made of `chunks` (none when empty), then tool uses.

    `error_after` ends the stream with an `error` event (overloaded) after that many text
    chunks, as Anthropic does when it fails a response that already started."""

    chunks: tuple[str, ...] = ("Hello", ", world")
    tool_uses: tuple[ToolUse, ...] = ()
    input_tokens: int = 10
    output_tokens: int = 5
    error_after: int | None = None


@dataclass(frozen=True)
class Fault:
    """An HTTP error answer; `error_type` is Anthropic's `error.type`."""

    status: int
    error_type: str
    message: str = "fault injected by the test"
    retry_after: float | None = None


Plan = Reply | Fault


class RecordedRequest(BaseModel):
    """One request as the server received it."""

    model: str
    stream: bool
    max_tokens: int
    system: JsonValue = None
    messages: list[dict[str, JsonValue]]
    tools: list[dict[str, JsonValue]] = []
    x_api_key: str | None = None
    authorization: str | None = None
    version: str | None = None


@dataclass
class FakeAnthropic:
    """The server. Use as `async with FakeAnthropic() as server:`; `server.base_url` is what
    the SDK takes (it appends /v1/messages). `port` 0 picks a free loopback port."""

    default: Plan = field(default_factory=Reply)
    requests: list[RecordedRequest] = field(default_factory=list)
    _plans: deque[Plan] = field(default_factory=deque)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *plans: Plan) -> None:
        """What the next requests get, in order; after these, `default`."""
        self._plans.extend(plans)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = await request.json()
        self.requests.append(
            RecordedRequest(
                model=body["model"],
                stream=bool(body.get("stream")),
                max_tokens=body["max_tokens"],
                system=body.get("system"),
                messages=body["messages"],
                tools=body.get("tools", []),
                x_api_key=request.headers.get("x-api-key"),
                authorization=request.headers.get("Authorization"),
                version=request.headers.get("anthropic-version"),
            )
        )
        plan = self._plans.popleft() if self._plans else self.default
        if isinstance(plan, Fault):
            return _fault(plan)
        if not body.get("stream"):
            return _fault(Fault(400, "invalid_request_error", "this fake only streams"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for name, data in _events(body["model"], plan):
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response


def _fault(plan: Fault) -> web.Response:
    headers = {"retry-after": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
    body = {"type": "error", "error": {"type": plan.error_type, "message": plan.message}}
    return web.json_response(body, status=plan.status, headers=headers)


def _events(model: str, plan: Reply) -> list[tuple[str, dict[str, Any]]]:
    start: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": plan.input_tokens, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    index = 0
    if plan.chunks:
        events.append(_block_start(index, {"type": "text", "text": ""}))
        for count, text in enumerate(plan.chunks):
            if count == plan.error_after:
                error = {"type": "overloaded_error", "message": "Overloaded"}
                return [*events, ("error", {"type": "error", "error": error})]
            events.append(_block_delta(index, {"type": "text_delta", "text": text}))
        events.append(_block_stop(index))
        index += 1
    for use in plan.tool_uses:
        block = {"type": "tool_use", "id": use.tool_use_id, "name": use.name, "input": {}}
        events.append(_block_start(index, block))
        half = len(use.input_json) // 2
        for part in (use.input_json[:half], use.input_json[half:]):
            events.append(_block_delta(index, {"type": "input_json_delta", "partial_json": part}))
        events.append(_block_stop(index))
        index += 1
    delta = {
        "type": "message_delta",
        "delta": {
            "stop_reason": "tool_use" if plan.tool_uses else "end_turn",
            "stop_sequence": None,
        },
        "usage": {"output_tokens": plan.output_tokens},
    }
    events += [("message_delta", delta), ("message_stop", {"type": "message_stop"})]
    return events


def _block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def _block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}
