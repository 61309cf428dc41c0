"""The owner's API tokens: device records made without pairing, for OpenAI-compatible
clients and other programs (`agenthub ctl tokens new|list|revoke`).

A token is shown once, when made; only its SHA-256 digest is kept (`hub.access`). Revoking
one refuses it at once and disconnects its device.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from hub.access import API_DEVICE_PREFIX
from hub.errors import CodedError
from hub.requests.table import Caller, NoParams, RequestHost, request
from hub.wire import WireModel

Label = Annotated[str, StringConstraints(max_length=100)]
TokenId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TokenNewParams(WireModel):
    label: Label = ""


class TokenIdParams(WireModel):
    device_id: TokenId


class NewToken(WireModel):
    """The token itself is in this answer only."""

    device_id: str
    label: str
    token: str


class TokenInfo(WireModel):
    device_id: str
    label: str
    created_at: float


class TokensAnswer(WireModel):
    tokens: list[TokenInfo]


class TokenRevoked(WireModel):
    device_id: str
    revoked: bool


@request("tokens.new", TokenNewParams, NewToken, owner_only=True)
async def tokens_new(host: RequestHost, caller: Caller, params: TokenNewParams) -> NewToken:
    issued = host.access.issue_token(params.label.strip() or "API token")
    label = next(d.label for d in host.access.devices() if d.device_id == issued.device_id)
    return NewToken(device_id=issued.device_id, label=label, token=issued.token)


@request("tokens.list", NoParams, TokensAnswer, owner_only=True)
async def tokens_list(host: RequestHost, caller: Caller, params: NoParams) -> TokensAnswer:
    return TokensAnswer(
        tokens=[
            TokenInfo(device_id=d.device_id, label=d.label, created_at=d.paired_at)
            for d in host.access.devices()
            if d.device_id.startswith(API_DEVICE_PREFIX)
        ]
    )


@request("tokens.revoke", TokenIdParams, TokenRevoked, owner_only=True)
async def tokens_revoke(host: RequestHost, caller: Caller, params: TokenIdParams) -> TokenRevoked:
    if not params.device_id.startswith(API_DEVICE_PREFIX) or not host.access.revoke(
        params.device_id
    ):
        raise CodedError(
            f"no API token {params.device_id!r}; `agenthub ctl tokens list` shows them",
            "unknown_device",
        )
    return TokenRevoked(device_id=params.device_id, revoked=True)
