"""The model runtime's streaming cost, side by side with the bare openai client reading the
same stream from the same local OpenAI-compatible server (tests/fake_openai.py, in its own
process so its cost lands on no side). Both sides read every byte of the reply and check the
whole text; the hub side goes through `build_model` (pydantic-ai over the openai SDK), the
agent, its transcript and its fan-out to a subscriber.

1. Fast stream (TOKENS chunks sent as fast as the server can): tokens/s to the subscriber vs
   the bare client (target >= 0.7x). A reader that falls behind a stream this fast gets what
   arrived meanwhile folded into fewer deltas (`hub.providers.folding`), so the per-chunk work
   of the SDK, pydantic-ai and the hub is done per batch; the bare client parses every chunk.
   The line above the ratios says how many deltas the subscriber saw.
2. Hub share: the agent subscriber vs `PydanticAIModel.stream` alone on the same stream: what
   the agent, its transcript and events add on top of pydantic-ai (per turn, here).
3. Paced stream (PACED_TOKENS chunks, one per PACE seconds, so the reader keeps up and nothing
   folds): CPU time per token of the agent path vs the bare client: the per-chunk cost that
   remains when each chunk is handled on its own (information, no target).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from hub.agent import AsyncAgent  # noqa: E402
from hub.events import AgentEnd, AgentEvent, MessageUpdate  # noqa: E402
from hub.model import ModelTurn, TextDelta  # noqa: E402
from hub.providers import ModelConfig, build_model  # noqa: E402
from hub.sessions import SessionStore  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.fake_openai import FakeOpenAI, Reply  # noqa: E402

TOKENS = 3_000
PACED_TOKENS = 500
PACE = 0.002
ROUNDS = 5


def words(count: int) -> tuple[str, ...]:
    return tuple(f"t{i} " for i in range(count))


def serve(port: int, ready: multiprocessing.synchronize.Event, count: int, pace: float) -> None:
    async def main() -> None:
        reply = Reply(chunks=words(count), chunk_delay=pace)
        async with FakeOpenAI(default=reply, port=port):
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def start_server(count: int, pace: float) -> tuple[multiprocessing.Process, str]:
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready, count, pace), daemon=True)
    server.start()
    if not ready.wait(30):
        raise RuntimeError("the fake server did not start")
    return server, f"http://127.0.0.1:{port}/v1"


class Run:
    """One side's reading of one reply: wall time, CPU time, deltas seen."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.wall = self.cpu = 0.0
        self.deltas = 0

    def __enter__(self) -> Run:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    @property
    def rate(self) -> float:
        return self.tokens / self.wall


async def bare_client(base_url: str, tokens: int) -> Run:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    text = ""
    with Run(tokens) as run:
        stream = await client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": "go"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                run.deltas += 1
    await client.close()
    assert text == "".join(words(tokens)), len(text)
    return run


def bench_config(base_url: str) -> ModelConfig:
    return ModelConfig(spec="openai:bench", openai_base_url=base_url, builtin_tools=False)


async def runtime_alone(base_url: str, tokens: int) -> Run:
    model = build_model(bench_config(base_url))
    text = ""
    with Run(tokens) as run:
        async for part in model.stream(ModelTurn("bench", "r", "go", ())):
            if isinstance(part, TextDelta):
                text += part.text
                run.deltas += 1
    assert text == "".join(words(tokens)), len(text)
    return run


async def through_agent(base_url: str, data_dir: Path, tokens: int) -> Run:
    agent = AsyncAgent("bench", build_model(bench_config(base_url)), SessionStore(data_dir))
    done = asyncio.Event()
    text = ""
    run = Run(tokens)

    def on_event(event: AgentEvent) -> None:
        nonlocal text
        if isinstance(event, MessageUpdate):
            run.deltas += 1
            text = event.text
        elif isinstance(event, AgentEnd):
            done.set()

    agent.subscribe(on_event)
    with run:
        agent.write("go")
        await done.wait()
    await agent.close()
    assert text == "".join(words(tokens)), len(text)
    return run


async def fast(base_url: str, tmp: Path) -> None:
    await bare_client(base_url, TOKENS)  # warm-up: imports, connection pool
    await through_agent(base_url, tmp / "warm", TOKENS)
    bare: list[Run] = []
    alone: list[Run] = []
    agent: list[Run] = []
    for round_number in range(ROUNDS):
        bare.append(await bare_client(base_url, TOKENS))
        alone.append(await runtime_alone(base_url, TOKENS))
        agent.append(await through_agent(base_url, tmp / f"fast-{round_number}", TOKENS))
    deltas = sorted(r.deltas for r in agent)
    print(
        f"fast stream: {TOKENS} chunks per reply, {ROUNDS} rounds; the subscriber saw "
        f"{deltas[0]}-{deltas[-1]} message_update events per reply"
    )
    report(
        "runtime streaming, agent subscriber vs bare openai client",
        baseline=statistics.median(r.rate for r in bare),
        candidate=statistics.median(r.rate for r in agent),
        unit="tokens/s",
        target=0.7,
    )
    report(
        "hub share: agent subscriber vs pydantic-ai stream alone",
        baseline=statistics.median(r.rate for r in alone),
        candidate=statistics.median(r.rate for r in agent),
        unit="tokens/s",
        target=0.9,
    )


async def paced(base_url: str, tmp: Path) -> None:
    await bare_client(base_url, PACED_TOKENS)
    await through_agent(base_url, tmp / "paced-warm", PACED_TOKENS)
    bare: list[Run] = []
    agent: list[Run] = []
    for round_number in range(ROUNDS):
        bare.append(await bare_client(base_url, PACED_TOKENS))
        agent.append(await through_agent(base_url, tmp / f"paced-{round_number}", PACED_TOKENS))
    bare_us = statistics.median(r.cpu for r in bare) / PACED_TOKENS * 1e6
    agent_us = statistics.median(r.cpu for r in agent) / PACED_TOKENS * 1e6
    deltas = sorted(r.deltas for r in agent)
    print(
        f"paced stream: {PACED_TOKENS} chunks, one per {PACE * 1000:g} ms; the subscriber saw "
        f"{deltas[0]}-{deltas[-1]} message_update events per reply"
    )
    print(
        f"CPU per token when every chunk is handled on its own: agenthub {agent_us:,.0f} us "
        f"vs bare openai client {bare_us:,.0f} us -> {agent_us / bare_us:.1f}x (information)"
    )


async def main() -> None:
    fast_server, fast_url = start_server(TOKENS, 0.0)
    paced_server, paced_url = start_server(PACED_TOKENS, PACE)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await fast(fast_url, Path(tmp))
            await paced(paced_url, Path(tmp))
    finally:
        for server in (fast_server, paced_server):
            server.terminate()
            server.join(5)


if __name__ == "__main__":
    asyncio.run(main())
