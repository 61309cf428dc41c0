"""`/v1/chat/completions` streaming through the hub vs the upstream called directly.

The upstream is tests/fake_openai.py in its own process, streaming TOKENS tokens at a fixed
rate (one chunk every CHUNK_DELAY seconds). The hub is a real `agenthub serve` process whose
model is `openai:bench` pointed at that upstream; the official openai client streams from
its `/v1/chat/completions` with a key from `agenthub ctl tokens new` (path: gateway ->
the key's device -> hub link -> agent -> pydantic-ai -> upstream, and back as stream frames
and server-sent events). The baseline is the same client streaming from the upstream itself.

Per round, each side: tokens/s over the whole request, and time to first token (TTFT).
Targets: throughput >= 0.7x the direct stream, TTFT added <= 20 ms (medians).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
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
from tests.cli_process import Served, clean_env, run_cli  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.fake_openai import FakeOpenAI, Reply  # noqa: E402

TOKENS = 400
CHUNK_DELAY = 0.005  # ~200 tokens/s, a fast hosted model
ROUNDS = 5
TTFT_ADDED_TARGET_MS = 20.0


def upstream(port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        reply = Reply(chunks=tuple(f"t{i} " for i in range(TOKENS)), chunk_delay=CHUNK_DELAY)
        async with FakeOpenAI(default=reply, port=port):
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


async def stream_once(
    client: AsyncOpenAI, model: str, headers: dict[str, str]
) -> tuple[float, float]:
    """(tokens/s over the whole request, seconds to the first token)."""
    started = time.perf_counter()
    first: float | None = None
    text = ""
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "go"}],
        stream=True,
        extra_headers=headers,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first if first is not None else time.perf_counter()
            text += chunk.choices[0].delta.content
    elapsed = time.perf_counter() - started
    assert text.count(" ") == TOKENS and first is not None, len(text)
    return TOKENS / elapsed, first - started


def new_token(env: dict[str, str]) -> str:
    made = run_cli("ctl", "tokens", "new", "--label", "bench", env=env)
    found = re.search(r"shown this once:\n(\S+)", made.stdout)
    if not found:
        raise RuntimeError(f"ctl tokens new failed: {made.stderr}")
    return found.group(1)


async def main() -> None:
    upstream_port, hub_port = free_port(), free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=upstream, args=(upstream_port, ready), daemon=True)
    server.start()
    upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(
            Path(tmp) / "data",
            AGENTHUB_PORT=str(hub_port),
            AGENTHUB_MODEL="openai:bench",
            OPENAI_BASE_URL=upstream_url,
            OPENAI_API_KEY="bench",
            AGENTHUB_LOG_LEVEL="warning",
        )
        hub = Served("serve", env)
        try:
            if not ready.wait(30):
                raise RuntimeError("the upstream stand-in did not start")
            await asyncio.to_thread(hub.wait_for_output, r"control: agenthub ctl status")
            token = await asyncio.to_thread(new_token, env)
            direct = AsyncOpenAI(base_url=upstream_url, api_key="bench", max_retries=0)
            through = AsyncOpenAI(
                base_url=f"http://127.0.0.1:{hub_port}/v1", api_key=token, max_retries=0
            )
            # Warm-up: imports, connection pools, the key's device connection.
            await stream_once(direct, "bench", {})
            await stream_once(through, "main", {"X-Agenthub-Session": "bench-warm"})
            rates: dict[str, list[float]] = {"direct": [], "hub": []}
            firsts: dict[str, list[float]] = {"direct": [], "hub": []}
            for round_number in range(ROUNDS):
                rate, first = await stream_once(direct, "bench", {})
                rates["direct"].append(rate)
                firsts["direct"].append(first)
                # A fresh session per round: the history sent upstream stays the same size.
                session = {"X-Agenthub-Session": f"bench-{round_number}"}
                rate, first = await stream_once(through, "main", session)
                rates["hub"].append(rate)
                firsts["hub"].append(first)
            await direct.close()
            await through.close()
        finally:
            hub.stop()
            server.terminate()
            server.join(5)
    print(f"{TOKENS} tokens per reply at one per {CHUNK_DELAY * 1000:.0f} ms, {ROUNDS} rounds")
    report(
        "/v1/chat/completions streaming through the hub vs upstream direct",
        baseline=statistics.median(rates["direct"]),
        candidate=statistics.median(rates["hub"]),
        unit="tokens/s",
        target=0.7,
    )
    direct_ms = statistics.median(firsts["direct"]) * 1000
    hub_ms = statistics.median(firsts["hub"]) * 1000
    report(
        "time to first token, through the hub vs upstream direct",
        baseline=direct_ms,
        candidate=hub_ms,
        unit="ms",
        target=(direct_ms + TTFT_ADDED_TARGET_MS) / direct_ms,
        higher_is_better=False,
    )
    added = hub_ms - direct_ms
    verdict = "OK" if added <= TTFT_ADDED_TARGET_MS else "MISSED"
    print(f"time to first token added by the hub: {added:.1f} ms (target <= 20 ms) {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
