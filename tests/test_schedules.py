"""Schedules: specs (cron, at, minimum interval, time zones), the schedules file (torn lines),
the service on a fake clock (missed runs, clock jumps, budget), requests, ctl, and delivery to
Telegram through the real plugin and the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli import main
from app.compose import build
from app.config import ConfigError, load_settings
from app.control_handlers import ProcessContext, process_methods
from app.control_server import ControlServer
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.events import AgentStart
from hub.hub import Hub
from hub.origin import ChannelRoute
from hub.requests import Caller, RequestHost, dispatch
from hub.schedules import ScheduleError, ScheduleSpec, next_fire
from hub.schedules_service import Scheduler
from hub.schedules_store import LastRun, ScheduleStore
from hub.usage import BudgetConfig, PriceTable
from hub.usage_meter import UsageMeter
from tests.telegram_rig import ScriptedModel, telegram_rig, until

OWNER = Caller(surface="control", owner=True)
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def spec(name: str = "morning", **fields: object) -> ScheduleSpec:
    values: dict[str, object] = {"name": name, "cron": "0 9 * * *", "prompt": "brief me"}
    values["timezone"] = "UTC"
    return ScheduleSpec.model_validate(values | fields)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"cron": "* * * * * *"}, "fires every 1s; the minimum interval is 60s"),
        ({"cron": "*/30 * * * * *"}, "fires every 30s"),
        ({"cron": "0,30 0 9 * * *"}, "fires every 30s"),
        ({"cron": "0 0 30 2 *"}, "is not valid: Bad day-of-month"),
        ({"cron": "every day"}, "is not valid"),
        ({"cron": None}, "exactly one of 'cron'"),
        ({"at": "2026-12-24T18:00"}, "exactly one of 'cron'"),
        ({"cron": None, "at": "tomorrow"}, "expected an ISO date-time"),
        ({"deliver": "slack:1"}, "must be 'last', 'none' or 'telegram:<numeric chat id>'"),
        ({"deliver": "telegram:@bob"}, "telegram:<numeric chat id>"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"name": "../x"}, "String should match pattern"),
        ({"missed": "twice"}, "'run_once' or 'skip'"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(fields: dict[str, object], why: str) -> None:
    values: dict[str, object] = {"name": "morning", "cron": "0 9 * * *", "prompt": "brief me"}
    with pytest.raises(ValidationError, match=re.escape(why)):
        ScheduleSpec.model_validate(values | fields)


def test_one_minute_cron_is_the_minimum() -> None:
    assert spec(cron="* * * * *").cron == "* * * * *"


def test_cron_follows_the_time_zone_across_daylight_saving() -> None:
    berlin = spec(cron="0 9 * * *", timezone="Europe/Berlin")
    before = next_fire(berlin, datetime(2026, 3, 28, 12, tzinfo=UTC))
    after = next_fire(berlin, datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert before == datetime(2026, 3, 29, 7, tzinfo=UTC)  # 09:00 CEST
    assert after == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert next_fire(spec(cron="0 9 * * *"), datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 9, tzinfo=UTC
    )


def test_one_shot_fires_once() -> None:
    once = spec(cron=None, at="2026-12-24T18:00", timezone="America/New_York")
    assert next_fire(once, T0) == datetime(2026, 12, 24, 23, tzinfo=UTC)
    assert next_fire(once, datetime(2026, 12, 25, tzinfo=UTC)) is None


def test_store_skips_bad_lines_keeps_the_rest_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "schedules.jsonl"
    store = ScheduleStore(path)
    store.add(spec("a"))
    with path.open("ab") as handle:
        handle.write(b'{"op": "add", "schedule": {"name": "bad", "cron": "* * * * * *"}}\n')
        handle.write(b"garbage\n")
        handle.write(b'{"op": "add", "schedule": {"name": "torn", "cr')
    store.add(spec("b"))
    store.ran("a", LastRun(due=1, status="completed", detail="ok"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ScheduleStore(path)
    with caplog.at_level(logging.WARNING, "agenthub.schedules"):
        again.load()
    assert sorted(again.added) == ["a", "b"]
    assert again.last["a"].detail == "ok"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "skipped 3 unreadable line(s)" in warnings[0]


def test_store_compacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hub.schedules_store.COMPACT_AFTER", 10)
    path = tmp_path / "schedules.jsonl"
    store = ScheduleStore(path)
    store.add(spec("keep"))
    for due in range(30):
        store.ran("keep", LastRun(due=due, status="completed"))
    assert len(path.read_bytes().splitlines()) <= 11
    again = ScheduleStore(path)
    again.load()
    assert list(again.added) == ["keep"] and again.last["keep"].due == 29


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, EchoModel)
    yield hub
    await hub.close()


def scheduler_for(hub: Hub, clock: Clock, *specs: ScheduleSpec, **kwargs: object) -> Scheduler:
    return Scheduler(
        hub,
        hub.data_dir / "schedules.jsonl",
        list(specs),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def settled(scheduler: Scheduler, name: str) -> LastRun:
    def done() -> bool:
        last = scheduler.store.last.get(name)
        return last is not None and last.status != "running"

    await until(done, f"schedule {name!r} to finish")
    return scheduler.store.last[name]


async def test_fires_at_its_time_in_its_session_and_records_the_result(hub: Hub) -> None:
    clock = Clock(T0)
    starts: list[AgentStart] = []
    hub.default_agent.subscribe(lambda e: starts.append(e) if isinstance(e, AgentStart) else None)
    route = ChannelRoute(channel="telegram", chat_id="5", reply_to_message_id="77")
    hub.last_route.set(route)
    scheduler = scheduler_for(hub, clock, spec(session="briefings"))
    await scheduler.start()
    try:
        assert scheduler.tick(clock.now) == []
        clock.now = T0 + timedelta(hours=1)  # 09:00
        assert scheduler.tick(clock.now) == ["morning"]
        last = await settled(scheduler, "morning")
        assert scheduler.tick(clock.now) == []  # never twice for one time
    finally:
        await scheduler.stop()
    assert (last.status, last.detail) == ("completed", "brief me")
    (start,) = starts
    assert start.session_key == "briefings"
    assert start.origin.source == "schedule"
    # Delivered to lastRoute, as a new message (not a reply to the owner's old one).
    assert start.origin.route == route.model_copy(update={"reply_to_message_id": None})
    assert hub.last_route.route == route  # a schedule never moves lastRoute
    entry = scheduler.entry("morning")
    assert entry.next_run == int(datetime(2026, 11, 29, 9, tzinfo=UTC).timestamp() * 1000)


async def test_missed_runs_run_once_or_skip(hub: Hub) -> None:
    path = hub.data_dir / "schedules.jsonl"
    store = ScheduleStore(path)
    three_days_ago = int((T0 - timedelta(days=3)).timestamp() * 1000)
    store.ran("catchup", LastRun(due=three_days_ago, status="completed"))
    store.ran("skipper", LastRun(due=three_days_ago, status="completed"))
    clock = Clock(T0)
    scheduler = scheduler_for(
        hub, clock, spec("catchup"), spec("skipper", missed="skip", cron="30 9 * * *")
    )
    await scheduler.start()
    try:
        # Three fires were missed while the hub was down: one run, and one skip record.
        assert sorted(scheduler.tick(clock.now)) == ["catchup", "skipper"]
        assert (await settled(scheduler, "catchup")).status == "completed"
        assert scheduler.store.last["skipper"].status == "skipped"
        assert scheduler.tick(clock.now) == []
    finally:
        await scheduler.stop()
    assert hub.default_agent.session.header.session_key in (None, "main")
    runs = [e for e in hub.default_agent.session.entries if e.type == "run"]
    assert len(runs) == 1


async def test_a_run_going_when_the_hub_stopped_shows_interrupted(hub: Hub) -> None:
    store = ScheduleStore(hub.data_dir / "schedules.jsonl")
    store.ran("morning", LastRun(due=1, run_id="r-1", status="running"))
    scheduler = scheduler_for(hub, Clock(T0), spec())
    await scheduler.start()
    try:
        assert scheduler.store.last["morning"].status == "interrupted"
    finally:
        await scheduler.stop()
    again = ScheduleStore(hub.data_dir / "schedules.jsonl")
    again.load()
    assert again.last["morning"].status == "interrupted"


async def test_clock_jumps(hub: Hub) -> None:
    clock = Clock(T0)
    scheduler = scheduler_for(hub, clock, spec("hourly", cron="0 * * * *"))
    await scheduler.start()
    try:
        clock.now = T0 + timedelta(hours=1)
        assert scheduler.tick(clock.now) == ["hourly"]
        await settled(scheduler, "hourly")
        # Backwards by two hours: 08:00 and 09:00 come again on the wall clock, no repeat.
        for hours in (-1, 0, 1, 1.5):
            assert scheduler.tick(T0 + timedelta(hours=hours)) == []
        # Forwards by five hours (a suspended laptop): one run, not five.
        clock.now = T0 + timedelta(hours=7)
        assert scheduler.tick(clock.now) == ["hourly"]
        assert scheduler.tick(clock.now) == []
        await settled(scheduler, "hourly")
    finally:
        await scheduler.stop()


async def test_budget_spent_skips_but_a_manual_run_goes(hub: Hub) -> None:
    meter = UsageMeter(
        hub, hub.data_dir / "usage.jsonl", PriceTable(), BudgetConfig(daily_tokens=0)
    )
    notices: list[str] = []
    meter.notify = notices.append
    await meter.start()
    clock = Clock(T0 + timedelta(hours=1))
    scheduler = scheduler_for(hub, Clock(T0), spec(), meter=meter)
    await scheduler.start()
    try:
        assert scheduler.tick(clock.now) == ["morning"]
        assert scheduler.store.last["morning"].status == "skipped"
        assert scheduler.store.last["morning"].detail == "budget spent"
        assert len(notices) == 1
        assert scheduler.fire("morning", manual=True) is not None
        assert (await settled(scheduler, "morning")).status == "completed"
    finally:
        await scheduler.stop()
        await meter.stop()


def test_unknown_agent_channel_or_chat_is_refused(hub: Hub) -> None:
    clock = Clock(T0)
    with pytest.raises(ScheduleError, match="no agent 'ops'"):
        scheduler_for(hub, clock, spec(agent="ops"))
    with pytest.raises(ScheduleError, match="telegram is not configured"):
        scheduler_for(hub, clock, spec(deliver="telegram:5"))
    with pytest.raises(ScheduleError, match="chat 5 is not a known telegram user"):
        scheduler_for(
            hub,
            clock,
            spec(deliver="telegram:5"),
            channels=frozenset({"telegram"}),
            chat_known=lambda channel, chat: False,
        )


async def test_requests_add_list_run_remove(hub: Hub) -> None:
    clock = Clock(T0)
    scheduler = scheduler_for(hub, clock, spec("from-config"))
    await scheduler.start()
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    try:

        async def add(**fields: object) -> dict[str, object]:
            answer = await dispatch(host, OWNER, "schedules.add", json.loads(json.dumps(fields)))
            result: dict[str, object] = json.loads(answer.model_dump_json())
            return result

        added = await add(name="weekly", cron="0 8 * * mon", prompt="plan", timezone="UTC")
        assert added["defined"] == "ctl"
        with pytest.raises(CodedError, match="exists already"):
            await add(name="weekly", cron="0 8 * * *", prompt="x")
        with pytest.raises(CodedError, match="minimum interval"):
            await add(name="x", cron="* * * * * *", prompt="x")
        with pytest.raises(CodedError, match="in the past"):
            await add(name="x", at="2020-01-01T00:00Z", prompt="x")
        with pytest.raises(CodedError, match="no agent 'nobody'"):
            await add(name="x", cron="0 8 * * *", prompt="x", agent="nobody")
        listed = json.loads((await dispatch(host, OWNER, "schedules.list", {})).model_dump_json())
        names = [(s["schedule"]["name"], s["defined"]) for s in listed["schedules"]]
        assert names == [("from-config", "config"), ("weekly", "ctl")]
        assert listed["schedules"][1]["nextRun"] is not None
        ran = json.loads(
            (await dispatch(host, OWNER, "schedules.run", {"name": "weekly"})).model_dump_json()
        )
        assert ran["runId"].startswith("r-")
        assert (await settled(scheduler, "weekly")).status == "completed"
        with pytest.raises(CodedError, match=r"defined in config\.toml"):
            await dispatch(host, OWNER, "schedules.remove", {"name": "from-config"})
        await dispatch(host, OWNER, "schedules.remove", {"name": "weekly"})
        with pytest.raises(CodedError, match="no schedule 'weekly'"):
            await dispatch(host, OWNER, "schedules.run", {"name": "weekly"})
        with pytest.raises(CodedError, match="owner"):
            await dispatch(host, Caller(surface="web", device_id="d"), "schedules.list", {})
    finally:
        await scheduler.stop()
    # Restart: what was added and removed is remembered.
    again = scheduler_for(hub, clock)
    await again.start()
    try:
        assert list(again.specs()) == []
    finally:
        await again.stop()


async def test_ctl_schedules(hub: Hub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scheduler = scheduler_for(hub, Clock(T0))
    await scheduler.start()
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    server = ControlServer(
        data_dir / "ctl.sock",
        host,
        process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None)),
    )
    await server.start()
    common = ["--data-dir", str(data_dir)]

    async def ctl(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["ctl", "schedules", *args, *common])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    try:
        code, out, _ = await ctl(
            "add",
            "standup",
            "--cron",
            "0 9 * * mon-fri",
            "--prompt",
            "what's up?",
            "--timezone",
            "Europe/Berlin",
            "--deliver",
            "none",
        )
        assert code == 0 and out.startswith("added standup")
        code, out, _ = await ctl("list")
        assert code == 0 and "standup" in out and "never ran" in out
        code, _, err = await ctl("add", "fast", "--cron", "* * * * * *", "--prompt", "x")
        assert code == 1 and "minimum interval is 60s" in err
        code, out, _ = await ctl("run", "standup")
        assert code == 0 and "started run r-" in out
        await settled(scheduler, "standup")
        code, out, _ = await ctl("list", "--json")
        assert json.loads(out)["result"]["schedules"][0]["lastRun"]["status"] == "completed"
        code, out, _ = await ctl("remove", "standup")
        assert code == 0 and "removed standup" in out
    finally:
        await server.stop()
        await scheduler.stop()


async def test_delivers_to_a_telegram_chat(data_dir: Path) -> None:
    """deliver = telegram:<chat>: the real plugin sends the reply to that chat."""
    async with telegram_rig(data_dir, ScriptedModel("Good morning! Three things today.")) as rig:
        scheduler = Scheduler(
            rig.hub,
            data_dir / "schedules.jsonl",
            [spec(deliver="telegram:4242")],
            channels=frozenset({"telegram"}),
            clock=Clock(T0),
        )
        await scheduler.start()
        try:
            scheduler.fire("morning")
            await settled(scheduler, "morning")
            await rig.settle()
            await until(lambda: bool(rig.api.texts_in(4242)), "the scheduled reply")
        finally:
            await scheduler.stop()
        assert rig.api.texts_in(4242) == ["Good morning! Three things today."]
        assert rig.hub.last_route.route is None


async def test_service_loop_fires_on_the_wall_clock(hub: Hub) -> None:
    """The real loop (not tick()): a one-shot due a moment ago fires and is recorded."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
    scheduler = Scheduler(hub, hub.data_dir / "schedules.jsonl", [], clock=now)
    await scheduler.start()
    try:
        soon = (now() + timedelta(seconds=1)).isoformat()
        await scheduler.add(spec("soon", cron=None, at=soon))
        last = await settled(scheduler, "soon")
    finally:
        await scheduler.stop()
    assert last.status == "completed"
    assert scheduler.entry("soon").next_run is None


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(text)
    return config


def test_config_schedules_heartbeats_and_recovery_load(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[schedules]]\nname = "morning"\ncron = "0 8 * * *"\nprompt = "hi"\n'
        'timezone = "Europe/Berlin"\n\n[[heartbeats]]\ninterval_minutes = 60\n\n'
        '[recovery]\nrerun = "never"\n\n[budget]\ndaily_tokens = 1000\n\n'
        '[prices."openai:gpt-x"]\ninput = 1\noutput = 2\n',
    )
    settings = load_settings(config, data_dir=str(tmp_path / "d"))
    assert settings.schedules[0].name == "morning"
    assert settings.heartbeats[0].interval_minutes == 60
    assert settings.recovery.rerun == "never"
    assert settings.budget.daily_tokens == 1000
    assert settings.prices["openai:gpt-x"].output == 2


@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('[[schedules]]\nname = "x"\ncron = "* * * * * *"\nprompt = "p"\n', "minimum interval"),
        ('[[schedules]]\nname = "x"\ncron = "0 0 30 2 *"\nprompt = "p"\n', "Bad day-of-month"),
        ("[budget]\ndaily_cost = -1\n", "greater than or equal to 0"),
        ('[recovery]\nrerun = "sometimes"\n', "'safe' or 'never'"),
    ],
)
def test_bad_config_is_refused_naming_the_reason(tmp_path: Path, toml: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)):
        load_settings(write_config(tmp_path, toml), data_dir=str(tmp_path / "d"))


def test_a_schedule_naming_an_unknown_agent_or_chat_stops_start_up(tmp_path: Path) -> None:
    for toml, why in [
        (
            '[[schedules]]\nname = "x"\ncron = "0 8 * * *"\nprompt = "p"\nagent = "ops"\n',
            "schedules: schedule 'x': no agent 'ops'",
        ),
        (
            '[[schedules]]\nname = "x"\ncron = "0 8 * * *"\nprompt = "p"\ndeliver = "telegram:5"\n',
            "telegram is not configured",
        ),
        ('[[heartbeats]]\nagent = "ops"\n', "heartbeats: heartbeat: no agent 'ops'"),
    ]:
        settings = load_settings(write_config(tmp_path, toml), data_dir=str(tmp_path / "d"))
        with pytest.raises(ConfigError, match=re.escape(why)):
            build(settings, "serve")
