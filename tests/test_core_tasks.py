"""The background-task funnel: tasks kept, failures logged once, close cancels and waits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.tasks import TaskFunnel


async def test_failure_is_logged_once_with_the_funnel_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    funnel = TaskFunnel("demo")

    async def boom() -> None:
        raise RuntimeError("kaput")

    with caplog.at_level(logging.ERROR, logger="agenthub.tasks"):
        task = funnel.spawn(boom(), name="boom")
        await asyncio.wait([task])
        await asyncio.sleep(0)
    records = [r for r in caplog.records if "kaput" in str(r.exc_info)]
    assert len(records) == 1
    assert "demo: background task boom failed" in records[0].getMessage()
    assert len(funnel) == 0


async def test_close_cancels_and_waits() -> None:
    funnel = TaskFunnel("demo")
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    funnel.spawn(forever())
    await asyncio.sleep(0)
    assert len(funnel) == 1
    await funnel.close()
    assert stopped.is_set()
    assert len(funnel) == 0
