"""`agenthub doctor` starts each configured MCP server once and shows why one fails, with the
end of its stderr; `agenthub serve` reports each server's health."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.cli_process import Served, clean_env, run_cli, wait_healthy
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def server_entry(name: str, mode: str) -> str:
    return (
        f'[[mcp_servers]]\nname = "{name}"\ncommand = "{sys.executable}"\n'
        f'args = ["-m", "tests.mcp_servers.toolbox", "{mode}"]\ncwd = "{ROOT}"\n'
    )


def test_doctor_shows_each_server_and_the_stderr_of_a_broken_one(data_dir: Path) -> None:
    (data_dir / "config.toml").write_text(
        server_entry("toolbox", "stdio") + server_entry("broken", "fail-start")
    )
    result = run_cli("doctor", env=clean_env(data_dir, AGENTHUB_PORT=str(free_port())), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[ok  ] mcp server toolbox: started, 9 tools" in result.stdout
    assert "[FAIL] mcp server broken:" in result.stdout
    assert "| toolbox: cannot open its database (test failure)" in result.stdout
    assert "mcp-broken.log" in result.stdout


def test_serve_reports_mcp_health_per_server(data_dir: Path) -> None:
    (data_dir / "config.toml").write_text(server_entry("toolbox", "stdio"))
    port = free_port()
    served = Served("serve", clean_env(data_dir, AGENTHUB_PORT=str(port)))
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert "mcp:toolbox" in str(health)
        status = run_cli("ctl", "status", env=clean_env(data_dir))
        assert "mcp:toolbox" in status.stdout and "9 tools" in status.stdout
        served.process.terminate()
        assert served.wait_exit(30) == 0
        assert "MCP server toolbox is up with 9 tools" in served.logs()
    finally:
        served.stop()
