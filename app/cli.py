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

from app import logs
from app.banner import print_banner
from app.config import ConfigError, Settings, load_settings
from app.ctl_args import add_ctl_commands, ctl_request

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
    add_ctl_commands(ctl_commands, command)

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

        method, params = ctl_request(args)
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
