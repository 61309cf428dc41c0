"""Folding the text deltas of an OpenAI-style stream that arrived while the reader was busy.

A chat-completions stream sends one server-sent event per token, and every event costs the SDK,
pydantic-ai and the hub the same per-chunk work. When the reader falls behind (a fast local
model, a loaded machine) that work, not the model, sets the pace. `fold_stream` is an httpx
response hook: a helper task reads the body ahead, and each time the consumer asks for more it
gets everything that arrived meanwhile, with runs of plain text-delta chunks joined into one
chunk carrying their text in order. Anything else passes through byte for byte (role, tool-call,
reasoning, finish and usage chunks, `[DONE]`, `\\r\\n` framing, and text that could be a
thinking tag or is only whitespace, which pydantic-ai reads on its own), so the streamed text
and the transcript stay exact. A consumer that keeps up gets every event as it was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

_END = b"\n\n"
# How much the reader takes ahead of a consumer that is behind before it waits.
_READ_AHEAD = 1 << 20
_DATA = b"data: {"
# The chunk fields a folded chunk may carry; any other field could hold per-chunk data.
_CHUNK_KEYS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "service_tier", "choices"}
    | {"usage", "obfuscation"}
)
_CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs"})
# Fields that may differ between chunks of one run: the folded chunk keeps the first's.
_PER_CHUNK = frozenset({"choices", "obfuscation"})


async def fold_stream(response: httpx2.Response) -> None:
    """httpx response hook: fold the deltas of an event stream's reads (see the module)."""
    stream = response.stream
    if isinstance(stream, httpx2.AsyncByteStream) and response.headers.get(
        "content-type", ""
    ).startswith("text/event-stream"):
        response.stream = FoldingStream(stream)


class FoldingStream(httpx2.AsyncByteStream):
    """The body of an event stream, read ahead by a helper task so that what arrived while
    the consumer was busy reaches it as one piece, with its runs of text deltas folded.

    Iterating it again (the openai SDK drains the rest of the body after `[DONE]`) goes on
    where the last iteration stopped."""

    def __init__(self, inner: httpx2.AsyncByteStream, read_ahead: int = _READ_AHEAD) -> None:
        self._inner = inner
        self._read_ahead = read_ahead
        self._arrived: list[bytes] = []
        self._size = 0
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._waiting = False
        self._reader: asyncio.Task[None] | None = None
        self._held = b""
        self._passing = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        reader = self._reader
        while not (reader.done() and not self._arrived):
            if not self._arrived:
                self._waiting = True
                await self._ready.wait()
                self._waiting = False
            self._ready.clear()
            data = b"".join(self._arrived)
            self._arrived.clear()
            self._size = 0
            self._drained.set()
            if data and (piece := self._take(data)):
                yield piece
        if reader.cancelled():
            return
        reader.result()
        if self._held:
            piece, self._held = self._held, b""
            yield piece

    def _take(self, data: bytes) -> bytes:
        """What of `data` (with what was held back) can go on now: whole events, folded."""
        if self._passing or b"\r" in data:
            # Framing other than bare newlines: hand everything on as it comes.
            self._passing = True
            data, self._held = self._held + data, b""
            return data
        held = self._held + data
        end = held.rfind(_END)
        if end < 0:
            self._held = held
            return b""
        self._held = held[end + 2 :]
        return fold_events(held[: end + 2])

    async def _read(self) -> None:
        try:
            async for data in self._inner:
                self._arrived.append(data)
                self._size += len(data)
                self._ready.set()
                if self._size >= self._read_ahead:
                    self._drained.clear()
                    await self._drained.wait()
                elif self._waiting:
                    # Let a waiting consumer start on this before reading what is buffered.
                    await asyncio.sleep(0)
        finally:
            self._ready.set()

    async def aclose(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader])
        await self._inner.aclose()


def fold_events(block: bytes) -> bytes:
    """`block` (whole events, each ending in a blank line) with runs of text deltas folded."""
    events = block.split(_END)
    if len(events) <= 2:
        return block
    out: list[bytes] = []
    run: list[tuple[bytes, dict[str, Any]]] = []
    for event in events[:-1]:
        chunk = _text_chunk(event)
        if chunk is not None and run and _same_stream(run[0][1], chunk):
            run.append((event, chunk))
            continue
        _flush(run, out)
        run = [(event, chunk)] if chunk is not None else []
        if chunk is None:
            out.append(event + _END)
    _flush(run, out)
    return b"".join(out)


def _flush(run: list[tuple[bytes, dict[str, Any]]], out: list[bytes]) -> None:
    if len(run) == 1:
        out.append(run[0][0] + _END)
    elif run:
        first = run[0][1]
        text = "".join(chunk["choices"][0]["delta"]["content"] for _, chunk in run)
        choice = first["choices"][0]
        folded = {**first, "choices": [{**choice, "delta": {**choice["delta"], "content": text}}]}
        out.append(b"data: " + json.dumps(folded, ensure_ascii=False).encode() + _END)


def _text_chunk(event: bytes) -> dict[str, Any] | None:
    """The chunk `event` carries when it is a plain text delta that may be folded, else None."""
    if not event.startswith(_DATA) or b"\n" in event:
        return None
    try:
        chunk = json.loads(event[6:])
    except ValueError:
        return None
    if not isinstance(chunk, dict) or not chunk.keys() <= _CHUNK_KEYS:
        return None
    choices = chunk.get("choices")
    if chunk.get("usage") is not None or not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or not choice.keys() <= _CHOICE_KEYS:
        return None
    delta = choice.get("delta")
    if choice.get("finish_reason") is not None or choice.get("logprobs") is not None:
        return None
    if not isinstance(delta, dict):
        return None
    content = delta.get("content")
    # A thinking tag or a whitespace-only delta means something on its own to pydantic-ai.
    if not isinstance(content, str) or not content.strip() or "<" in content:
        return None
    if any(value is not None for key, value in delta.items() if key not in ("content", "role")):
        return None
    return chunk


def _same_stream(first: dict[str, Any], chunk: dict[str, Any]) -> bool:
    """Whether `chunk` may join a run that `first` opened: same fields, choice and role."""
    if {k: v for k, v in first.items() if k not in _PER_CHUNK} != {
        k: v for k, v in chunk.items() if k not in _PER_CHUNK
    }:
        return False
    a, b = first["choices"][0], chunk["choices"][0]
    return bool(
        a.get("index") == b.get("index") and a["delta"].get("role") == b["delta"].get("role")
    )
