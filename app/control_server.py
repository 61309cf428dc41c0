"""The control socket server: `<data-dir>/ctl.sock`, mode 0600, JSON lines.

Only the owner's user can connect (file mode), so requests are not authenticated further: the
caller is the owner. A method is the process's own (`app.control_handlers`) or goes through the
hub's request table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

from pydantic import BaseModel, ValidationError

from app.control_handlers import ProcessMethod
from app.control_protocol import MAX_LINE_BYTES, CtlError, CtlEvent, CtlRequest, CtlResponse
from hub.errors import CodedError, InvalidParamsError, describe_validation
from hub.events import AgentEvent
from hub.health import Probe
from hub.requests import Caller, RequestHost, RunEvents, dispatch

log = logging.getLogger("agenthub.ctl")

OWNER = Caller(surface="control", owner=True)


class HubAlreadyRunningError(RuntimeError):
    pass


class ControlServer:
    """Serves control requests: the process's own methods, then the hub's request table."""

    def __init__(self, path: Path, host: RequestHost, process: dict[str, ProcessMethod]) -> None:
        self.path = path
        self._host = host
        self._process = process
        self._server: asyncio.Server | None = None

    @property
    def name(self) -> str:
        return "control"

    def probes(self) -> dict[str, Probe]:
        return {}

    async def start(self) -> None:
        await self._clear_stale_socket()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_LINE_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        log.info("control socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _clear_stale_socket(self) -> None:
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()
            return
        finally:
            probe.close()
        raise HubAlreadyRunningError(f"another agenthub is already running ({self.path} answers)")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await self._skip_line(reader)
                    await self._send(writer, _error("?", "too_large", "request line over 1 MiB"))
                    continue
                if not line:
                    return
                await self._send(writer, await self._handle(line, writer))
        except ConnectionError:
            return
        finally:
            writer.close()

    async def _skip_line(self, reader: asyncio.StreamReader) -> None:
        """Discard the rest of an oversized line so the connection stays usable."""
        while chunk := await reader.read(1 << 16):
            if b"\n" in chunk:
                return

    async def _send(self, writer: asyncio.StreamWriter, response: CtlResponse) -> None:
        writer.write(response.model_dump_json().encode() + b"\n")
        await writer.drain()

    async def _handle(self, line: bytes, writer: asyncio.StreamWriter) -> CtlResponse:
        try:
            request = CtlRequest.model_validate_json(line)
        except ValidationError as exc:
            return _error("?", "invalid_request", describe_validation(exc))
        try:
            result = await self._answer(request, _event_lines(request.id, writer))
        except CodedError as exc:
            return _error(request.id, exc.code, exc.message)
        except Exception as exc:
            log.exception("control request %s failed", request.method)
            return _error(request.id, "internal", f"{type(exc).__name__}: {exc}")
        return CtlResponse(id=request.id, ok=True, result=result.model_dump(mode="json"))

    async def _answer(self, request: CtlRequest, events: RunEvents) -> BaseModel:
        own = self._process.get(request.method)
        if own is None:
            return await dispatch(
                self._host,
                OWNER,
                request.method,
                request.params,
                on_run_event=events if request.stream else None,
            )
        try:
            params = own.params.model_validate(request.params)
        except ValidationError as exc:
            raise InvalidParamsError(describe_validation(exc)) from None
        return await own.handler(self._host, params)


def _error(request_id: str, code: str, message: str) -> CtlResponse:
    return CtlResponse(id=request_id, ok=False, error=CtlError(code=code, message=message))


def _event_lines(request_id: str, writer: asyncio.StreamWriter) -> RunEvents:
    """Writes each event as a line ahead of the response. Called inline as the agent emits, so
    it never waits: the socket takes what it can at once, the rest is buffered (and flushed by
    the response's drain). A client gone meanwhile is skipped."""

    def write(event: AgentEvent) -> None:
        if writer.is_closing():
            return
        line = CtlEvent(id=request_id, event=event.model_dump(mode="json"))
        writer.write(line.model_dump_json().encode() + b"\n")

    return write
