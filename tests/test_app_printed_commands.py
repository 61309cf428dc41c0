"""Every command the start-up banner and the docs print runs as printed, and the common
options work before or after the subcommand; the setup finds a Python >= 3.11."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.cli_process import AGENTHUB, Served, clean_env, run_cli
from tests.conftest import free_port, require_binary

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# A documented command with a placeholder (CODE, ID, N, …, [--x], a|b) is not runnable as printed.
PLACEHOLDER = re.compile(r"[A-Z]{2,}|\b[A-Z]\b|…|\||\[|<")


def documented_ctl_commands() -> list[str]:
    texts = [(ROOT / "README.md").read_text()] + [
        path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))
    ]
    found = {
        match.group(1).strip()
        for text in texts
        for match in re.finditer(r"`agenthub (ctl [^`]+)`", text)
        if not PLACEHOLDER.search(match.group(1))
    }
    return sorted(found, key=lambda command: command.endswith("shutdown"))


def test_the_banner_and_documented_commands_run_as_printed(data_dir: Path) -> None:
    env = clean_env(data_dir, AGENTHUB_PORT=str(free_port()))
    # The data directory comes only from the command line, as a newcomer types it, in a shell
    # where the venv is not activated.
    del env["AGENTHUB_DATA_DIR"]
    venv_bin = Path(AGENTHUB).parent.resolve()
    paths = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in paths if p and Path(p).resolve() != venv_bin)
    served = Served("serve", env, "--data-dir", str(data_dir))
    try:
        printed = served.wait_for_output(r"control: (agenthub .+)").group(1)
        where = Path(served.wait_for_output(r"`agenthub` is (\S+): activate").group(1))
        assert where == Path(AGENTHUB).resolve()
        # As the banner says: with its folder on PATH, the printed command runs.
        shell = {**env, "PATH": os.pathsep.join([str(where.parent), env["PATH"]])}
        result = subprocess.run(
            shlex.split(printed), env=shell, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, (printed, result.stderr)
        assert "agenthub serve" in result.stdout

        flags = ("--data-dir", str(data_dir))
        for args in (
            ["ctl", "status", "--json", *flags],
            ["ctl", "pair", "new", *flags],
            ["ctl", *flags, "status"],
            [*flags, "ctl", "agents"],
            ["ctl", "--json", "history", "--agent", "main", "--limit", "5", *flags],
            ["ctl", "history", *flags],  # the first agent by default, as its help says
            ["ctl", "devices", *flags, "list"],
            ["ctl", "sessions", "--agent", "main", "--log-level", "warning", *flags],
        ):
            result = run_cli(*args, env=env)
            assert result.returncode == 0, (args, result.stderr)

        documented = documented_ctl_commands()
        assert "ctl status" in documented and documented[-1] == "ctl shutdown"
        for command in documented:
            result = run_cli(*shlex.split(command), *flags, env=env)
            assert result.returncode == 0, (command, result.stderr)
        assert served.wait_exit(15) == 0
    finally:
        served.stop()


def test_help_shows_each_default_once_and_no_none(data_dir: Path) -> None:
    for args in (["serve", "--help"], ["ctl", "history", "--help"], ["ctl", "--help"]):
        result = run_cli(*args, env=clean_env(data_dir))
        assert result.returncode == 0, result.stderr
        assert "(default: None)" not in result.stdout
        assert "--data-dir" in result.stdout
    serve = run_cli("serve", "--help", env=clean_env(data_dir)).stdout
    assert serve.count("8765") == 1 and serve.count("AGENTHUB_PORT") == 1


def python(version: str) -> str:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    matches = sorted((pyenv / "versions").glob(f"{version}.*/bin/python{version}"))
    return require_binary(
        str(matches[-1]) if matches else f"python{version}",
        f"Python {version} shows the setup's interpreter choice",
    )


def find_python(tmp_path: Path, *versions: str, as_python3: str | None = None) -> tuple[int, str]:
    """Run setup/find-python with only the given interpreters on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for version in versions:
        (bin_dir / f"python{version}").symlink_to(python(version))
    if as_python3:
        (bin_dir / "python3").symlink_to(python(as_python3))
    result = subprocess.run(
        [str(ROOT / "setup" / "find-python")],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_setup_prefers_3_11_and_takes_any_newer_python3(tmp_path: Path) -> None:
    assert find_python(tmp_path / "a", "3.11", "3.13") == (
        0,
        str(tmp_path / "a" / "bin" / "python3.11"),
    )
    # Debian 13 and Ubuntu 24.04 have no python3.11: their python3 is newer.
    assert find_python(tmp_path / "b", as_python3="3.12") == (
        0,
        str(tmp_path / "b" / "bin" / "python3"),
    )


def test_setup_without_a_recent_python_says_what_to_install(tmp_path: Path) -> None:
    status, output = find_python(tmp_path, as_python3="3.10")
    assert status == 1
    assert output.count("\n") == 0
    assert "needs Python 3.11 or newer (python3 here is 3.10" in output
    assert "install" in output
