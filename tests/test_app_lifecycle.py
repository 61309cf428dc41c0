"""A full `agenthub serve` run as a subprocess with every secret configured: a Telegram turn
against the local Bot API server, a streamed reply from the local OpenAI server, SIGTERM in
the middle of the run, and the logs searched for every secret."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_process import Served, clean_env, http_get, run_cli, wait_healthy
from tests.conftest import free_port
from tests.fake_bot_api import FakeBotApi
from tests.fake_openai import FakeOpenAI, Fault, Reply
from tests.stand_ins import BOT_TOKEN

pytestmark = pytest.mark.slow

OPENAI_KEY = "sk-test-openai-key-5f1c9a7e"
GATEWAY_TOKEN = "gw-test-token-8d2b6c41e9"


def serve_env(data_dir: Path, model: FakeOpenAI, bot: FakeBotApi, **extra: str) -> dict[str, str]:
    settings = {
        "AGENTHUB_PORT": str(free_port()),
        "AGENTHUB_MODEL": "openai:fake-model",
        "AGENTHUB_LOG_LEVEL": "debug",
        "AGENTHUB_GATEWAY_TOKEN": GATEWAY_TOKEN,
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_BASE_URL": bot.base_url,
        "TELEGRAM_DM_POLICY": "open",
    }
    return clean_env(data_dir, **(settings | extra))


def transcript(data_dir: Path) -> list[dict[str, object]]:
    files = sorted((data_dir / "sessions" / "main").glob("*.jsonl"))
    assert files, "no session file"
    return [json.loads(line) for line in files[-1].read_text().splitlines()[1:]]


async def start(env: dict[str, str]) -> tuple[Served, str]:
    served = Served("serve", env)
    await asyncio.to_thread(served.wait_for_output, r"control: agenthub ctl status")
    base = f"http://127.0.0.1:{env['AGENTHUB_PORT']}"
    await asyncio.to_thread(wait_healthy, f"{base}/healthz")
    return served, base


async def wait_for(predicate: Callable[[], object]) -> None:
    # Polling: the state lives in fake servers fed by another process, with no event to await.
    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_sigterm_mid_run_finishes_the_turn_and_leaks_no_secret(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    chunks = tuple(f"word{i} " for i in range(12))
    model.default = Reply(chunks=chunks, chunk_delay=0.15)
    env = serve_env(data_dir, model, bot, AGENTHUB_SHUTDOWN_GRACE="8")
    served, base = await start(env)
    try:
        assert "telegram (long polling" in served.output()
        await bot.user_says("hello there", chat_id=5001)
        await wait_for(lambda: model.requests)
        await asyncio.sleep(0.3)  # the reply is streaming now
        began = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        status, body = await asyncio.to_thread(http_get, f"{base}/healthz")
        assert status == 503
        assert body["draining"] is True
        code = await asyncio.to_thread(served.wait_exit, 20)
        assert code == 0
        assert time.monotonic() - began < 8
    finally:
        served.stop()
    entries = transcript(data_dir)
    assistant = [e for e in entries if e.get("role") == "assistant"]
    assert assistant[-1]["text"] == "".join(chunks)
    assert assistant[-1]["aborted"] is False
    assert "".join(bot.texts_in(5001)) == "".join(chunks).strip()
    everything = served.output() + served.logs()
    assert "shutting down" in everything
    for secret in (OPENAI_KEY, GATEWAY_TOKEN, BOT_TOKEN, BOT_TOKEN.split(":")[1]):
        assert secret not in everything, f"a secret reached the output: {secret[:6]}…"


async def test_a_run_longer_than_the_grace_is_aborted_and_saved(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    model.default = Reply(chunks=tuple(f"w{i} " for i in range(100)), chunk_delay=0.1)
    env = serve_env(data_dir, model, bot, AGENTHUB_SHUTDOWN_GRACE="1")
    served, _ = await start(env)
    try:
        await bot.user_says("tell me a long story", chat_id=5002)
        await wait_for(lambda: model.requests)
        await asyncio.sleep(0.3)
        began = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.wait_exit, 20) == 0
        assert time.monotonic() - began < 6
    finally:
        served.stop()
    assistant = [e for e in transcript(data_dir) if e.get("role") == "assistant"]
    assert assistant[-1]["aborted"] is True
    assert str(assistant[-1]["text"]).startswith("w0 w1 ")


async def test_second_signal_exits_at_once(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    model.default = Reply(chunks=tuple(f"w{i} " for i in range(100)), chunk_delay=0.1)
    env = serve_env(data_dir, model, bot, AGENTHUB_SHUTDOWN_GRACE="30")
    served, _ = await start(env)
    try:
        await bot.user_says("keep going", chat_id=5003)
        await wait_for(lambda: model.requests)
        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        served.process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(served.wait_exit, 5) == 130
    finally:
        served.stop()


async def test_a_refused_bot_token_exits_2(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    env = serve_env(data_dir, model, bot, TELEGRAM_BOT_TOKEN="999:not-the-right-token")
    result = await asyncio.to_thread(run_cli, "serve", env=env)
    assert result.returncode == 2, result.stderr
    assert "bad configuration" in result.stderr and "channels" in result.stderr
    assert "not-the-right-token" not in result.stdout + result.stderr


async def test_doctor_checks_the_model_and_the_bot_token(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    good = await asyncio.to_thread(run_cli, "doctor", env=serve_env(data_dir, model, bot))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "bot @agenthub_test_bot answers getMe" in good.stdout
    assert model.requests, "the doctor made no model request"

    bad = serve_env(data_dir, model, bot, TELEGRAM_BOT_TOKEN="999:not-the-right-token")
    refused = await asyncio.to_thread(run_cli, "doctor", env=bad)
    assert refused.returncode == 1
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in refused.stdout
    assert "not-the-right-token" not in refused.stdout + refused.stderr

    model.enqueue(Fault(401, "invalid api key"))
    unauthorised = await asyncio.to_thread(run_cli, "doctor", env=serve_env(data_dir, model, bot))
    assert unauthorised.returncode == 1
    assert "[FAIL] model" in unauthorised.stdout and "OPENAI_API_KEY" in unauthorised.stdout
