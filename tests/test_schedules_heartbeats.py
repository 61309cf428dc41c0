"""Heartbeats: the nothing-to-report marker, delivery to the owner's last chat through the
real Telegram plugin, the idle pause, a busy session, the budget, bad configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.echo import EchoModel
from hub.heartbeats import Heartbeats, HeartbeatSpec, nothing_to_report
from hub.hub import Hub
from hub.usage import BudgetConfig, PriceTable
from hub.usage_meter import UsageMeter
from tests.telegram_rig import ScriptedModel, telegram_rig, until


@pytest.mark.parametrize(
    ("text", "nothing"),
    [
        ("HEARTBEAT_OK", True),
        ("  heartbeat_ok.\n", True),
        ("**HEARTBEAT_OK**", True),
        ("", True),
        ("HEARTBEAT_OK, but your train is late", False),
        ("Your train is late.", False),
    ],
)
def test_marker(text: str, nothing: bool) -> None:
    assert nothing_to_report(text) is nothing


def test_bad_heartbeat_config() -> None:
    with pytest.raises(ValidationError, match="telegram:<numeric chat id>"):
        HeartbeatSpec(deliver="mail:me")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        HeartbeatSpec(interval_minutes=0)


async def test_unknown_agent_is_refused(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    try:
        with pytest.raises(ValueError, match="no agent 'ops'"):
            Heartbeats(hub, [HeartbeatSpec(agent="ops")])
    finally:
        await hub.close()


async def test_reports_reach_the_last_chat_and_the_marker_is_dropped(data_dir: Path) -> None:
    """The scripted model echoes its prompt: a heartbeat prompt of `HEARTBEAT_OK` gets the
    marker back (dropped), another prompt gets a report (sent to the chat)."""
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        await rig.ask("hello", chat_id=777)  # the owner's last chat becomes lastRoute
        before = len(rig.api.texts_in(777))
        now = datetime.now(UTC)
        quiet = HeartbeatSpec(prompt="HEARTBEAT_OK")
        report = HeartbeatSpec(prompt="Reminder: the dentist at 3pm.")
        heartbeats = Heartbeats(
            rig.hub, [quiet, report], deliver=rig.manager.deliver, clock=lambda: now
        )
        await heartbeats.start()
        try:
            assert heartbeats.fire(quiet, now)
            await until(lambda: heartbeats.dropped == 1, "the quiet heartbeat to end")
            assert heartbeats.fire(report, now)
            await until(lambda: heartbeats.delivered == 1, "the report")
            await rig.settle()
            await until(lambda: len(rig.api.texts_in(777)) > before, "the report in the chat")
        finally:
            await heartbeats.stop()
        assert rig.api.texts_in(777)[before:] == ["Reminder: the dentist at 3pm."]
        assert "heartbeat" in heartbeats.probes()["heartbeats"]().detail
        # Heartbeats leave lastRoute alone.
        route = rig.hub.last_route.route
        assert route is not None and route.chat_id == "777"


async def test_idle_busy_and_budget_stop_heartbeats(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    now = [datetime(2026, 11, 28, 12, tzinfo=UTC)]
    meter = UsageMeter(hub, data_dir / "usage.jsonl", PriceTable(), BudgetConfig(daily_cost=0))
    spec = HeartbeatSpec(interval_minutes=30, pause_after_idle_hours=2)
    heartbeats = Heartbeats(hub, [spec], clock=lambda: now[0])
    await heartbeats.start()
    try:
        # Nobody ever wrote in the session: paused.
        assert heartbeats.paused(spec, now[0])
        assert not heartbeats.fire(spec, now[0])
        heartbeats._last_user[("main", "main")] = now[0] - timedelta(hours=1)
        assert not heartbeats.paused(spec, now[0])
        assert not heartbeats.paused(HeartbeatSpec(pause_after_idle_hours=0), now[0])
        # Due only after its interval.
        assert heartbeats.tick(now[0]) == []
        now[0] += timedelta(minutes=31)
        assert heartbeats.tick(now[0]) == [0]
        # The session is busy with that run: the next one waits.
        assert hub.default_agent.session_busy("main")
        assert not heartbeats.fire(spec, now[0])
        await hub.default_agent.wait_idle()
        # Three idle hours later: paused.
        assert not heartbeats.fire(spec, now[0] + timedelta(hours=3))
        # A budget of zero stops them.
        heartbeats.meter = meter
        await meter.start()
        assert not heartbeats.fire(spec, now[0])
    finally:
        await heartbeats.stop()
        await meter.stop()
        await hub.close()
