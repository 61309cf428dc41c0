"""The OpenAI-compatible endpoint end to end: `agenthub ctl tokens new` makes a key for a
running `agenthub serve` (and for `agenthub gateway` + `agenthub hub` as two processes), the
official `openai` client streams from it, and `ctl tokens revoke` shuts the key out."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import openai
import pytest

from tests.cli_process import Served, clean_env, run_cli, split_processes
from tests.conftest import free_port

pytestmark = pytest.mark.slow

TOKEN = "api-split-test-gateway-token-51c2"


def new_token(env: dict[str, str], label: str) -> tuple[str, str]:
    made = run_cli("ctl", "tokens", "new", "--label", label, env=env)
    assert made.returncode == 0, made.stderr
    found = re.search(
        r"token (api-\w+) \(" + re.escape(label) + r"\), shown this once:\n(\S+)", made.stdout
    )
    assert found, made.stdout
    return found.group(1), found.group(2)


async def chat(base_url: str, token: str, text: str) -> tuple[str, str]:
    """The reply streamed and not, through the official client."""
    api = openai.AsyncOpenAI(api_key=token, base_url=base_url, max_retries=0)
    whole = await api.chat.completions.create(
        model="main", messages=[{"role": "user", "content": text}]
    )
    stream = await api.chat.completions.create(
        model="main", messages=[{"role": "user", "content": text}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    return whole.choices[0].message.content or "", "".join(pieces)


async def test_tokens_and_completions_against_agenthub_serve(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path / "data", AGENTHUB_PORT=str(port))
    served = Served("serve", env)
    try:
        await asyncio.to_thread(served.wait_for_output, r"control: agenthub ctl status")
        device_id, token = await asyncio.to_thread(new_token, env, "my editor")
        base = f"http://127.0.0.1:{port}/v1"
        assert await chat(base, token, "hello over the API") == ("hello over the API",) * 2

        listed = await asyncio.to_thread(run_cli, "ctl", "tokens", "list", env=env)
        assert device_id in listed.stdout and "my editor" in listed.stdout
        assert token not in listed.stdout
        assert token not in (tmp_path / "data" / "access.json").read_text()
        main = await asyncio.to_thread(
            run_cli, "ctl", "history", "--agent", "main", "--json", env=env
        )
        assert json.loads(main.stdout)["result"]["entries"] == []

        revoked = await asyncio.to_thread(run_cli, "ctl", "tokens", "revoke", device_id, env=env)
        assert revoked.returncode == 0 and f"revoked {device_id}" in revoked.stdout
        with pytest.raises(openai.AuthenticationError):
            await chat(base, token, "after the revoke")
        again = await asyncio.to_thread(run_cli, "ctl", "tokens", "revoke", device_id, env=env)
        assert again.returncode == 1 and "tokens list" in again.stderr
        assert token not in served.logs()
    finally:
        served.stop()


async def test_completions_through_a_separate_gateway_process(tmp_path: Path) -> None:
    async with split_processes(tmp_path, TOKEN) as split:
        _, token = await asyncio.to_thread(new_token, split.gateway_env, "split")
        base = f"{split.url}/v1"
        assert await chat(base, token, "across two processes") == ("across two processes",) * 2
