"""`agenthub ctl …`: ask the running hub over its control socket; human output or `--json`."""

from __future__ import annotations

import json
import secrets
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, JsonValue

from app.control_protocol import (
    MAX_LINE_BYTES,
    AgentSession,
    CtlRequest,
    CtlResponse,
    SessionsResult,
    StatusResult,
)
from hub.approvals import ApprovalAnswer, PendingApproval
from hub.bindings import Binding
from hub.conversations import DeletedSession
from hub.hub import AgentInfo
from hub.requests.access import (
    DecisionAnswer,
    DevicesAnswer,
    PairListAnswer,
    PairNewAnswer,
    RevokeAnswer,
)
from hub.requests.agents import AgentsAnswer, BindingsAnswer, HistoryAnswer
from hub.requests.approvals import ApprovalsAnswer
from hub.requests.memory import MemoryAnswer
from hub.requests.schedules import RemoveAnswer, RunAnswer, SchedulesAnswer
from hub.requests.tokens import NewToken, TokenRevoked, TokensAnswer
from hub.schedules_service import ScheduleEntry
from hub.sessions import HistoryEntry, MessageEntry
from hub.usage import Totals, UsageReport

EXIT_OK, EXIT_FAILED = 0, 1


class NotRunningError(Exception):
    pass


def not_running(path: Path) -> NotRunningError:
    return NotRunningError(
        f"no agenthub is running with data directory {path.parent} "
        f"(no answer on {path}); start one with `agenthub serve`"
    )


def call(
    path: Path, method: str, params: dict[str, JsonValue], *, timeout: float = 15.0
) -> CtlResponse:
    """One request over the control socket. Raises NotRunningError when no hub answers."""
    request = CtlRequest(id=secrets.token_hex(4), method=method, params=params)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise not_running(path) from exc
        sock.sendall(request.model_dump_json().encode() + b"\n")
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > MAX_LINE_BYTES * 64:
                break
    finally:
        sock.close()
    return CtlResponse.model_validate_json(buffer)


def run(path: Path, method: str, params: dict[str, JsonValue], *, as_json: bool) -> int:
    """Run one ctl command and print its outcome; returns the exit status."""
    try:
        response = call(path, method, params)
    except NotRunningError as exc:
        print(f"agenthub ctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"agenthub ctl: the hub did not answer properly: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(response.model_dump_json(indent=2))
        return EXIT_OK if response.ok else EXIT_FAILED
    if not response.ok:
        error = response.error
        print(f"agenthub ctl: {error.message if error else 'request failed'}", file=sys.stderr)
        return EXIT_FAILED
    print(render(method, response.result))
    return EXIT_OK


_Model = TypeVar("_Model", bound=BaseModel)


def _load(model: type[_Model], value: JsonValue) -> _Model:
    return model.model_validate(value)


def render(method: str, result: JsonValue) -> str:
    """Human-readable text for a successful result."""
    if method == "process.status":
        return _status(_load(StatusResult, result))
    if method == "agents.list":
        agents = _load(AgentsAnswer, result).agents
        return "\n".join(_agent_line(a) for a in agents) or "no agents"
    if method == "bindings.list":
        routing = _load(BindingsAnswer, result)
        rules = [_binding_line(n, b) for n, b in enumerate(routing.bindings, 1)]
        return "\n".join([*rules, f"otherwise: agent {routing.default_agent}"])
    if method == "process.sessions":
        sessions = _load(SessionsResult, result).sessions
        return "\n".join(_session_line(s) for s in sessions) or "no sessions"
    if method == "sessions.delete":
        return _deleted(_load(DeletedSession, result))
    if method in ("memory.list", "memory.forget"):
        return _memory(_load(MemoryAnswer, result))
    if method == "history":
        entries = _load(HistoryAnswer, result).entries
        return "\n".join(_history_line(e) for e in entries) or "no messages"
    if method == "devices.list":
        devices = _load(DevicesAnswer, result).devices
        return (
            "\n".join(
                f"{d.device_id:<20} {'online ' if d.connected else 'offline'}  {d.label}"
                + ("  (guest)" if d.guest else "")
                for d in devices
            )
            or "no paired devices"
        )
    if method == "devices.revoke":
        return f"revoked {_load(RevokeAnswer, result).device_id}"
    if method == "pair.new":
        pair = _load(PairNewAnswer, result)
        minutes = max(0, round((pair.invite.expires_at - time.time()) / 60))
        lines = [f"pairing code: {pair.invite.code} (single use, expires in {minutes} min)"]
        if pair.url:
            lines.append(f"open: {pair.url}")
        return "\n".join(lines)
    if method == "pair.list":
        listing = _load(PairListAnswer, result)
        lines = [f"{p.code}  {p.kind:<7} {p.subject}  {p.label}" for p in listing.pending]
        lines = lines or ["no pending requests"]
        if listing.invites:
            lines.append(f"{len(listing.invites)} unused invite code(s)")
        return "\n".join(lines)
    if method in ("pair.approve", "pair.deny"):
        decision = _load(DecisionAnswer, result)
        verb = "approved" if decision.approved else "denied"
        role = ""
        if decision.approved and decision.kind == "channel":
            role = " as the owner (main)" if decision.owner else " as a guest"
        return f"{verb} {decision.kind} {decision.subject} ({decision.label}){role}"
    if method == "approvals.list":
        waiting = _load(ApprovalsAnswer, result).approvals
        return "\n".join(_approval_line(p) for p in waiting) or "no pending approvals"
    if method == "approvals.decide":
        answer = _load(ApprovalAnswer, result)
        return f"{answer.approval_id} {answer.decision}"
    if method == "schedules.list":
        scheduled = _load(SchedulesAnswer, result).schedules
        return "\n".join(_schedule_line(e) for e in scheduled) or "no schedules"
    if method == "schedules.add":
        return "added " + _schedule_line(_load(ScheduleEntry, result))
    if method == "schedules.remove":
        return f"removed {_load(RemoveAnswer, result).name}"
    if method == "schedules.run":
        ran = _load(RunAnswer, result)
        return (
            f"{ran.name}: started run {ran.run_id}" if ran.run_id else f"{ran.name}: {ran.detail}"
        )
    if method == "usage":
        return _usage(_load(UsageReport, result))
    if method == "tokens.new":
        made = _load(NewToken, result)
        return (
            f"token {made.device_id} ({made.label}), shown this once:\n{made.token}\n"
            "use it as the API key: Authorization: Bearer <token>"
        )
    if method == "tokens.list":
        listed = _load(TokensAnswer, result).tokens
        return (
            "\n".join(
                f"{t.device_id:<14} {time.strftime('%Y-%m-%d %H:%M', time.localtime(t.created_at))}"
                f"  {t.label}"
                for t in listed
            )
            or "no API tokens"
        )
    if method == "tokens.revoke":
        return f"revoked {_load(TokenRevoked, result).device_id}"
    if method == "process.shutdown":
        return "shutting down"
    return json.dumps(result, indent=2)


def _memory(answer: MemoryAnswer) -> str:
    whose = f"{answer.whose} (agent {answer.agent_id}, session {answer.session_key})"
    lines = [answer.forgotten] if answer.forgotten else []
    if not answer.notes:
        return "\n".join([*lines, f"no notes for {whose}"])
    lines.append(f"notes for {whose}:")
    lines += [f"{n:>3}. {note}" for n, note in enumerate(answer.notes, 1)]
    return "\n".join(lines)


def _deleted(deleted: DeletedSession) -> str:
    lines = [
        f"deleted {deleted.session_key}: {deleted.files_removed} session file(s), "
        f"{deleted.images_removed} photo(s) no other conversation holds"
    ]
    lines += [
        f"schedule {name} still runs there: its next run starts the conversation afresh "
        f"(agenthub ctl schedules remove {name} to stop it)"
        for name in deleted.schedules
    ]
    return "\n".join(lines)


def _status(status: StatusResult) -> str:
    lines = [
        f"agenthub {status.mode}, pid {status.pid}, up {_duration(status.uptime_seconds)}, "
        f"health {status.health}{' (draining)' if status.draining else ''}",
    ]
    if status.model:
        lines.append(f"model: {status.model}")
    if status.agents:
        lines.append("agents:")
        lines += [f"  {_agent_line(a)}" for a in status.agents]
    lines.append("surfaces:")
    for sub in status.subsystems:
        age = f" (last sign of life {sub.age_seconds:.0f}s ago)" if sub.age_seconds else ""
        lines.append(f"  {sub.name:<10} {sub.status:<8} {sub.detail}{age}")
    lines.append(f"devices connected: {len(status.devices)}")
    lines += [f"  {d.device_id} ({d.kind}) {d.label}" for d in status.devices]
    return "\n".join(lines)


def _session_line(session: AgentSession) -> str:
    state = "busy" if session.busy else "idle"
    unread = f", {session.unread} unread" if session.unread else ""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.updated_at / 1000))
    return (
        f"{session.agent_id}/{session.session_key:<28} {session.messages:>4} messages, {state}"
        f"{unread}, {when}  {session.title}"
    )


def _binding_line(number: int, binding: Binding) -> str:
    fields = ("channel", "chat", "user", "topic")
    match = " ".join(f"{f}={getattr(binding, f)}" for f in fields if getattr(binding, f))
    return f"{number}. {match or 'any chat'} -> agent {binding.agent}"


def _agent_line(agent: AgentInfo) -> str:
    state = "busy" if agent.busy else "idle"
    queued = f", {agent.queued} queued" if agent.queued else ""
    name = f" ({agent.name})" if agent.name != agent.agent_id else ""
    return (
        f"{agent.agent_id:<10} {state}{queued}  model {agent.model}  "
        f"session {agent.session_id}{name}"
    )


def _history_line(entry: HistoryEntry) -> str:
    if isinstance(entry, MessageEntry):
        text = entry.text if len(entry.text) <= 200 else entry.text[:199] + "…"
        mark = " (aborted)" if entry.aborted else ""
        return f"[{entry.seq}] {entry.role}: {text}{mark}"
    state = "error" if entry.is_error else "ok"
    return f"[{entry.seq}] tool {entry.tool_name} {state}"


def _approval_line(pending: PendingApproval) -> str:
    args = json.dumps(pending.args, ensure_ascii=False)
    args = args if len(args) <= 300 else args[:299] + "…"
    minutes = max(0, round((pending.expires_at / 1000 - time.time()) / 60))
    return (
        f"{pending.approval_id}  {pending.agent_id}/{pending.session_key}  {pending.tool} {args}"
        f"  (expires in {minutes} min)"
    )


def _schedule_line(entry: ScheduleEntry) -> str:
    spec = entry.schedule
    timing = f"cron '{spec.cron}'" if spec.cron else f"at {spec.at}"
    upcoming = _when(entry.next_run) if entry.next_run is not None else "no next run"
    last = entry.last_run
    done = f"last {last.status} {_when(last.due)}" if last else "never ran"
    if last and last.detail:
        detail = last.detail.replace("\n", " ")
        done += f": {detail[:60]}{'…' if len(detail) > 60 else ''}"
    off = "" if spec.enabled else " (disabled)"
    return (
        f"{spec.name}{off}  {timing} {spec.timezone or 'local'}  -> {spec.deliver}  "
        f"[{entry.defined}]\n    next: {upcoming}; {done}"
    )


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="minutes")


def _usage(report: UsageReport) -> str:
    if not report.total.runs:
        return "no runs recorded" + (" since then" if report.since else "")
    lines = [f"total            {_totals(report.total)}"]
    sections: list[tuple[str, list[tuple[str, Totals]]]] = [
        ("by agent", sorted(report.agents.items())),
        ("by session", [(f"{s.agent_id}/{s.session_key}", s) for s in report.sessions]),
        ("by source", sorted(report.sources.items())),
    ]
    for title, rows in sections:
        lines.append(f"{title}:")
        lines += [f"  {name:<15}{_totals(totals)}" for name, totals in rows]
    return "\n".join(lines)


def _totals(totals: Totals) -> str:
    unpriced = f" (+{totals.unpriced} runs without a price)" if totals.unpriced else ""
    return (
        f"{totals.runs:>5} runs  in {totals.input_tokens:>9}  out {totals.output_tokens:>9}"
        f"  cached {totals.cached_tokens:>9}  ${totals.cost:.4f}{unpriced}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
