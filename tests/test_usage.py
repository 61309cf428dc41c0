"""Usage and cost: the price table, usage.jsonl (torn lines), the meter service, the budget,
the `usage` request and `agenthub ctl usage` through the control socket."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from app.cli import main
from app.control_handlers import ProcessContext, process_methods
from app.control_server import ControlServer
from hub.echo import EchoModel
from hub.errors import CodedError, InvalidParamsError
from hub.events import AgentEnd, AgentEvent, AgentStart
from hub.hub import AgentSetup, Hub
from hub.model import ModelPart, ModelTurn, TextDelta, UsageReport
from hub.origin import Origin, Source
from hub.providers import ModelConfig, build_model
from hub.requests import Caller, RequestHost, dispatch
from hub.usage import BudgetConfig, Price, PriceTable, UsageFile, UsageRecord, parse_since
from hub.usage_meter import UsageMeter
from tests.fake_openai import FakeOpenAI, Reply
from tests.telegram_rig import until

OWNER = Caller(surface="control", owner=True)


def record(source: Source = "user", **fields: object) -> UsageRecord:
    base: dict[str, object] = {
        "agent_id": "main",
        "session_key": "main",
        "run_id": "r-1",
        "source": source,
        "model": "echo",
        "status": "completed",
        "input_tokens": 10,
        "output_tokens": 5,
    }
    return UsageRecord.model_validate(base | fields)


def test_price_table() -> None:
    table = PriceTable(
        {
            "openai:gpt-4o-mini": Price(input=0.15, output=0.60, cached=0.075),
            "anthropic:*": Price(input=3, output=15),
        }
    )
    # 1M input of which 400k cached, 100k output.
    assert table.cost("openai:gpt-4o-mini", 1_000_000, 100_000, 400_000) == pytest.approx(
        0.6 * 0.15 + 0.4 * 0.075 + 0.1 * 0.60
    )
    assert table.cost("anthropic:claude-x", 1_000_000, 0, 0) == pytest.approx(3.0)
    # Without a cached price, cached tokens cost the input price; echo and local are free.
    assert table.cost("anthropic:claude-x", 1_000_000, 0, 500_000) == pytest.approx(3.0)
    assert table.cost("echo", 10**6, 10**6, 0) == 0
    assert table.cost("local:/m.gguf", 10**6, 10**6, 0) == 0
    assert table.cost("openai:other", 10, 10, 0) is None


def test_usage_file_skips_bad_lines_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "usage.jsonl"
    ledger = UsageFile(path)
    ledger.append(record(run_id="r-1"))
    with path.open("ab") as handle:
        handle.write(b"{not json}\n")
        handle.write(b'{"agentId": "main", "runId": "r-torn", "inpu')  # torn by a crash
    ledger.append(record(run_id="r-2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with caplog.at_level(logging.WARNING, "agenthub.usage"):
        runs = [r.run_id for r in ledger.read()]
    assert runs == ["r-1", "r-2"]
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 unreadable" in warnings[0].getMessage()


def test_parse_since() -> None:
    assert parse_since("2026-11-28T00:00:00+00:00") == 1_795_824_000_000
    with pytest.raises(ValueError, match="ISO date"):
        parse_since("yesterday")
    now = 1_795_824_000.0
    assert parse_since("30m", now) == (now - 1800) * 1000
    assert parse_since("24h", now) == parse_since("1d", now) == (now - 86400) * 1000
    assert parse_since(" 2W ", now) == (now - 14 * 86400) * 1000
    with pytest.raises(ValueError, match="an age like 7d"):
        parse_since("7y", now)


def test_budget_zone_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BudgetConfig(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        BudgetConfig(daily_tokens=-1)


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, EchoModel)
    yield hub
    await hub.close()


async def finished(hub: Hub, text: str, origin: Origin) -> AgentEnd:
    done: asyncio.Future[AgentEnd] = asyncio.get_running_loop().create_future()
    run_id = ""

    def on_event(event: object) -> None:
        if isinstance(event, AgentEnd) and event.run_id == run_id and not done.done():
            done.set_result(event)

    unsubscribe = hub.default_agent.subscribe(on_event)
    try:
        run_id = hub.submit("main", text, origin)
        async with asyncio.timeout(20):
            return await done
    finally:
        unsubscribe()


async def wait_records(path: Path, count: int) -> list[UsageRecord]:
    await until(lambda: len(list(UsageFile(path).read())) >= count, f"{count} usage records")
    return list(UsageFile(path).read())


async def test_meter_records_every_run_with_its_source(hub: Hub, data_dir: Path) -> None:
    path = data_dir / "usage.jsonl"
    meter = UsageMeter(hub, path, PriceTable({"echo": Price(input=1_000_000, output=0)}))
    await meter.start()
    try:
        await finished(hub, "one two three", Origin(surface="desktop"))
        await finished(hub, "four five", Origin(surface="desktop", source="schedule"))
        records = await wait_records(path, 2)
    finally:
        await meter.stop()
    assert [(r.source, r.input_tokens, r.model) for r in records] == [
        ("user", 3, "echo"),
        ("schedule", 2, "echo"),
    ]
    # The price table said $1 per input token for echo.
    assert [r.cost for r in records] == [3.0, 2.0]
    # Only the schedule's run counts against the budget.
    assert meter.spent_today().tokens == 4


class HeldModel:
    """Answers "ok" (5 tokens in, 1 out) once `release` is set."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.release = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        await self.release.wait()
        yield TextDelta("ok")
        yield UsageReport(5, 1)


async def test_usage_names_the_model_that_answered_not_a_switch_during_the_run(
    data_dir: Path,
) -> None:
    alpha, beta = HeldModel("alpha"), HeldModel("beta")
    hub = Hub(data_dir, agents=[AgentSetup("main", "main", alpha, None, (beta,))])
    path = data_dir / "usage.jsonl"
    meter = UsageMeter(hub, path, PriceTable({}))
    await meter.start()
    starts: list[AgentStart] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, AgentStart):
            starts.append(event)

    unsubscribe = hub.default_agent.subscribe(on_event)
    try:
        hub.submit("main", "hello", Origin(surface="desktop"))
        await until(lambda: bool(starts), "the run's agent_start")
        # /model beta while alpha is answering: it holds from the next turn on.
        hub.default_agent.models.use(starts[0].session_key, "beta")
        alpha.release.set()
        records = await wait_records(path, 1)
    finally:
        unsubscribe()
        await meter.stop()
        await hub.close()
    assert starts[0].model == "alpha"
    assert [(r.model, r.input_tokens) for r in records] == [("alpha", 5)]


async def test_budget_stops_automatic_runs_and_says_so_once(hub: Hub, data_dir: Path) -> None:
    meter = UsageMeter(
        hub, data_dir / "usage.jsonl", PriceTable(), BudgetConfig(daily_tokens=3, timezone="UTC")
    )
    notices: list[str] = []
    meter.notify = notices.append
    await meter.start()
    try:
        assert meter.allow("schedule 'x'")
        # A person's turns never count, however large.
        await finished(hub, "a b c d e f g h", Origin(surface="desktop"))
        await asyncio.sleep(0)
        assert meter.allow("schedule 'x'")
        await finished(hub, "a b", Origin(surface="desktop", source="heartbeat"))
        await wait_records(data_dir / "usage.jsonl", 2)
        assert meter.exhausted() == "4 of 3 tokens"
        assert not meter.allow("schedule 'x'")
        assert not meter.allow("heartbeat of main")
    finally:
        await meter.stop()
    assert len(notices) == 1
    assert "budget" in notices[0] and "4 of 3 tokens" in notices[0]
    assert "paused" in meter.probes()["budget"]().detail


async def test_budget_day_rolls_over_and_restart_remembers_today(hub: Hub, data_dir: Path) -> None:
    path = data_dir / "usage.jsonl"
    now = [parse_since("2026-11-28T12:00:00+00:00") / 1000]
    budget = BudgetConfig(daily_tokens=10, timezone="UTC")
    UsageFile(path).append(record("schedule", ts=int(now[0] * 1000), input_tokens=20))
    UsageFile(path).append(record("schedule", ts=int(now[0] * 1000) - 86_400_000))
    meter = UsageMeter(hub, path, PriceTable(), budget, clock=lambda: now[0])
    await meter.start()
    try:
        assert meter.spent_today().tokens == 25  # yesterday's run is not today's
        assert not meter.allow("schedule")
        now[0] += 86_400  # the next day
        assert meter.allow("schedule")
    finally:
        await meter.stop()


async def test_zero_budget_allows_nothing(
    hub: Hub, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meter = UsageMeter(hub, data_dir / "u.jsonl", PriceTable(), BudgetConfig(daily_cost=0))
    with caplog.at_level(logging.WARNING, "agenthub.usage"):
        await meter.start()
    try:
        assert "budget is 0" in caplog.text
        assert not meter.allow("heartbeat")
    finally:
        await meter.stop()


async def test_usage_request_totals(hub: Hub, data_dir: Path) -> None:
    ledger = UsageFile(data_dir / "usage.jsonl")
    day = parse_since("2026-11-28T00:00:00+00:00")
    ledger.append(record(ts=day - 1, input_tokens=1000))
    ledger.append(record(ts=day + 1, cost=0.5))
    ledger.append(record("schedule", ts=day + 2, session_key="tg:1", cost=0.25))
    ledger.append(record("heartbeat", ts=day + 3, agent_id="ops", model="openai:x"))
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    report = await dispatch(host, OWNER, "usage", {"since": "2026-11-28T00:00:00+00:00"})
    data = json.loads(report.model_dump_json())
    assert data["total"]["runs"] == 3
    assert data["total"]["inputTokens"] == 30
    assert data["total"]["cost"] == 0.75
    assert data["total"]["unpriced"] == 1
    assert set(data["agents"]) == {"main", "ops"}
    assert {(s["agentId"], s["sessionKey"]): s["runs"] for s in data["sessions"]} == {
        ("main", "main"): 1,
        ("main", "tg:1"): 1,
        ("ops", "main"): 1,
    }
    assert {k: v["runs"] for k, v in data["sources"].items()} == {
        "user": 1,
        "schedule": 1,
        "heartbeat": 1,
    }
    everything = await dispatch(host, OWNER, "usage", {})
    assert json.loads(everything.model_dump_json())["total"]["runs"] == 4
    narrowed = await dispatch(host, OWNER, "usage", {"agentId": "ops"})
    assert json.loads(narrowed.model_dump_json())["total"]["runs"] == 1
    with pytest.raises(InvalidParamsError, match="since: expected an ISO date"):
        await dispatch(host, OWNER, "usage", {"since": "last week"})
    with pytest.raises(CodedError, match="owner"):
        await dispatch(host, Caller(surface="web", device_id="d"), "usage", {})


async def test_cached_tokens_and_cost_from_a_real_provider(data_dir: Path) -> None:
    """openai SDK -> pydantic-ai -> run entry and usage record, with cached prompt tokens."""
    async with FakeOpenAI() as server:
        server.enqueue(Reply(prompt_tokens=2000, completion_tokens=100, cached_tokens=1500))
        config = ModelConfig.model_validate(
            {"spec": "openai:gpt-test", "openai_base_url": server.base_url, "openai_api_key": "k"}
        )
        model = build_model(config)
        hub = Hub(data_dir, lambda: model)
        prices = PriceTable({"openai:gpt-test": Price(input=1.0, output=2.0, cached=0.1)})
        meter = UsageMeter(hub, data_dir / "usage.jsonl", prices)
        await meter.start()
        try:
            end = await finished(hub, "hello", Origin(surface="desktop"))
            (usage,) = await wait_records(data_dir / "usage.jsonl", 1)
        finally:
            await meter.stop()
            await hub.close()
    assert (end.input_tokens, end.output_tokens, end.cached_tokens) == (2000, 100, 1500)
    run_entry = hub.default_agent.session.entries[-1]
    assert run_entry.type == "run"
    assert run_entry.cached_tokens == 1500
    assert usage.cost == pytest.approx((500 * 1.0 + 1500 * 0.1 + 100 * 2.0) / 1_000_000)


async def test_ctl_usage_prints_totals(
    hub: Hub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    UsageFile(data_dir / "usage.jsonl").append(record("schedule", cost=0.125))
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    server = ControlServer(
        data_dir / "ctl.sock",
        host,
        process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None)),
    )
    await server.start()
    try:
        code = await asyncio.to_thread(main, ["ctl", "usage", "--data-dir", str(data_dir)])
        text = capsys.readouterr().out
        assert code == 0
        assert "by source:" in text and "schedule" in text and "$0.1250" in text
        code = await asyncio.to_thread(
            main, ["ctl", "usage", "--since", "2999-01-01", "--json", "--data-dir", str(data_dir)]
        )
        answer = json.loads(capsys.readouterr().out)
        assert code == 0 and answer["result"]["total"]["runs"] == 0
        code = await asyncio.to_thread(
            main, ["ctl", "usage", "--since", "soon", "--data-dir", str(data_dir)]
        )
        assert code == 1
        error = capsys.readouterr().err
        assert "since: expected an ISO date" in error and "since: since" not in error
    finally:
        await server.stop()
