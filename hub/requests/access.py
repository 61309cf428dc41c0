"""The owner's requests about access: pairing requests and invites, paired devices."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from hub.access import Invite, PendingRequest, UnusedInvite
from hub.errors import CodedError
from hub.requests.table import Caller, NoParams, RequestHost, request
from hub.wire import WireModel

PairingCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class CodeParams(WireModel):
    code: PairingCode


class ApproveParams(WireModel):
    """`owner`: a chat user joins the owner's `main` conversation instead of getting their own."""

    code: PairingCode
    owner: bool = False


class DeviceParams(WireModel):
    device_id: DeviceId


class PairListAnswer(WireModel):
    pending: list[PendingRequest]
    invites: list[UnusedInvite]


class PairNewAnswer(WireModel):
    invite: Invite
    url: str | None = None


class DecisionAnswer(WireModel):
    """An approve/deny outcome. It has no token field on purpose: the device that asked
    receives its token through its own pairing socket, never through whoever decided."""

    code: str
    kind: str
    subject: str
    label: str
    approved: bool
    owner: bool = False


class DeviceInfo(WireModel):
    device_id: str
    label: str
    paired_at: float
    connected: bool
    # Listed in `guest_devices`: sees only its own sessions (docs/sessions.md).
    guest: bool = False


class DevicesAnswer(WireModel):
    devices: list[DeviceInfo]


class RevokeAnswer(WireModel):
    device_id: str
    revoked: bool


@request("pair.list", NoParams, PairListAnswer, owner_only=True)
async def pair_list(host: RequestHost, caller: Caller, params: NoParams) -> PairListAnswer:
    return PairListAnswer(pending=host.access.pending(), invites=host.access.invites())


@request("pair.new", NoParams, PairNewAnswer, owner_only=True)
async def pair_new(host: RequestHost, caller: Caller, params: NoParams) -> PairNewAnswer:
    invite = host.access.create_invite()
    return PairNewAnswer(invite=invite, url=host.invite_url(invite.code))


async def _decide(
    host: RequestHost, code: str, *, approved: bool, owner: bool = False
) -> DecisionAnswer:
    decision = host.access.approve(code, owner=owner) if approved else host.access.deny(code)
    pending = decision.request
    return DecisionAnswer(
        code=pending.code,
        kind=pending.kind,
        subject=pending.subject,
        label=pending.label,
        approved=decision.approved,
        owner=decision.approved and owner and pending.kind == "channel",
    )


@request("pair.approve", ApproveParams, DecisionAnswer, owner_only=True)
async def pair_approve(host: RequestHost, caller: Caller, params: ApproveParams) -> DecisionAnswer:
    return await _decide(host, params.code, approved=True, owner=params.owner)


@request("pair.deny", CodeParams, DecisionAnswer, owner_only=True)
async def pair_deny(host: RequestHost, caller: Caller, params: CodeParams) -> DecisionAnswer:
    return await _decide(host, params.code, approved=False)


@request("devices.list", NoParams, DevicesAnswer, owner_only=True)
async def devices_list(host: RequestHost, caller: Caller, params: NoParams) -> DevicesAnswer:
    online = {d.device_id for d in await host.connected_devices()}
    guests = host.hub.conversation_config.guest_devices if host.hub else frozenset()
    return DevicesAnswer(
        devices=[
            DeviceInfo(
                device_id=d.device_id,
                label=d.label,
                paired_at=d.paired_at,
                connected=d.device_id in online,
                guest=d.device_id in guests,
            )
            for d in host.access.devices()
        ]
    )


@request("devices.revoke", DeviceParams, RevokeAnswer, owner_only=True)
async def devices_revoke(host: RequestHost, caller: Caller, params: DeviceParams) -> RevokeAnswer:
    if not host.access.revoke(params.device_id):
        raise CodedError(f"no paired device {params.device_id!r}", "unknown_device")
    return RevokeAnswer(device_id=params.device_id, revoked=True)
