"""Folding an OpenAI-style event stream: which events fold, which pass through untouched, and
the read-ahead stream's behaviour (split events, other framing, errors, a second pass, close,
the read-ahead cap); end to end, a consumer that falls behind gets fewer, larger deltas with
exactly the same text, thinking and transcript."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from hub.agent import AsyncAgent
from hub.events import MessageUpdate
from hub.model import ModelTurn, TextDelta, UsageReport
from hub.providers import ModelConfig, build_model, folding
from hub.providers.folding import FoldingStream, fold_events
from hub.sessions import MessageEntry, SessionStore
from tests.agent_turns import assistant_ends, run_turn
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_gateway_support import eventually


def chunk(content: object = None, *, id: str = "c1", **delta: object) -> dict[str, Any]:
    body: dict[str, object] = {} if content is None else {"content": content}
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {**body, **delta}, "finish_reason": None}],
    }


def event(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def datas(block: bytes) -> list[dict[str, Any] | str]:
    """The data of each event in `block`, parsed where it is JSON."""
    found: list[dict[str, Any] | str] = []
    for piece in block.split(b"\n\n")[:-1]:
        text = piece.decode().removeprefix("data: ")
        try:
            found.append(json.loads(text))
        except ValueError:
            found.append(text)
    return found


def test_a_run_of_text_deltas_folds_into_one_chunk_in_order() -> None:
    block = b"".join(event(chunk(t)) for t in ("Hel", "lo ", "wor", "ld"))
    (folded,) = datas(fold_events(block))
    assert folded == chunk("Hello world")


def test_lone_events_pass_through_byte_for_byte() -> None:
    one = event(chunk("Hi"))
    assert fold_events(one) == one
    mixed = event(chunk("a")) + event("[DONE]")
    assert fold_events(mixed) == mixed


@pytest.mark.parametrize(
    "other",
    [
        chunk("", role="assistant"),  # the opening role chunk
        chunk("  \n"),  # whitespace only: pydantic-ai may drop it at the start of a part
        chunk("<think>"),  # a thinking tag is recognised only as a delta of its own
        chunk("a < b"),
        chunk(None, tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]),
        chunk(None, reasoning_content="hmm"),
        chunk("x", reasoning_content="hmm"),
        {
            **chunk("x"),
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}],
        },
        {**chunk("x"), "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": {"a": 1}}]},
        {**chunk("x"), "usage": {"prompt_tokens": 1}},
        {**chunk("x"), "x_vendor": 1},  # a field we do not know could be per-chunk data
        {**chunk("x"), "choices": [{"index": 0, "delta": {"content": "x"}, "extra": 1}]},
        {**chunk("x"), "choices": []},
        "[DONE]",
        "not json",
    ],
)
def test_anything_but_a_plain_text_delta_passes_through_and_splits_runs(
    other: dict[str, Any] | str,
) -> None:
    block = event(chunk("a")) + event(chunk("b")) + event(other) + event(chunk("c"))
    folded = fold_events(block)
    assert datas(folded) == [chunk("ab"), other, chunk("c")]
    assert event(other) in folded


def test_events_of_another_shape_are_left_alone() -> None:
    multi_line = b'event: x\ndata: {"a": 1}\n\n'
    no_space = b'data:{"a": 1}\n\n'
    comment = b": keep-alive\n\n"
    block = multi_line + no_space + comment + event(chunk("a")) + event(chunk("b"))
    assert fold_events(block) == multi_line + no_space + comment + event(chunk("ab"))


def test_runs_break_where_the_chunk_fields_or_role_change() -> None:
    block = (
        event(chunk("a"))
        + event(chunk("b", id="c2"))
        + event(chunk("c", id="c2"))
        + event(chunk("d", id="c2", role="assistant"))
    )
    assert datas(fold_events(block)) == [
        chunk("a"),
        chunk("bc", id="c2"),
        chunk("d", id="c2", role="assistant"),
    ]


def test_per_chunk_padding_does_not_break_a_run_and_the_first_is_kept() -> None:
    block = event({**chunk("a"), "obfuscation": "x1"}) + event({**chunk("b"), "obfuscation": "y"})
    assert datas(fold_events(block)) == [{**chunk("ab"), "obfuscation": "x1"}]


def test_text_beyond_ascii_folds_exactly() -> None:
    block = event(chunk("é")) + event(chunk("日本")) + event(chunk("🙂"))
    (folded,) = datas(fold_events(block))
    assert folded == chunk("é日本🙂")


class Body(httpx2.AsyncByteStream):
    """A response body the test feeds piece by piece (`None` ends it)."""

    def __init__(self) -> None:
        self.pieces: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.reads = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (piece := await self.pieces.get()) is not None:
            if isinstance(piece, BaseException):
                raise piece
            self.reads += 1
            yield piece

    async def aclose(self) -> None:
        self.closed = True


def feed(body: Body, *pieces: bytes | BaseException | None) -> None:
    for piece in pieces:
        body.pieces.put_nowait(piece)


async def read_all(stream: FoldingStream) -> bytes:
    return b"".join([piece async for piece in stream])


async def test_a_waiting_consumer_gets_a_piece_at_once_and_then_what_arrived_meanwhile() -> None:
    body = Body()
    stream = FoldingStream(body)
    pieces = aiter(stream)
    feed(body, *(event(chunk(t)) for t in ("a", "b", "c")), event("[DONE]"), None)
    assert await anext(pieces) == event(chunk("a"))
    await eventually(lambda: body.reads == 4)  # busy with "a" while the rest arrives
    rest = b"".join([piece async for piece in pieces])
    assert datas(rest) == [chunk("bc"), "[DONE]"]


async def test_a_consumer_that_keeps_up_gets_every_event_as_sent() -> None:
    body = Body()
    pieces = aiter(FoldingStream(body))
    got: list[bytes] = []
    for text in ("a", "b", "c"):
        feed(body, event(chunk(text)))
        got.append(await anext(pieces))
    feed(body, None)
    assert got == [event(chunk(t)) for t in ("a", "b", "c")]
    assert [piece async for piece in pieces] == []


async def test_an_event_split_across_reads_waits_for_its_end() -> None:
    whole = event(chunk("a")) + event(chunk("b"))
    body = Body()
    stream = FoldingStream(body)
    pieces = aiter(stream)
    feed(body, whole[:10])
    waiting = asyncio.ensure_future(anext(pieces))
    await eventually(lambda: body.reads == 1)
    assert not waiting.done()
    feed(body, whole[10:30], whole[30:], None)
    assert datas(await waiting + await read_all(stream)) == [chunk("ab")]


async def test_crlf_framing_passes_through_as_it_comes() -> None:
    raw = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
    body = Body()
    feed(body, raw[:7], raw[7:], None)
    assert await read_all(FoldingStream(body)) == raw


async def test_an_unterminated_tail_is_handed_on_at_the_end() -> None:
    body = Body()
    feed(body, event(chunk("a")), b"data: [DO", None)
    assert await read_all(FoldingStream(body)) == event(chunk("a")) + b"data: [DO"


async def test_a_read_error_comes_after_the_data_before_it() -> None:
    body = Body()
    feed(body, event(chunk("a")), httpx2.ReadError("connection reset"))
    stream = FoldingStream(body)
    got: list[bytes] = []

    async def drain() -> None:
        async for piece in stream:
            got.append(piece)

    with pytest.raises(httpx2.ReadError, match="connection reset"):
        await drain()
    assert got == [event(chunk("a"))]


async def test_a_second_pass_goes_on_where_the_first_stopped() -> None:
    body = Body()
    stream = FoldingStream(body)
    feed(body, event(chunk("a")))
    async for piece in stream:
        assert piece == event(chunk("a"))
        break
    feed(body, event("[DONE]"), None)
    assert await read_all(stream) == event("[DONE]")


async def test_close_stops_a_reader_waiting_on_the_network() -> None:
    body = Body()
    stream = FoldingStream(body)
    feed(body, event(chunk("a")))
    async for _ in stream:
        break
    await stream.aclose()
    assert body.closed
    feed(body, event(chunk("late")), None)
    await asyncio.sleep(0)
    assert body.reads == 1


async def test_the_reader_stops_reading_ahead_at_the_cap_until_the_consumer_takes() -> None:
    body = Body()
    stream = FoldingStream(body, read_ahead=20)
    feed(body, *(event(chunk(str(n))) for n in range(5)), None)
    pieces = aiter(stream)
    first = await anext(pieces)
    for _ in range(20):
        await asyncio.sleep(0)
    held_back = body.reads
    assert held_back < 5
    rest = first + b"".join([piece async for piece in pieces])
    assert "".join(c["choices"][0]["delta"]["content"] for c in datas(rest)) == "01234"  # type: ignore[index]


# End to end: the real openai client and pydantic-ai against the fake server.


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def config(server: FakeOpenAI) -> ModelConfig:
    return ModelConfig(spec="openai:gpt-test", openai_base_url=server.base_url)


class WatchedBody(httpx2.AsyncByteStream):
    """A response body that records when it has been read to its end."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self.inner = inner
        self.ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.inner:
            yield piece
        self.ended = True

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> list[WatchedBody]:
    """The bodies the folding hook reads ahead, watched.

    The server having sent a reply is not the client having it: the bytes can still sit in
    socket buffers, and a consumer that resumes then keeps up with the rest as it arrives."""
    watched: list[WatchedBody] = []

    class Watching(FoldingStream):
        def __init__(self, inner: httpx2.AsyncByteStream) -> None:
            watched.append(WatchedBody(inner))
            super().__init__(watched[-1])

    monkeypatch.setattr(folding, "FoldingStream", Watching)
    return watched


async def test_a_consumer_that_falls_behind_gets_the_text_folded_and_exact(
    server: FakeOpenAI, bodies: list[WatchedBody]
) -> None:
    chunks = tuple(f"w{n} " for n in range(300))
    server.enqueue(Reply(chunks=chunks, prompt_tokens=7, completion_tokens=300))
    model = build_model(config(server))
    deltas: list[str] = []
    usage: UsageReport | None = None
    async for part in model.stream(ModelTurn("main", "r1", "go", ())):
        if isinstance(part, TextDelta):
            deltas.append(part.text)
            # Busy with the first delta until the whole reply has been read off the network.
            if len(deltas) == 1:
                await eventually(lambda: server.finished == 1 and bodies[0].ended)
        elif isinstance(part, UsageReport):
            usage = part
    assert len(bodies) == 1
    assert "".join(deltas) == "".join(chunks)
    assert len(deltas) < len(chunks) // 2
    # The first, then all the rest folded into one (or all of it in the first, when the folding
    # hook had read the whole reply before the model's stream handed out its first delta).
    assert len(deltas) in (1, 2)
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (7, 300)


async def test_thinking_tags_survive_folding(server: FakeOpenAI) -> None:
    chunks = ("<think>", "weigh", "ing it", " up", "</think>", "The", " answer", " is", " 4")
    server.enqueue(Reply(chunks=chunks))
    model = build_model(config(server))
    deltas: list[str] = []
    async for part in model.stream(ModelTurn("main", "r1", "go", ())):
        if isinstance(part, TextDelta):
            deltas.append(part.text)
            await eventually(lambda: server.finished == 1)
    assert "".join(deltas) == "The answer is 4"


async def test_the_transcript_and_updates_match_the_stream_exactly(
    server: FakeOpenAI, data_dir: Path
) -> None:
    chunks = tuple(f"t{n} " for n in range(500))
    server.enqueue(
        Reply(
            chunks=("Let me check. ",),
            tool_calls=(ToolCall("calculator", '{"expression": "2+2"}'),),
        )
    )
    server.enqueue(Reply(chunks=chunks))
    store = SessionStore(data_dir)
    agent = AsyncAgent("main", build_model(config(server)), store)
    events = await run_turn(agent, "go")
    updates = [e for e in events if isinstance(e, MessageUpdate)]
    ends = assistant_ends(events)
    assert [e.text for e in ends] == ["Let me check. ", "".join(chunks)]
    answer = [u for u in updates if u.message_id == ends[-1].message_id]
    assert "".join(u.delta for u in answer) == "".join(chunks)
    assert all(u.text.endswith(u.delta) for u in answer)
    await agent.close()
    saved = SessionStore(data_dir).current("main").history()
    stored = [e.text for e in saved if isinstance(e, MessageEntry) and e.role == "assistant"]
    assert stored == ["Let me check. ", "".join(chunks)]
