"""The control socket server: `<data-dir>/ctl.sock`, mode 0600, JSON lines.

Only the owner's user can connect (file mode), so requests are not authenticated further.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, JsonValue, ValidationError

from app.control_protocol import (
    MAX_LINE_BYTES,
    CtlError,
    CtlParams,
    CtlRequest,
    CtlResponse,
    Method,
)

log = logging.getLogger("agenthub.ctl")

Result = BaseModel | Sequence[BaseModel]
Handler = Callable[[CtlParams], Awaitable[Result]]


class RequestError(Exception):
    """A handler's refusal, sent back as `{code, message}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HubAlreadyRunningError(RuntimeError):
    pass


class ControlServer:
    """Serves control requests with the handlers the composition root registers."""

    def __init__(self, path: Path, handlers: dict[Method, Handler]) -> None:
        self.path = path
        self._handlers = handlers
        self._server: asyncio.Server | None = None

    @property
    def name(self) -> str:
        return "control"

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
                await self._send(writer, await self._handle(line))
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

    async def _handle(self, line: bytes) -> CtlResponse:
        try:
            request = CtlRequest.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "request"
            return _error("?", "invalid_request", f"{where}: {first['msg']}")
        handler = self._handlers.get(request.method)
        if handler is None:
            return _error(request.id, "unavailable", f"{request.method} is not served here")
        try:
            result = await handler(request.params)
        except RequestError as exc:
            return _error(request.id, exc.code, exc.message)
        except Exception as exc:
            log.exception("control request %s failed", request.method)
            return _error(request.id, "internal", f"{type(exc).__name__}: {exc}")
        return CtlResponse(id=request.id, ok=True, result=_dump(result))


def _dump(result: Result) -> JsonValue:
    if not isinstance(result, BaseModel):
        return [item.model_dump(mode="json", by_alias=True) for item in result]
    return result.model_dump(mode="json", by_alias=True)


def _error(request_id: str, code: str, message: str) -> CtlResponse:
    return CtlResponse(id=request_id, ok=False, error=CtlError(code=code, message=message))
