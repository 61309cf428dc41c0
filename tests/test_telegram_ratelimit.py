"""The outbound rate limiter on a simulated clock: what it lets through, and when."""

from __future__ import annotations

import asyncio

import pytest

from channels.telegram.config import RateLimits
from channels.telegram.ratelimit import RateLimiter


class SimClock:
    """Time that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def limiter(clock: SimClock, **limits: float) -> RateLimiter:
    values = {"global_per_second": 1000.0, "chat_interval": 0.0, "group_per_minute": 1000.0}
    values.update(limits)
    return RateLimiter(RateLimits(**values), clock=clock, sleep=clock.sleep)


async def send(
    rate: RateLimiter, clock: SimClock, chat: str, *, took: float = 0.1, group: bool = False
) -> float:
    """One send that takes `took` seconds; returns when it started."""
    async with rate.slot(chat, group=group):
        started = clock.now
        clock.now += took
    return started


async def test_one_message_per_interval_in_a_chat_counted_from_the_answer() -> None:
    clock = SimClock()
    rate = limiter(clock, chat_interval=1.0)
    first = await send(rate, clock, "1", took=0.3)
    second = await send(rate, clock, "1", took=0.3)
    other = await send(rate, clock, "2")
    assert second - first == pytest.approx(0.3 + 1.0)
    assert other == pytest.approx(second + 0.3)  # another chat is not held back


async def test_global_window_counts_until_one_second_after_each_answer() -> None:
    clock = SimClock()
    rate = limiter(clock, global_per_second=3)
    starts = [await send(rate, clock, str(chat), took=0.1) for chat in range(4)]
    # Three sends end at +0.1, +0.2, +0.3; the fourth waits until the first is a second old.
    assert starts[:3] == pytest.approx([100.0, 100.1, 100.2])
    assert starts[3] == pytest.approx(100.1 + 1.0)


async def test_sends_in_flight_hold_their_slots() -> None:
    clock = SimClock()
    rate = limiter(clock, global_per_second=2)
    order: list[str] = []
    release = asyncio.Event()

    async def slow(chat: str) -> None:
        async with rate.slot(chat):
            order.append(f"start {chat}")
            await release.wait()

    first = asyncio.create_task(slow("a"))
    second = asyncio.create_task(slow("b"))
    await asyncio.sleep(0)
    third = asyncio.create_task(send(rate, clock, "c"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["start a", "start b"]
    assert not third.done()
    release.set()
    await asyncio.gather(first, second, third)
    assert rate.waited > 0


async def test_groups_get_twenty_a_minute() -> None:
    clock = SimClock()
    rate = limiter(clock, group_per_minute=20)
    starts = [await send(rate, clock, "-100", group=True, took=0.0) for _ in range(21)]
    assert starts[19] == 100.0
    assert starts[20] >= 160.0
    assert await send(rate, clock, "-200", group=True) >= starts[20]
