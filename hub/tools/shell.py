"""`shell(command)`: one command in the agent's workspace, with a timeout, an output cap and a
clean environment (no API keys, tokens or anything else of the hub's own environment)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from hub.errors import CodedError

MAX_OUTPUT_BYTES = 64_000
# The only variables a command inherits; the hub's secrets live in its environment.
_KEPT = ("PATH", "LANG", "LC_ALL", "TZ")


class ShellError(CodedError):
    code = "shell"


def clean_env(workspace: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEPT if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {**env, "HOME": str(workspace), "PWD": str(workspace), "TERM": "dumb"}


async def run_shell(
    command: str, workspace: Path, *, limit: float, max_output: int = MAX_OUTPUT_BYTES
) -> str:
    """Run `command` with /bin/sh in `workspace`; its exit status and (capped) output."""
    if not command.strip():
        raise ShellError("the command is empty")
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        cwd=workspace,
        env=clean_env(workspace),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    assert process.stdout is not None
    output = bytearray()
    dropped = 0
    try:
        async with asyncio.timeout(limit):
            while chunk := await process.stdout.read(65536):
                room = max_output - len(output)
                output += chunk[:room]
                dropped += max(0, len(chunk) - room)
            status = await process.wait()
    except TimeoutError:
        _kill(process)
        await process.wait()
        raise ShellError(
            f"the command did not finish within {limit:g} s and was stopped; output so far:\n"
            + output.decode(errors="replace")
        ) from None
    except BaseException:
        _kill(process)
        await process.wait()
        raise
    text = output.decode(errors="replace")
    if dropped:
        text += f"\n[... {dropped} more bytes of output not shown]"
    return f"exit status {status}\n{text}"


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
