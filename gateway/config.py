"""The gateway's own configuration, built by the composition root (app/) from Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


class GatewayConfig(BaseModel):
    """Where the gateway listens and the limits it enforces on every device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    gateway_token: SecretStr = Field(description="the secret hub devices present")
    redis_url: str | None = Field(default=None, description="join other nodes through Redis")
    redis_prefix: str = "agenthub:gw"
    # 8 MiB: a 5 MB phone photo is about 6.7 MiB as base64 in a `message` frame.
    max_frame_bytes: int = Field(default=8 * 1_048_576, ge=1024)
    client_rate: float = Field(default=20.0, gt=0, description="frames per second, per device")
    client_burst: int = Field(default=40, ge=1)
    hub_rate: float | None = Field(default=None, gt=0, description="None: hubs are not limited")
    hub_burst: int = Field(default=2000, ge=1)
    pair_attempts_per_minute: int = Field(
        default=6, ge=1, description="pairing attempts per client address"
    )
    pair_attempts_per_minute_total: int = Field(
        default=30, ge=1, description="pairing attempts from all addresses together"
    )
    max_pairing_sockets: int = Field(default=100, ge=1)
    max_pairing_sockets_per_address: int = Field(default=4, ge=1)
    max_connections_per_device: int = Field(default=8, ge=1)
    ping_interval: float = Field(default=15.0, gt=0)
    ping_timeout: float = Field(default=10.0, gt=0)
    public_url: str | None = Field(
        default=None,
        description="where browsers reach this gateway (e.g. https://chat.example.com behind a"
        " proxy): its origin and host are allowed besides loopback",
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=list, description="extra browser origins allowed to connect"
    )
    web_root: Path = WEB_ROOT
