"""The `agenthub ctl` command line: its subcommands, and the control request each one
makes (`app.ctl` sends it and prints the answer)."""

from __future__ import annotations

import argparse
from typing import Protocol, TypeAlias

from pydantic import JsonValue

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class MakeCommand(Protocol):
    """Adds a subcommand with the options every command takes (`app.cli`)."""

    def __call__(
        self, parent: Subcommands, name: str, *, help: str, description: str | None = None
    ) -> argparse.ArgumentParser: ...


def add_ctl_commands(ctl_commands: Subcommands, command: MakeCommand) -> None:
    """Every `ctl` subcommand, under `ctl_commands`."""
    command(ctl_commands, "status", help="uptime, agents, surfaces, connected devices")
    command(ctl_commands, "agents", help="the agents and their state")
    command(ctl_commands, "bindings", help="which agent each chat goes to, rule by rule")
    sessions = command(ctl_commands, "sessions", help="every conversation of every agent")
    sessions.add_argument("--agent", help="only this agent")
    sessions.add_argument("--search", help="only sessions whose title or key contains this")
    sessions.add_argument("--archived", action="store_true", help="archived sessions instead")
    session_commands = sessions.add_subparsers(dest="sessions_command", metavar="ACTION")
    delete_session = command(
        session_commands,
        "delete",
        help="delete a conversation for good, with the photos no other conversation holds",
    )
    delete_session.add_argument("session_agent", metavar="AGENT")
    delete_session.add_argument("session_key", metavar="KEY")
    memory = command(
        ctl_commands, "memory", help="what an agent remembers about a conversation's person"
    )
    memory.add_argument("--agent", help="agent id (default: the first agent)")
    memory.add_argument(
        "--session", default="main", help="whose notes: this conversation's (default main: yours)"
    )
    memory_commands = memory.add_subparsers(dest="memory_command", metavar="ACTION")
    forget = command(memory_commands, "forget", help="delete note N")
    forget.add_argument("number", type=int, metavar="N")
    history = command(ctl_commands, "history", help="messages of an agent's current session")
    history.add_argument("--agent", help="agent id (default: the first agent)")
    history.add_argument("--after-seq", type=int, help="only entries after this seq")
    history.add_argument(
        "--limit", type=int, default=50, help="at most this many, the latest (default 50)"
    )
    devices = command(ctl_commands, "devices", help="paired web devices: list or revoke")
    devices_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    command(devices_commands, "list", help="paired devices (default)")
    revoke = command(devices_commands, "revoke", help="revoke a device; it is disconnected")
    revoke.add_argument("device_id")
    pair = command(ctl_commands, "pair", help="pairing codes for web devices and Telegram users")
    pair_commands = pair.add_subparsers(dest="pair_command", required=True, metavar="ACTION")
    command(pair_commands, "new", help="a one-time code (and web URL) for a new device")
    command(pair_commands, "list", help="pending requests waiting for approval")
    approve = command(pair_commands, "approve", help="approve a pending request")
    approve.add_argument("code")
    approve.add_argument(
        "--owner",
        action="store_true",
        help="a chat user joins your own conversation (main); without it they are a guest "
        "with a conversation of their own",
    )
    deny = command(pair_commands, "deny", help="deny a pending request")
    deny.add_argument("code")
    approvals = command(
        ctl_commands, "approvals", help="tool calls waiting for a person: list, approve or deny"
    )
    approval_commands = approvals.add_subparsers(dest="approvals_command", metavar="ACTION")
    command(approval_commands, "list", help="pending approvals (default)")
    approve_call = command(approval_commands, "approve", help="let the tool call run")
    approve_call.add_argument("approval_id", metavar="ID")
    approve_call.add_argument(
        "--session", action="store_true", help="and this tool for the rest of the session"
    )
    deny_call = command(approval_commands, "deny", help="refuse the tool call")
    deny_call.add_argument("approval_id", metavar="ID")
    schedules = command(
        ctl_commands, "schedules", help="prompts the hub runs on its own: list, add, remove, run"
    )
    schedule_commands = schedules.add_subparsers(dest="schedules_command", metavar="ACTION")
    command(schedule_commands, "list", help="every schedule, its next run and last result")
    add = command(schedule_commands, "add", help="add a schedule (kept in the data directory)")
    add.add_argument("name")
    add.add_argument("--cron", help="cron expression, e.g. '0 9 * * mon-fri'")
    add.add_argument("--at", help="once, at this ISO date-time, e.g. 2026-12-24T18:00")
    add.add_argument("--prompt", required=True, help="what the agent is asked")
    add.add_argument("--agent", help="agent id (default: the default agent)")
    add.add_argument("--session", help="session key it runs in (default main)")
    add.add_argument("--deliver", help="last (default), none, or telegram:<chatId>")
    add.add_argument("--timezone", help="IANA time zone (default: this machine's)")
    add.add_argument("--missed", choices=["run_once", "skip"], help="default run_once")
    remove = command(schedule_commands, "remove", help="remove a schedule added with ctl")
    remove.add_argument("name")
    run_now = command(schedule_commands, "run", help="run a schedule now")
    run_now.add_argument("name")
    usage = command(ctl_commands, "usage", help="token and cost totals per agent, session, source")
    usage.add_argument(
        "--since",
        help="from an ISO date or date-time (local unless it has an offset) or an age: 7d, 24h",
    )
    tokens = command(
        ctl_commands, "tokens", help="device tokens for API clients: new, list or revoke"
    )
    token_commands = tokens.add_subparsers(dest="tokens_command", metavar="ACTION")
    token_new = command(token_commands, "new", help="a new token (shown once)")
    token_new.add_argument("--label", default="", help="what the token is for")
    command(token_commands, "list", help="API tokens, never the tokens themselves (default)")
    token_revoke = command(token_commands, "revoke", help="revoke a token; refused at once")
    token_revoke.add_argument("token_id", metavar="ID")
    command(ctl_commands, "shutdown", help="stop the hub gracefully")


def ctl_request(args: argparse.Namespace) -> tuple[str, dict[str, JsonValue]]:
    """The control method and params of a `ctl` command line."""
    command: str = args.ctl_command
    if command == "history":
        params: dict[str, JsonValue] = {"limit": args.limit}
        if args.after_seq is not None:
            params["after"] = args.after_seq
        if args.agent:
            params["agentId"] = args.agent
        return "history", params
    if command == "sessions":
        if getattr(args, "sessions_command", None) == "delete":
            key = args.session_key
            return "sessions.delete", {"agentId": args.session_agent, "sessionKey": key}
        chosen = {"agentId": args.agent, "search": args.search, "archived": args.archived}
        return "process.sessions", {k: v for k, v in chosen.items() if v}
    if command == "memory":
        params = {"sessionKey": args.session}
        if args.agent:
            params["agentId"] = args.agent
        if getattr(args, "memory_command", None) == "forget":
            return "memory.forget", {**params, "number": args.number}
        return "memory.list", params
    if command == "devices":
        if args.devices_command == "revoke":
            return "devices.revoke", {"deviceId": args.device_id}
        return "devices.list", {}
    if command == "pair":
        params = {} if getattr(args, "code", None) is None else {"code": args.code}
        if getattr(args, "owner", False):
            params["owner"] = True
        return f"pair.{args.pair_command}", params
    if command == "approvals":
        if args.approvals_command in (None, "list"):
            return "approvals.list", {}
        decision = "deny"
        if args.approvals_command == "approve":
            decision = "approve_session" if args.session else "approve"
        return "approvals.decide", {"approvalId": args.approval_id, "decision": decision}
    if command == "schedules":
        action = args.schedules_command or "list"
        if action == "add":
            fields = ("cron", "at", "prompt", "agent", "session", "deliver", "timezone", "missed")
            spec: dict[str, JsonValue] = {"name": args.name}
            spec |= {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
            return "schedules.add", spec
        if action in ("remove", "run"):
            return f"schedules.{action}", {"name": args.name}
        return "schedules.list", {}
    if command == "usage":
        return "usage", {"since": args.since} if args.since else {}
    if command == "tokens":
        if args.tokens_command == "new":
            return "tokens.new", {"label": args.label}
        if args.tokens_command == "revoke":
            return "tokens.revoke", {"deviceId": args.token_id}
        return "tokens.list", {}
    return _SIMPLE_METHODS[command], {}


_SIMPLE_METHODS = {
    "status": "process.status",
    "agents": "agents.list",
    "bindings": "bindings.list",
    "shutdown": "process.shutdown",
}
