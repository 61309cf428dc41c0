"""`agenthub doctor`: check what the hub needs and say how to fix what is wrong."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

from app.agents import agent_model_configs, restrict_mcp_servers
from app.config import ConfigError, Settings
from app.hub_setup import conversation_config, model_config, tools_config
from hub.access import AccessStore
from hub.tools.policy import enabled_builtins


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_configuration(settings: Settings) -> Check:
    """What `serve` derives from the settings (model, tools, agents, conversations) holds
    together; the checks that build on it need it to."""
    try:
        config = model_config(settings)
        restrict_mcp_servers(settings.agents, config.tooling)
        agent_model_configs(settings.agents, config, settings.data_dir)
        conversation_config(settings)
    except (ConfigError, ValueError) as exc:
        return Check(
            "configuration", False, str(exc), "fix the setting it names (config.toml or env)"
        )
    return Check("configuration", True, f"loaded ({len(settings.masked())} settings)")


def check_data_dir(settings: Settings) -> Check:
    path = settings.data_dir
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and os.access(parent, os.W_OK):
            return Check("data directory", True, f"{path} will be created on first start")
        return Check(
            "data directory",
            False,
            f"{path} does not exist and cannot be created",
            "set AGENTHUB_DATA_DIR or --data-dir to a directory you own",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        return Check("data directory", False, f"{path} is not writable", f"chown/chmod {path}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check(
            "data directory",
            False,
            f"{path} is readable by other users (mode {mode:o}); it holds transcripts and keys",
            f"chmod 700 {path}",
        )
    return Check("data directory", True, f"{path} (mode {mode:o})")


def check_port(settings: Settings) -> Check:
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Check("port", False, f"cannot resolve {settings.host}: {exc}", "fix AGENTHUB_HOST")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return Check(
                "port",
                False,
                f"{settings.host}:{settings.port} is not free ({exc.strerror})",
                "stop what uses it (maybe a running hub: `agenthub ctl status`) "
                "or pick another with --port / AGENTHUB_PORT",
            )
    return Check("port", True, f"{settings.host}:{settings.port} is free")


async def check_model(settings: Settings) -> Check:
    from hub.providers import build_model, describe_model
    from hub.providers import check_model as probe

    config = model_config(settings)
    try:
        model = build_model(config)
    except ValueError as exc:
        return Check("model", False, str(exc), "fix AGENTHUB_MODEL")
    problem = await probe(model)
    if problem:
        return Check("model", False, f"{model.name}: {problem}", "see docs/models.md")
    return Check("model", True, describe_model(config))


async def check_telegram(settings: Settings) -> Check | None:
    if settings.telegram_bot_token is None:
        return None
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, TelegramError

    base_url = settings.telegram_api_base_url or "https://api.telegram.org/bot"
    bot = Bot(settings.telegram_bot_token.get_secret_value(), base_url=base_url)
    try:
        async with bot:
            me = await bot.get_me()
    except InvalidToken:
        return Check(
            "telegram",
            False,
            "Telegram rejected TELEGRAM_BOT_TOKEN",
            "copy the token again from @BotFather",
        )
    except NetworkError as exc:
        return Check(
            "telegram",
            False,
            f"cannot reach the Bot API at {base_url} ({exc.message})",
            "check the network or TELEGRAM_API_BASE_URL",
        )
    except TelegramError as exc:
        return Check("telegram", False, f"getMe failed: {exc.message}", "check the bot token")
    return Check("telegram", True, f"bot @{me.username} answers getMe")


async def check_mcp_servers(settings: Settings) -> list[Check]:
    """Each `[[mcp_servers]]` entry started once: its tools, or why it fails and its stderr."""
    from hub.tools.mcp import check_server

    tooling = tools_config(settings)
    checks = []
    for server in tooling.mcp_servers:
        ok, detail = await check_server(server, tooling)
        fix = "" if ok else f"see {tooling.mcp_log_dir}/mcp-{server.name}.log and docs/tools.md"
        checks.append(Check(f"mcp server {server.name}", ok, detail, fix))
    return checks


async def check_web_search(settings: Settings) -> Check | None:
    """When an agent has web_search: its service is configured and answers one query."""
    from hub.tools.web_search import SearchFailedError, WebSearcher, web_search_problem

    configs = agent_model_configs(settings.agents, model_config(settings), settings.data_dir)
    toolings = [c.tooling for _, c in configs.values()]
    tooling = next((t for t in toolings if "web_search" in enabled_builtins(t)), None)
    if tooling is None:
        return None
    problem = web_search_problem(tooling)
    if problem is not None:
        return Check("web search", False, problem, "see docs/tools.md#web_search")
    searcher = WebSearcher(tooling)
    try:
        await searcher.search("agenthub", 1)
    except SearchFailedError as exc:
        return Check("web search", False, str(exc), "see docs/tools.md#web_search")
    return Check("web search", True, f"{searcher.service} answers")


def check_guest_devices(settings: Settings) -> Check | None:
    """Every id in `guest_devices` names a paired device: a mistyped one leaves the device it
    meant seeing the owner's conversations."""
    if not settings.guest_devices:
        return None
    paired = {d.device_id for d in AccessStore(settings.data_dir / "access.json").devices()}
    unknown = [d for d in settings.guest_devices if d not in paired]
    if unknown:
        return Check(
            "guest devices",
            False,
            f"not paired devices: {', '.join(unknown)}",
            "use the ids `agenthub ctl devices` lists (like web-1a2b3c4d) in guest_devices",
        )
    return Check("guest devices", True, ", ".join(settings.guest_devices))


async def run_doctor(settings: Settings) -> int:
    """Print every check; exit status 0 when all pass, 1 otherwise."""
    configuration = check_configuration(settings)
    checks = [configuration, check_data_dir(settings), check_port(settings)]
    if configuration.ok:
        checks.append(await check_model(settings))
    optionals = [await check_telegram(settings), check_guest_devices(settings)]
    if configuration.ok:
        optionals.append(await check_web_search(settings))
    checks += [check for check in optionals if check is not None]
    if configuration.ok:
        checks += await check_mcp_servers(settings)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}")
    failed = [c for c in checks if not c.ok]
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 0 if not failed else 1
