"""Per-token overhead of the model runtime: tokens per second from a local OpenAI-compatible
streaming server through pydantic-ai, the agent and its fan-out to a subscriber, side by side
with the bare openai client reading the same stream. Target: >= 0.7x.

A second line splits the cost: the same stream through `PydanticAIModel.stream` alone (the
pydantic-ai agent loop, no hub agent), against the full path, shows what the hub's mapping,
events and fan-out add on top of pydantic-ai. The server runs in its own process so its cost
lands on no side.
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
ROUNDS = 5


def serve(port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        reply = Reply(chunks=tuple(f"t{i} " for i in range(TOKENS)))
        async with FakeOpenAI(default=reply, port=port):
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


async def bare_client(base_url: str) -> float:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    started = time.perf_counter()
    tokens = 0
    stream = await client.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "go"}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert tokens == TOKENS, tokens
    return tokens / elapsed


def bench_config(base_url: str) -> ModelConfig:
    return ModelConfig(spec="openai:bench", openai_base_url=base_url, builtin_tools=False)


async def runtime_alone(base_url: str) -> float:
    model = build_model(bench_config(base_url))
    started = time.perf_counter()
    tokens = 0
    async for part in model.stream(ModelTurn("bench", "r", "go", ())):
        tokens += isinstance(part, TextDelta)
    elapsed = time.perf_counter() - started
    assert tokens == TOKENS, tokens
    return tokens / elapsed


async def through_agent(base_url: str, data_dir: Path) -> tuple[float, int]:
    agent = AsyncAgent("bench", build_model(bench_config(base_url)), SessionStore(data_dir))
    done = asyncio.Event()
    updates = 0
    text = ""

    def on_event(event: AgentEvent) -> None:
        nonlocal updates, text
        if isinstance(event, MessageUpdate):
            updates += 1
            text = event.text
        elif isinstance(event, AgentEnd):
            done.set()

    agent.subscribe(on_event)
    started = time.perf_counter()
    agent.write("go")
    await done.wait()
    elapsed = time.perf_counter() - started
    await agent.close()
    assert text.count(" ") == TOKENS, len(text)
    return TOKENS / elapsed, updates


async def main() -> None:
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the fake server did not start")
        base_url = f"http://127.0.0.1:{port}/v1"
        await bare_client(base_url)  # warm-up: imports, connection pool
        with tempfile.TemporaryDirectory() as tmp:
            await through_agent(base_url, Path(tmp) / "warm")
            bare: list[float] = []
            alone: list[float] = []
            agent: list[float] = []
            updates: list[int] = []
            for round_number in range(ROUNDS):
                bare.append(await bare_client(base_url))
                alone.append(await runtime_alone(base_url))
                rate, count = await through_agent(base_url, Path(tmp) / str(round_number))
                agent.append(rate)
                updates.append(count)
        print(
            f"{TOKENS} tokens per reply, {ROUNDS} rounds; subscriber saw "
            f"{min(updates)}-{max(updates)} message_update events per reply"
        )
        report(
            "runtime streaming, agent subscriber vs bare openai client",
            baseline=statistics.median(bare),
            candidate=statistics.median(agent),
            unit="tokens/s",
            target=0.7,
        )
        report(
            "hub share: agent subscriber vs pydantic-ai stream alone",
            baseline=statistics.median(alone),
            candidate=statistics.median(agent),
            unit="tokens/s",
            target=0.9,
        )
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    asyncio.run(main())
