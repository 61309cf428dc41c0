"""A hub whose gateway is down: no leaked client sessions, and the outage logged once when it
starts, then at a falling rate, then once when it ends with its duration."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from gateway.config import GatewayConfig
from gateway.hub_link import HubLink
from gateway.outage import OutageLog
from gateway.server import GatewayServer
from hub.echo import EchoModel
from hub.hub import Hub
from tests.conftest import free_port
from tests.test_gateway_support import GATEWAY_TOKEN, eventually


def test_an_outage_is_logged_at_start_then_at_a_falling_rate_then_at_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    now = [0.0]
    outage = OutageLog(logging.getLogger("test.outage"), "gateway", clock=lambda: now[0])
    outage.recovered()  # nothing was down: nothing to say
    for second in range(0, 601):  # one failed attempt a second for ten minutes
        now[0] = float(second)
        outage.failed("connection refused")
    now[0] = 601.0
    outage.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "gateway unreachable: connection refused (retrying)"
    reminders = [line for line in lines if "still unreachable" in line]
    # after 1, 3, 7 minutes of it: each gap twice the one before
    assert [line.split(" after ")[1].split(" (")[0] for line in reminders] == [
        "60.0 s",
        "3.0 min",
        "7.0 min",
    ]
    assert lines[-1] == "gateway reachable again after 10.0 min (601 failed attempts)"
    assert len(lines) == 5
    assert not outage.down


async def test_a_hub_without_its_gateway_leaks_nothing_and_logs_the_outage_twice(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    hub = Hub(data_dir, lambda: EchoModel(pieces=3))
    link = HubLink(
        hub, f"http://127.0.0.1:{port}", GATEWAY_TOKEN, backoff_initial=0.01, backoff_max=0.02
    )
    await link.start()
    try:
        await eventually(lambda: link.connection.outage.failures >= 20)
        gc.collect()
        await asyncio.sleep(0)
        gateway = GatewayServer(
            GatewayConfig(port=port, gateway_token=SecretStr(GATEWAY_TOKEN)), hub.access, hub.health
        )
        await gateway.start()
        try:
            async with asyncio.timeout(10):
                await link.wait_linked()
        finally:
            # the link goes first: a gateway stopped under a live link starts a second outage
            await link.stop()
            await gateway.stop()
    finally:
        await link.stop()
        await hub.close()
    gc.collect()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "Unclosed" in m]
    assert len([m for m in messages if m.startswith("gateway unreachable")]) == 1
    assert not [m for m in messages if "link failed" in m]
    ended = [m for m in messages if m.startswith("gateway reachable again after")]
    assert len(ended) == 1
    assert "failed attempts" in ended[0]
