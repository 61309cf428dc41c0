"""Shared fixtures. Real parts (chromium, redis-server, Xvfb) are found here: a test that needs a
missing one skips locally with the reason, and fails under CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

# Fixtures that live with what they start (the stand-ins import this module).
pytest_plugins = ("tests.stand_ins", "tests.recovery_rig")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def require_binary(path_or_name: str, why: str) -> str:
    """The binary's path; skip (locally) or fail (CI=true) when it is missing."""
    found = (
        path_or_name
        if os.path.isabs(path_or_name) and os.access(path_or_name, os.X_OK)
        else (shutil.which(path_or_name))
    )
    if found:
        return found
    message = f"{path_or_name} is not installed ({why}); `make test` installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
