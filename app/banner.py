"""The start-up banner every long-running command prints: what runs, where, and how to reach it."""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.compose import Runtime


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
    where = _not_on_path()
    if where is not None:
        lines.append(f"  (`agenthub` is {where}: activate its venv or add {where.parent} to PATH)")
    print("\n".join(lines), flush=True)


def _not_on_path() -> Path | None:
    """This `agenthub` when typing `agenthub` would not run it (a venv not activated)."""
    here = Path(sys.argv[0]).resolve()
    if here.name != "agenthub":
        return None
    found = shutil.which("agenthub")
    return None if found is not None and Path(found).resolve() == here else here


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
