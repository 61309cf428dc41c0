"""A local OpenAI-compatible chat completions server for tests and benchmarks.

It speaks the streaming (SSE) and plain forms of `POST /v1/chat/completions`: text deltas,
tool-call deltas and a usage chunk. Tests script what each request gets, in order, with
`Reply` and `Fault` plans; faults cover HTTP errors (401, 404, 429 with retry-after, 500),
a stream cut mid-way and a slow first byte. The server records every request body and every
connection the client closed before the reply was finished.

It also answers `POST /v1/audio/transcriptions` (multipart, as the openai client sends it):
each request gets the next of `enqueue_transcripts` (a text, or a `Fault`), else
`transcript`; every upload is recorded in `transcriptions`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from pydantic import BaseModel, JsonValue

from tests.conftest import free_port


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    call_id: str = "call_1"


@dataclass(frozen=True)
class Reply:
    """A streamed (or plain) answer: text chunks, then tool calls, then usage.

    `cut_after` closes the connection after that many text chunks; `first_byte_delay` waits
    before the response starts; `chunk_delay` waits before every chunk after the first text;
    `pace(sent)` is awaited before each text chunk after the first, with the number of text
    chunks sent so far (a test holds the next chunk until its consumer has seen the last)."""

    chunks: tuple[str, ...] = ("Hello", ", world")
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    pace: Callable[[int], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Fault:
    """An HTTP error answer."""

    status: int
    message: str = "fault injected by the test"
    code: str | None = None
    retry_after: float | None = None


Plan = Reply | Fault


class RecordedRequest(BaseModel):
    """One request as the server received it."""

    model: str
    stream: bool
    messages: list[dict[str, JsonValue]]
    tools: list[dict[str, JsonValue]] = []
    authorization: str | None = None

    @property
    def tool_names(self) -> set[str]:
        """The names of the tools the model was offered."""
        names = set()
        for tool in self.tools:
            function = tool.get("function")
            if isinstance(function, dict):
                names.add(str(function.get("name")))
        return names


class RecordedTranscription(BaseModel):
    """One transcription upload as the server received it."""

    model: str
    file_name: str
    media_type: str
    content: bytes


@dataclass
class FakeOpenAI:
    """The server. Use as `async with FakeOpenAI() as server:`; `server.base_url` is the
    OpenAI-style base URL (ending in /v1). `port` 0 picks a free loopback port."""

    default: Plan = field(default_factory=Reply)
    requests: list[RecordedRequest] = field(default_factory=list)
    closed_early: int = 0
    finished: int = 0
    _plans: deque[Plan] = field(default_factory=deque)
    transcript: str = "Please remind me to buy milk."
    transcriptions: list[RecordedTranscription] = field(default_factory=list)
    _transcripts: deque[str | Fault] = field(default_factory=deque)
    port: int = 0
    _runner: web.AppRunner | None = None
    _closed_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *plans: Plan) -> None:
        """What the next requests get, in order; after these, `default`."""
        self._plans.extend(plans)

    def enqueue_transcripts(self, *answers: str | Fault) -> None:
        """What the next transcription requests get, in order; after these, `transcript`."""
        self._transcripts.extend(answers)

    async def wait_closed_early(self) -> None:
        """Wait until the client has dropped a connection before its reply finished."""
        await self._closed_event.wait()

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        # handler_cancellation: a client that goes away cancels the handler, which we record.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
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
                messages=body["messages"],
                tools=body.get("tools", []),
                authorization=request.headers.get("Authorization"),
            )
        )
        plan = self._plans.popleft() if self._plans else self.default
        try:
            if isinstance(plan, Fault):
                return _fault(plan)
            if plan.first_byte_delay:
                await asyncio.sleep(plan.first_byte_delay)
            if not body.get("stream"):
                return web.json_response(_completion(body["model"], plan))
            return await self._stream(request, body["model"], plan)
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed_early += 1
            self._closed_event.set()
            raise

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _fault(Fault(400, "file: a multipart file upload is required"))
        self.transcriptions.append(
            RecordedTranscription(
                model=str(form.get("model", "")),
                file_name=upload.filename,
                media_type=upload.content_type,
                content=upload.file.read(),
            )
        )
        answer = self._transcripts.popleft() if self._transcripts else self.transcript
        if isinstance(answer, Fault):
            return _fault(answer)
        return web.json_response({"text": answer})

    async def _stream(self, request: web.Request, model: str, plan: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, chunk in enumerate(_chunks(model, plan)):
            if plan.cut_after is not None and index == plan.cut_after + 1:
                # Drop the connection mid-reply: no terminating chunk, no [DONE].
                assert request.transport is not None
                request.transport.close()
                return response
            if plan.chunk_delay and index > 1:
                await asyncio.sleep(plan.chunk_delay)
            if plan.pace and 1 < index <= len(plan.chunks):
                await plan.pace(index - 1)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.finished += 1
        return response


def _fault(plan: Fault) -> web.Response:
    headers = {"retry-after": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
    error = {"message": plan.message, "type": "invalid_request_error", "code": plan.code}
    return web.json_response({"error": error}, status=plan.status, headers=headers)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _chunks(model: str, plan: Reply) -> list[dict[str, Any]]:
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": text}) for text in plan.chunks]
    for index, call in enumerate(plan.tool_calls):
        opening = {"index": index, "id": call.call_id, "type": "function"}
        chunks.append(_chunk(model, {"tool_calls": [{**opening, "function": {"name": call.name}}]}))
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            chunks.append(
                _chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    chunks.append(_chunk(model, {}, "tool_calls" if plan.tool_calls else "stop"))
    usage = {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
    }
    chunks.append({**_chunk(model, {}), "choices": [], "usage": usage})
    return chunks


def _completion(model: str, plan: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.chunks)}
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in plan.tool_calls
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if plan.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        },
    }
