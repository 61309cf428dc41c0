"""`agenthub gateway` and `agenthub hub` as two real processes: a client paired with a code
from `ctl pair new` on the gateway talks to the agent on the hub, through the gateway."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest

from gateway.protocol import PairResult
from tests.cli_process import run_cli, split_processes, wait_healthy
from tests.test_gateway_support import connect_device, is_stream, stream_of

pytestmark = pytest.mark.slow

TOKEN = "split-test-gateway-token-3e8f"


async def test_gateway_and_hub_processes(tmp_path: Path) -> None:
    async with split_processes(tmp_path, TOKEN) as split:
        gateway, hub, url = split.gateway, split.hub, split.url
        gateway_env, hub_env = split.gateway_env, split.hub_env
        health = await asyncio.to_thread(wait_healthy, f"{url}/healthz")
        assert health["status"] == "ok"

        pair = await asyncio.to_thread(run_cli, "ctl", "pair", "new", env=gateway_env)
        found = re.search(r"pairing code: (\w+)", pair.stdout)
        assert found, pair.stdout + pair.stderr
        pairing = await connect_device(url, {"role": "pair"})
        result = PairResult.model_validate(
            await pairing.client.call("pair", {"code": found.group(1), "label": "split test"})
        )
        await pairing.close()
        assert result.ok and result.device_id and result.token
        client = await connect_device(
            url, {"role": "client", "deviceId": result.device_id, "token": result.token}
        )
        await client.message("across two processes")
        end = stream_of(await client.next_frame(is_stream("message_end")))
        assert end.event["text"] == "across two processes"
        await client.close()

        hub_status = await asyncio.to_thread(run_cli, "ctl", "status", env=hub_env)
        assert "hub_link" in hub_status.stdout and "linked to" in hub_status.stdout
        for served in (hub, gateway):
            served.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(served.wait_exit, 15) == 0
        assert TOKEN not in gateway.logs() + hub.logs() + gateway.output() + hub.output()
