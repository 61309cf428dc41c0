"""The `agenthub` command line.

Exit status: 0 ok; 1 failed (a part could not start, no hub answered, a check failed);
2 bad usage or bad configuration (the message names the field and why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from app import logs
from app.banner import print_banner
from app.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from app.compose import Mode

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("agenthub.app")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text states each option's default and environment variable itself, once."""


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its subcommand (defaults suppressed, so a
    value given at one level is not reset by the next)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--data-dir", type=Path, help="data directory (env AGENTHUB_DATA_DIR; default ~/.agenthub)"
    )
    common.add_argument(
        "--config", type=Path, help="TOML configuration file (default <data-dir>/config.toml)"
    )
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (env AGENTHUB_LOG_LEVEL; default info)",
    )
    common.add_argument(
        "--json", action="store_true", help="machine-readable output (ctl commands)"
    )
    return common


def _bind(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (env AGENTHUB_HOST; default 127.0.0.1)")
    parser.add_argument("--port", help="port (env AGENTHUB_PORT; default 8765)")


def _model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help="model spec: echo, openai:<model>, anthropic:<model>, ollama:<model>, "
        "local[:PATH.gguf] (env AGENTHUB_MODEL; default echo)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="agenthub",
        description="One LLM agent, reached from a desktop window, a browser and Telegram.",
        formatter_class=_Formatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        *,
        help: str,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        return parent.add_parser(
            name,
            parents=[common],
            formatter_class=_Formatter,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
        )

    serve = command(
        commands,
        "serve",
        help="gateway + hub + web client in one process (+ Telegram when configured)",
        description="Run everything in one process. Prints the web URL (with a one-time "
        "pairing code in its fragment) and which model runs.",
    )
    _bind(serve)
    _model(serve)
    serve.add_argument("--redis-url", help="Redis URL for gateway scale-out (AGENTHUB_REDIS_URL)")

    gateway = command(
        commands,
        "gateway",
        help="the gateway alone, for a server",
        description="Run only the gateway. Hubs connect with AGENTHUB_GATEWAY_TOKEN.",
    )
    _bind(gateway)
    gateway.add_argument("--redis-url", help="join gateway nodes over Redis (AGENTHUB_REDIS_URL)")

    hub = command(
        commands,
        "hub",
        help="the hub alone, connecting to a gateway",
        description="Run the agents and connect to a gateway as its hub device.",
    )
    _model(hub)
    hub.add_argument("--gateway-url", help="gateway to connect to (AGENTHUB_GATEWAY_URL)")

    desktop = command(
        commands,
        "desktop",
        help="the desktop window, with the hub in-process",
        description="Open the desktop window. With --with-gateway it also serves web clients; "
        "with TELEGRAM_BOT_TOKEN it also runs the Telegram bot.",
    )
    _bind(desktop)
    _model(desktop)
    desktop.add_argument(
        "--with-gateway",
        action="store_true",
        help="also run the gateway so browsers can reach this hub",
    )

    ctl = command(
        commands,
        "ctl",
        help="talk to the running hub over its control socket",
        description="Ask the hub running with this data directory, via <data-dir>/ctl.sock.",
    )
    ctl_commands = ctl.add_subparsers(dest="ctl_command", required=True, metavar="CTL_COMMAND")
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

    mcp = command(
        commands,
        "mcp",
        help="an MCP server on stdio exposing the running hub to MCP hosts",
        description="Serve MCP on stdin/stdout (for Claude Desktop, editors): list agents, "
        "message them, read history and sessions of the hub running with this data directory.",
    )
    mcp.add_argument(
        "--agent",
        action="append",
        dest="mcp_agents",
        metavar="ID",
        help="an agent the MCP host may use (repeat for more; default: all)",
    )

    doctor = command(
        commands, "doctor", help="check configuration, data directory, port, model and Telegram"
    )
    _bind(doctor)
    _model(doctor)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("data_dir", "host", "port", "model", "redis_url", "gateway_url", "log_level")
    }
    return load_settings(getattr(args, "config", None), **overrides)


def _ctl_request(args: argparse.Namespace) -> tuple[str, dict[str, JsonValue]]:
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"agenthub: bad configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings.log_level, settings.secrets())
    command: str = args.command
    if command == "ctl":
        from app import ctl

        method, params = _ctl_request(args)
        as_json = getattr(args, "json", False)
        return ctl.run(settings.data_dir / "ctl.sock", method, params, as_json=as_json)
    if command == "mcp":
        from app.mcp_server import run_mcp

        return run_mcp(settings.data_dir / "ctl.sock", getattr(args, "mcp_agents", None))
    if command == "doctor":
        from app.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if command == "desktop":
        from app.desktop_entry import run_desktop

        return run_desktop(settings, with_gateway=getattr(args, "with_gateway", False))
    modes: dict[str, Mode] = {"serve": "serve", "gateway": "gateway", "hub": "hub"}
    return asyncio.run(serve(settings, modes[command]))


async def serve(settings: Settings, mode: Mode) -> int:
    """Run `mode` until SIGTERM/SIGINT or `ctl shutdown`; drain, then exit 0.

    A second signal exits at once (status 130)."""
    from app.compose import StartupError, build

    try:
        runtime = build(settings, mode)
    except ConfigError as exc:
        print(f"agenthub: bad configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    loop = asyncio.get_running_loop()
    signals = {"count": 0}

    def on_signal(signum: int) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            print("agenthub: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        log.info("received %s; shutting down", signal.Signals(signum).name)
        runtime.stop_requested.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await runtime.start()
    except StartupError as exc:
        print(f"agenthub: {logs.mask_secrets(str(exc), settings.secrets())}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        message = logs.mask_secrets(str(exc), settings.secrets())
        print(f"agenthub: bad configuration:\n{message}", file=sys.stderr)
        return EXIT_USAGE
    print_banner(runtime)
    await runtime.stop_requested.wait()
    await runtime.shutdown()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
