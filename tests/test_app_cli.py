"""The CLI end to end, as subprocesses: help, bad configuration, serve + health + ctl, doctor."""

from __future__ import annotations

import json
import signal
import socket
import stat
from pathlib import Path

import pytest

from tests.cli_process import Served, clean_env, http_get, run_cli, wait_healthy
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["serve", "--help"],
        ["gateway", "--help"],
        ["hub", "--help"],
        ["desktop", "--help"],
        ["ctl", "--help"],
        ["ctl", "history", "--help"],
        ["ctl", "pair", "--help"],
        ["doctor", "--help"],
    ],
)
def test_help(args: list[str], data_dir: Path) -> None:
    result = run_cli(*args, env=clean_env(data_dir))
    assert result.returncode == 0, result.stderr
    assert "usage: agenthub" in result.stdout
    if args != ["--help"] and args[0] in ("serve", "doctor"):
        assert "127.0.0.1" in result.stdout and "8765" in result.stdout


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("serve", {"AGENTHUB_PORT": "abc"}, "AGENTHUB_PORT: must be 1-65535, got 'abc'"),
        ("serve", {"AGENTHUB_MODEL": "gpt4"}, "AGENTHUB_MODEL: unknown model spec 'gpt4'"),
        ("serve", {"TELEGRAM_DM_POLICY": "all"}, "TELEGRAM_DM_POLICY:"),
        ("hub", {"AGENTHUB_GATEWAY_URL": "http://127.0.0.1:1"}, "AGENTHUB_GATEWAY_TOKEN"),
        ("gateway", {}, "AGENTHUB_GATEWAY_TOKEN: required"),
    ],
)
def test_bad_configuration_exits_2(
    data_dir: Path, command: str, extra: dict[str, str], message: str
) -> None:
    result = run_cli(command, env=clean_env(data_dir, **extra))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_bad_option_exits_2(data_dir: Path) -> None:
    result = run_cli("serve", "--port", "0x", env=clean_env(data_dir))
    assert result.returncode == 2
    assert "AGENTHUB_PORT" in result.stderr


def test_ctl_without_a_hub(data_dir: Path) -> None:
    result = run_cli("ctl", "status", env=clean_env(data_dir))
    assert result.returncode == 1
    assert "no agenthub is running" in result.stderr


def test_serve_health_ctl_and_clean_stop(data_dir: Path) -> None:
    port = free_port()
    env = clean_env(data_dir, AGENTHUB_PORT=str(port))
    served = Served("serve", env)
    try:
        served.wait_for_output(r"control: agenthub ctl status")
        banner = served.output()
        assert "model: echo" in banner and "AGENTHUB_MODEL" in banner
        assert "not running: telegram" in banner
        url = served.wait_for_output(r"open the web client: (http://\S+)").group(1)
        assert url.startswith(f"http://127.0.0.1:{port}/#pair=")
        body = wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert body["status"] == "ok"
        status_code, status = http_get(f"http://127.0.0.1:{port}/status")
        assert status_code == 200 and "subsystems" in json.dumps(status)

        sock = data_dir / "ctl.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        human = run_cli("ctl", "status", env=env)
        assert human.returncode == 0, human.stderr
        assert "agenthub serve" in human.stdout and "gateway" in human.stdout
        machine = run_cli("ctl", "--json", "status", env=env)
        parsed = json.loads(machine.stdout)
        assert parsed["ok"] is True and parsed["result"]["model"] == "echo"
        names = {s["name"] for s in parsed["result"]["subsystems"]}
        assert {"gateway", "hub_link", "model", "data_dir"} <= names
        pair = run_cli("ctl", "pair", "new", env=env)
        assert pair.returncode == 0
        assert "pairing code:" in pair.stdout and f":{port}/#pair=" in pair.stdout
        agents = run_cli("ctl", "agents", env=env)
        assert "main" in agents.stdout

        served.process.send_signal(signal.SIGTERM)
        assert served.wait_exit(15) == 0
        assert "shutting down" in served.logs()
        assert not sock.exists()
    finally:
        served.stop()


def test_port_in_use_is_reported(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(data_dir, AGENTHUB_PORT=str(port))
        result = run_cli("serve", env=env)
        assert result.returncode == 1
        assert "could not start" in result.stderr
        doctor = run_cli("doctor", env=env)
        assert doctor.returncode == 1
        assert "is not free" in doctor.stdout and "fix:" in doctor.stdout


def test_doctor_passes_on_a_good_setup(data_dir: Path) -> None:
    result = run_cli("doctor", env=clean_env(data_dir, AGENTHUB_PORT=str(free_port())))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    assert "[ok  ] model: echo (no model configured" in result.stdout


def test_doctor_flags_an_open_data_dir(data_dir: Path) -> None:
    data_dir.chmod(0o755)
    result = run_cli("doctor", env=clean_env(data_dir, AGENTHUB_PORT=str(free_port())))
    assert result.returncode == 1
    assert "chmod 700" in result.stdout


def test_doctor_names_a_bad_setting_instead_of_crashing(data_dir: Path) -> None:
    (data_dir / "config.toml").write_text("[tool_settings]\nbogus = 1\n")
    result = run_cli("doctor", env=clean_env(data_dir, AGENTHUB_PORT=str(free_port())))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] configuration: tool_settings: unknown key 'bogus'" in result.stdout
    assert "[ok  ] data directory" in result.stdout and "Traceback" not in result.stderr


def test_second_hub_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    served = Served("serve", clean_env(data_dir, AGENTHUB_PORT=str(free_port())))
    try:
        served.wait_for_output(r"control: agenthub ctl status")
        second = run_cli("serve", env=clean_env(data_dir, AGENTHUB_PORT=str(free_port())))
        assert second.returncode == 1
        assert "another agenthub is already running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        served.stop()


def test_a_non_loopback_bind_is_warned_about(data_dir: Path) -> None:
    port = free_port()
    served = Served("serve", clean_env(data_dir, AGENTHUB_HOST="0.0.0.0", AGENTHUB_PORT=str(port)))
    try:
        served.wait_for_output(r"control: agenthub ctl status")
        assert "warning: listening on 0.0.0.0 over plain HTTP" in served.output()
        assert f"http://127.0.0.1:{port}/#pair=" in served.output()
    finally:
        served.stop()
