"""The `agenthub` command line.

Exit status: 0 ok; 1 failed (a part could not start, no hub answered, a check failed);
2 bad usage or bad configuration (the message names the field and why).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app import logs
from app.config import ConfigError, Settings, load_settings
from app.control_protocol import CtlParams, Method

if TYPE_CHECKING:
    from app.compose import Mode, Runtime

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("agenthub.app")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (env AGENTHUB_DATA_DIR; ~/.agenthub)"
    )
    parser.add_argument(
        "--config", type=Path, help="TOML configuration file (default <data-dir>/config.toml)"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (env AGENTHUB_LOG_LEVEL; info)",
    )


def _bind(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (env AGENTHUB_HOST; 127.0.0.1)")
    parser.add_argument("--port", help="port (env AGENTHUB_PORT; 8765)")


def _model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help="model spec: echo, openai:<model>, anthropic:<model>, ollama:<model>, "
        "local[:PATH.gguf] (env AGENTHUB_MODEL; echo)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agenthub",
        description="One LLM agent, reached from a desktop window, a browser and Telegram.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="gateway + hub + web client in one process (+ Telegram when configured)",
        formatter_class=_Formatter,
        description="Run everything in one process. Prints the web URL (with a one-time "
        "pairing code in its fragment) and which model runs.",
    )
    _common(serve)
    _bind(serve)
    _model(serve)
    serve.add_argument("--redis-url", help="Redis URL for gateway scale-out (AGENTHUB_REDIS_URL)")

    gateway = commands.add_parser(
        "gateway",
        help="the gateway alone, for a server",
        formatter_class=_Formatter,
        description="Run only the gateway. Hubs connect with AGENTHUB_GATEWAY_TOKEN.",
    )
    _common(gateway)
    _bind(gateway)
    gateway.add_argument("--redis-url", help="join gateway nodes over Redis (AGENTHUB_REDIS_URL)")

    hub = commands.add_parser(
        "hub",
        help="the hub alone, connecting to a gateway",
        formatter_class=_Formatter,
        description="Run the agents and connect to a gateway as its hub device.",
    )
    _common(hub)
    _model(hub)
    hub.add_argument("--gateway-url", help="gateway to connect to (AGENTHUB_GATEWAY_URL)")

    desktop = commands.add_parser(
        "desktop",
        help="the desktop window, with the hub in-process",
        formatter_class=_Formatter,
        description="Open the desktop window. With --with-gateway it also serves web clients; "
        "with TELEGRAM_BOT_TOKEN it also runs the Telegram bot.",
    )
    _common(desktop)
    _bind(desktop)
    _model(desktop)
    desktop.add_argument(
        "--with-gateway",
        action="store_true",
        help="also run the gateway so browsers can reach this hub",
    )

    ctl = commands.add_parser(
        "ctl",
        help="talk to the running hub over its control socket",
        formatter_class=_Formatter,
        description="Ask the hub running with this data directory, via <data-dir>/ctl.sock.",
    )
    _common(ctl)
    ctl.add_argument("--json", action="store_true", help="machine-readable output")
    ctl_commands = ctl.add_subparsers(dest="ctl_command", required=True, metavar="CTL_COMMAND")
    ctl_commands.add_parser("status", help="uptime, agents, surfaces, connected devices")
    ctl_commands.add_parser("agents", help="the agents and their state")
    sessions = ctl_commands.add_parser("sessions", help="sessions on disk")
    sessions.add_argument("--agent", help="only this agent")
    history = ctl_commands.add_parser(
        "history", help="messages of an agent's current session", formatter_class=_Formatter
    )
    history.add_argument("--agent", help="agent id (default: the first agent)")
    history.add_argument("--after-seq", type=int, help="only entries after this seq")
    history.add_argument("--limit", type=int, default=50, help="at most this many, the latest")
    devices = ctl_commands.add_parser("devices", help="paired web devices: list or revoke")
    devices_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    devices_commands.add_parser("list", help="paired devices (default)")
    revoke = devices_commands.add_parser("revoke", help="revoke a device; it is disconnected")
    revoke.add_argument("device_id")
    pair = ctl_commands.add_parser("pair", help="pairing codes for web devices and Telegram users")
    pair_commands = pair.add_subparsers(dest="pair_command", required=True, metavar="ACTION")
    pair_commands.add_parser("new", help="a one-time code (and web URL) for a new device")
    pair_commands.add_parser("list", help="pending requests waiting for approval")
    approve = pair_commands.add_parser("approve", help="approve a pending request")
    approve.add_argument("code")
    deny = pair_commands.add_parser("deny", help="deny a pending request")
    deny.add_argument("code")
    approvals = ctl_commands.add_parser(
        "approvals", help="tool calls waiting for a person: list, approve or deny"
    )
    approval_commands = approvals.add_subparsers(
        dest="approvals_command", required=True, metavar="ACTION"
    )
    approval_commands.add_parser("list", help="pending approvals")
    approve_call = approval_commands.add_parser("approve", help="let the tool call run")
    approve_call.add_argument("approval_id", metavar="ID")
    approve_call.add_argument(
        "--session", action="store_true", help="and this tool for the rest of the session"
    )
    deny_call = approval_commands.add_parser("deny", help="refuse the tool call")
    deny_call.add_argument("approval_id", metavar="ID")
    ctl_commands.add_parser("shutdown", help="stop the hub gracefully")

    doctor = commands.add_parser(
        "doctor",
        help="check configuration, data directory, port, model and Telegram token",
        formatter_class=_Formatter,
    )
    _common(doctor)
    _bind(doctor)
    _model(doctor)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("data_dir", "host", "port", "model", "redis_url", "gateway_url", "log_level")
    }
    return load_settings(args.config, **overrides)


def _ctl_request(args: argparse.Namespace) -> tuple[Method, CtlParams]:
    command: str = args.ctl_command
    if command == "history":
        return "history", CtlParams(agent_id=args.agent, after_seq=args.after_seq, limit=args.limit)
    if command == "sessions":
        return "sessions", CtlParams(agent_id=args.agent)
    if command == "devices":
        if args.devices_command == "revoke":
            return "devices.revoke", CtlParams(device_id=args.device_id)
        return "devices.list", CtlParams()
    if command == "pair":
        return _PAIR_METHODS[args.pair_command], CtlParams(code=getattr(args, "code", None))
    if command == "approvals":
        action: str = args.approvals_command
        if action == "list":
            return "approvals.list", CtlParams()
        params = CtlParams(
            approval_id=args.approval_id, for_session=bool(getattr(args, "session", False))
        )
        return ("approvals.approve" if action == "approve" else "approvals.deny"), params
    return _SIMPLE_METHODS[command], CtlParams()


_PAIR_METHODS: dict[str, Method] = {
    "new": "pair.new",
    "list": "pair.list",
    "approve": "pair.approve",
    "deny": "pair.deny",
}
_SIMPLE_METHODS: dict[str, Method] = {
    "status": "status",
    "agents": "agents",
    "shutdown": "shutdown",
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
        return ctl.run(settings.data_dir / "ctl.sock", method, params, as_json=args.json)
    if command == "doctor":
        from app.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if command == "desktop":
        from app.desktop_entry import run_desktop

        return run_desktop(settings, with_gateway=args.with_gateway)
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


def print_banner(runtime: Runtime) -> None:
    lines = [f"agenthub {runtime.mode} running (pid {os.getpid()})"]
    if runtime.model_line:
        lines.append(runtime.model_line)
    lines += [f"running: {item}" for item in runtime.running]
    lines += [f"not running: {item}" for item in runtime.not_running]
    if runtime.web_url and runtime.mode != "gateway":
        invite = runtime.access.create_invite()
        lines.append(f"open the web client: {runtime.invite_url(invite.code)}")
        lines.append("  (the pairing code in that link works once, for 10 minutes)")
    elif runtime.web_url:
        lines.append(f"web client: {runtime.web_url}/ (pair with `agenthub ctl pair new`)")
    if runtime.web_url and not _is_loopback(runtime.settings.host):
        lines.append(
            f"warning: listening on {runtime.settings.host} over plain HTTP; "
            "put it behind an HTTPS reverse proxy before reaching it over a network"
        )
    lines.append(f"control: agenthub ctl status --data-dir {runtime.settings.data_dir}")
    print("\n".join(lines), flush=True)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


if __name__ == "__main__":
    raise SystemExit(main())
