"""The sockets of registered devices on this node: who each socket is, each device's sockets,
and each device's frame budget (one token bucket per device, shared by its sockets)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.config import GatewayConfig
from gateway.protocol import DeviceInfo, Role
from gateway.ratelimit import TokenBucket


@dataclass(slots=True)
class Conn:
    device_id: str
    role: Role
    label: str
    connected_at: float = field(default_factory=time.time)


class ConnectionTable:
    """Registered sockets of this node (pairing sockets are the pairing desk's)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._conns: dict[str, Conn] = {}
        self._sids: dict[str, set[str]] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def sids(self) -> list[str]:
        return list(self._conns)

    def get(self, sid: str) -> Conn | None:
        return self._conns.get(sid)

    def hubs(self) -> int:
        return sum(1 for c in self._conns.values() if c.role == "hub")

    def add(self, sid: str, device_id: str, role: Role, label: str) -> None:
        self._conns[sid] = Conn(device_id, role, label)
        self._sids.setdefault(device_id, set()).add(sid)
        if device_id in self._buckets:
            return
        if role == "client":
            self._buckets[device_id] = TokenBucket(
                self.config.client_rate, self.config.client_burst
            )
        elif self.config.hub_rate is not None:
            self._buckets[device_id] = TokenBucket(self.config.hub_rate, self.config.hub_burst)

    def forget(self, sid: str) -> Conn | None:
        conn = self._conns.pop(sid, None)
        if conn is not None:
            sids = self._sids.get(conn.device_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._sids[conn.device_id]
                    self._buckets.pop(conn.device_id, None)
        return conn

    def take(self, device_id: str) -> bool:
        """Spend one frame of the device's budget; False when it is empty."""
        bucket = self._buckets.get(device_id)
        return bucket is None or bucket.take()

    def device_sids(self, device_id: str) -> set[str]:
        return set(self._sids.get(device_id, ()))

    def lookup(self, device_id: str) -> DeviceInfo | None:
        sids = self._sids.get(device_id)
        if not sids:
            return None
        conn = self._conns[next(iter(sids))]
        return DeviceInfo(
            device_id=device_id, role=conn.role, label=conn.label, connections=len(sids)
        )

    def devices(self) -> list[DeviceInfo]:
        found = (self.lookup(device_id) for device_id in sorted(self._sids))
        return [d for d in found if d is not None]
