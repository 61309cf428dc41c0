"""Requests about schedules: `schedules.list`, `schedules.add`, `schedules.remove`,
`schedules.run` (owner only; see docs/schedules.md)."""

from __future__ import annotations

from pydantic import ValidationError

from hub.errors import CodedError, describe_validation
from hub.requests.table import Caller, NoParams, RequestHost, request
from hub.schedules import ScheduleName, ScheduleSpec
from hub.schedules_service import ScheduleEntry, Scheduler
from hub.wire import WireModel


class AddParams(WireModel):
    """A schedule (see `ScheduleSpec`); whether it can run is the method's to judge, so a
    schedule refused for its content answers `invalid_schedule` with the reason."""

    name: str
    prompt: str
    cron: str | None = None
    at: str | None = None
    agent: str | None = None
    session: str | None = None
    deliver: str | None = None
    timezone: str | None = None
    missed: str | None = None
    enabled: bool | None = None


class SchedulesAnswer(WireModel):
    schedules: list[ScheduleEntry]


class NameParams(WireModel):
    name: ScheduleName


class RemoveAnswer(WireModel):
    name: str
    removed: bool


class RunAnswer(WireModel):
    name: str
    run_id: str | None
    detail: str = ""


def _scheduler(host: RequestHost) -> Scheduler:
    return Scheduler.of(host.need_hub())


@request("schedules.list", NoParams, SchedulesAnswer, owner_only=True)
async def schedules_list(host: RequestHost, caller: Caller, params: NoParams) -> SchedulesAnswer:
    return SchedulesAnswer(schedules=_scheduler(host).entries())


@request("schedules.add", AddParams, ScheduleEntry, owner_only=True)
async def schedules_add(host: RequestHost, caller: Caller, params: AddParams) -> ScheduleEntry:
    try:
        spec = ScheduleSpec.model_validate(params.model_dump(exclude_none=True))
    except ValidationError as exc:
        raise CodedError(describe_validation(exc), "invalid_schedule") from None
    return await _scheduler(host).add(spec)


@request("schedules.remove", NameParams, RemoveAnswer, owner_only=True)
async def schedules_remove(host: RequestHost, caller: Caller, params: NameParams) -> RemoveAnswer:
    await _scheduler(host).remove(params.name)
    return RemoveAnswer(name=params.name, removed=True)


@request("schedules.run", NameParams, RunAnswer, owner_only=True)
async def schedules_run(host: RequestHost, caller: Caller, params: NameParams) -> RunAnswer:
    """Run a schedule now, whatever its timing (a manual run ignores the daily budget)."""
    scheduler = _scheduler(host)
    if params.name not in scheduler.specs():
        raise CodedError(f"no schedule {params.name!r}", "unknown_schedule")
    run_id = scheduler.fire(params.name, manual=True)
    last = scheduler.store.last.get(params.name)
    detail = last.detail if run_id is None and last is not None else ""
    return RunAnswer(name=params.name, run_id=run_id, detail=detail)
