"""The connect decision, fail-closed: a hub presents the gateway token, a client its device id
and token (hashed in the AccessStore); a socket with no credentials (`{role: "pair"}` or none)
may only pair (the pairing desk admits it). Anything else is refused with a code."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import NoReturn

import socketio
from pydantic import ValidationError

from gateway.config import GatewayConfig
from gateway.presence import Presence
from gateway.protocol import AUTH_ADAPTER, ClientAuth, HubAuth, Role
from hub.access import AccessStore
from hub.wire import WireModel

log = logging.getLogger("agenthub.gateway")


class Refused(WireModel):
    """Why a connection was refused (the Socket.IO `connect_error` data)."""

    code: str
    message: str


def refuse(code: str, message: str) -> NoReturn:
    """Refuse the connection being decided. Socket.IO clients see `message` as the error text
    and `data` as {code, message}."""
    raise socketio.exceptions.ConnectionRefusedError(
        f"{code}: {message}", Refused(code=code, message=message).model_dump()
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    device_id: str
    role: Role
    label: str


class Admission:
    """Decides who a connecting socket is; `decide()` raises a refusal for anything else."""

    def __init__(self, config: GatewayConfig, access: AccessStore, presence: Presence) -> None:
        self.config = config
        self.access = access
        self.presence = presence

    async def decide(self, auth: object) -> Admitted | None:
        """The device the socket speaks for, or None for a pairing socket."""
        try:
            creds = AUTH_ADAPTER.validate_python(auth if auth is not None else {"role": "pair"})
        except ValidationError:
            refuse("UNAUTHORIZED", "malformed credentials")
        if isinstance(creds, HubAuth):
            return await self._hub(creds)
        if isinstance(creds, ClientAuth):
            return await self._client(creds)
        return None

    async def _hub(self, creds: HubAuth) -> Admitted:
        expected = self.config.gateway_token.get_secret_value().encode()
        if not hmac.compare_digest(creds.token.encode(), expected):
            log.warning("hub connection refused: wrong gateway token")
            refuse("UNAUTHORIZED", "wrong gateway token")
        if await self.presence.lookup(creds.device_id) is not None:
            log.warning("hub %s refused: already connected", creds.device_id)
            refuse("DUPLICATE_DEVICE", f"device {creds.device_id} is already connected")
        return Admitted(creds.device_id, "hub", "hub")

    async def _client(self, creds: ClientAuth) -> Admitted:
        if not self.access.verify_device(creds.device_id, creds.token):
            log.info("client connection refused: unknown device or wrong token")
            refuse("UNAUTHORIZED", "unknown device or wrong token; pair again")
        existing = await self.presence.lookup(creds.device_id)
        if existing is not None and existing.role != "client":
            refuse("DUPLICATE_DEVICE", f"device id {creds.device_id} is taken")
        if existing is not None and existing.connections >= self.config.max_connections_per_device:
            refuse("TOO_MANY_CONNECTIONS", "this device has too many open connections")
        label = next((d.label for d in self.access.devices() if d.device_id == creds.device_id), "")
        return Admitted(creds.device_id, "client", label)
