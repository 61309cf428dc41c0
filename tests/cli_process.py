"""Run `agenthub` as a real subprocess for end-to-end tests of the shell."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

AGENTHUB = str(Path(sys.executable).parent / "agenthub")
ROOT = Path(__file__).resolve().parent.parent

# Variables from the developer's shell must not leak into the process under test.
_SCRUBBED = (
    "AGENTHUB_",
    "TELEGRAM_",
    "OPENAI_",
    "ANTHROPIC_",
    "BRAVE_",
    "TAVILY_",
)


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env["AGENTHUB_DATA_DIR"] = str(data_dir)
    env["AGENTHUB_LOG_LEVEL"] = "info"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTHUB, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class Served:
    """`agenthub <command>` running in the background, its output collected."""

    def __init__(self, command: str, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [AGENTHUB, command, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    @staticmethod
    def _pump(stream: object, into: list[str]) -> None:
        assert hasattr(stream, "readline")
        for line in iter(stream.readline, ""):
            into.append(line)

    def output(self) -> str:
        return "".join(self.stdout)

    def logs(self) -> str:
        return "".join(self.stderr)

    def wait_for_output(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no {pattern!r} in output; exit {self.process.poll()}\n"
            f"stdout:\n{self.output()}\nstderr:\n{self.logs()}"
        )

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def http_get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_healthy(url: str, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(url)
            if status == 200:
                return body
            last = body
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered 200: {last}")


async def hub_linked(env: dict[str, str]) -> None:
    """Wait until the hub running with `env` reports its gateway link up (`agenthub hub`
    prints its banner as the link starts, before it is up)."""
    async with asyncio.timeout(60):
        while True:
            status = await asyncio.to_thread(run_cli, "ctl", "status", "--json", env=env)
            if status.returncode == 0:
                subsystems = json.loads(status.stdout)["result"]["subsystems"]
                if {s["name"]: s["status"] for s in subsystems}.get("hub_link") == "ok":
                    return
            await asyncio.sleep(0.2)


@dataclass
class Split:
    """`agenthub gateway` and `agenthub hub` as two processes, the hub linked."""

    url: str
    gateway: Served
    hub: Served
    gateway_env: dict[str, str]
    hub_env: dict[str, str]


@contextlib.asynccontextmanager
async def split_processes(root: Path, token: str) -> AsyncIterator[Split]:
    port = free_port()
    gateway_env = clean_env(root / "gateway", AGENTHUB_PORT=str(port), AGENTHUB_GATEWAY_TOKEN=token)
    url = f"http://127.0.0.1:{port}"
    hub_env = clean_env(root / "hub", AGENTHUB_GATEWAY_URL=url, AGENTHUB_GATEWAY_TOKEN=token)
    gateway = Served("gateway", gateway_env)
    hub = Served("hub", hub_env)
    try:
        await asyncio.to_thread(gateway.wait_for_output, r"control: agenthub ctl status")
        await asyncio.to_thread(hub.wait_for_output, r"running: hub linked to gateway")
        await hub_linked(hub_env)
        yield Split(url, gateway, hub, gateway_env, hub_env)
    finally:
        hub.stop()
        gateway.stop()
