"""Who may reach the agent: paired devices, approved chat users, and pairing codes.

Shared by every surface (the gateway's web devices, Telegram users) and by the owner's tools
(`agenthub ctl pair …`, the desktop window), so it lives in the core.

Two ways in, both single use and short-lived:
- an *invite*: the owner makes a code (`serve` prints a URL carrying one in its fragment,
  `ctl pair new` prints another); a browser that presents it gets a device token at once;
- a *request*: someone unknown asks (a Telegram user writes to the bot, a browser without a
  code asks for access); they get a code to show the owner, who approves or denies it.

Invite codes are stored only as salted scrypt hashes (shown once, when made).
Device tokens are random 256-bit strings, stored only as SHA-256 digests and compared in
constant time. The file `<data-dir>/access.json` is written atomically with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from hub.errors import CodedError
from hub.wire import StateModel, WireModel

log = logging.getLogger("agenthub.access")

# No 0/O/1/I/L: codes are read aloud and typed from a phone screen.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
INVITE_TTL = 600.0
REQUEST_TTL = 3600.0
MAX_PENDING_REQUESTS = 10
API_DEVICE_PREFIX = "api-"

RequestKind = Literal["device", "channel"]


class AccessError(CodedError):
    """A pairing step was refused."""


class Invite(WireModel):
    """An invite just made. Its code is shown this once: only a salted scrypt hash is kept."""

    code: str
    expires_at: float


class UnusedInvite(WireModel):
    """An unused invite as the owner may list it (the code itself is not kept)."""

    expires_at: float


class _StoredInvite(WireModel):
    salt: str
    code_scrypt: str
    expires_at: float

    @model_validator(mode="before")
    @classmethod
    def _hash_a_plain_code(cls, data: object) -> object:
        # access.json files written before codes were hashed hold them in plain text.
        if isinstance(data, dict) and "code" in data:
            plain = str(data["code"])
            data = {k: v for k, v in data.items() if k != "code"}
            data.update(_hashed_code(plain, None))
        return data

    def matches(self, code: str) -> bool:
        expected = _hashed_code(code, self.salt)["codeScrypt"]
        return hmac.compare_digest(expected, self.code_scrypt)


def _hashed_code(code: str, salt: str | None) -> dict[str, str]:
    """The stored form of an invite code. scrypt, not SHA-256: an 8-character code is a
    small space, which a plain hash would give away to anyone who can read the file."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.scrypt(
        normalise_code(code).encode(), salt=bytes.fromhex(salt), n=2**12, r=8, p=1, dklen=32
    )
    return {"salt": salt, "codeScrypt": digest.hex()}


class PendingRequest(WireModel):
    """Someone asking for access. `subject` is a device id or `channel:user_id`."""

    code: str
    kind: RequestKind
    subject: str
    label: str
    created_at: float
    expires_at: float


class DeviceRecord(WireModel):
    device_id: str
    label: str
    token_sha256: str
    paired_at: float
    last_seen: float | None = None


class ChannelUser(WireModel):
    """An approved chat user. `owner`: approved as the hub's owner (their direct messages share
    the owner's `main` conversation) rather than as a guest with a conversation of their own.
    Records from before the choice existed were the single user of a one-person setup: owner."""

    channel: str
    user_id: str
    label: str
    approved_at: float
    owner: bool = True


class IssuedDevice(WireModel):
    """A newly paired device and the token it must present from now on (shown once)."""

    device_id: str
    token: str


class Decision(WireModel):
    """The outcome of approve/deny, told to whoever waits on the request."""

    request: PendingRequest
    approved: bool
    issued: IssuedDevice | None = None


class _AccessFile(StateModel):
    version: int = 1
    invites: list[_StoredInvite] = Field(default_factory=list)
    requests: list[PendingRequest] = Field(default_factory=list)
    devices: list[DeviceRecord] = Field(default_factory=list)
    channel_users: list[ChannelUser] = Field(default_factory=list)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


Listener = Callable[[str, Decision | DeviceRecord], None]


class AccessStore:
    """Devices, approved channel users, invites and pending requests, persisted."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._state = self._load()
        self._listeners: list[Listener] = []

    # -- listeners --------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear `("decided", Decision)` and `("revoked", DeviceRecord)`; returns unlisten."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _tell(self, what: str, payload: Decision | DeviceRecord) -> None:
        for listener in list(self._listeners):
            try:
                listener(what, payload)
            except Exception:
                log.exception("access listener failed on %s", what)

    # -- invites ----------------------------------------------------------------------------

    def create_invite(self, ttl: float = INVITE_TTL) -> Invite:
        self._expire()
        invite = Invite(code=new_code(), expires_at=self._clock() + ttl)
        stored = _hashed_code(invite.code, None)
        self._state.invites.append(
            _StoredInvite(
                salt=stored["salt"], code_scrypt=stored["codeScrypt"], expires_at=invite.expires_at
            )
        )
        self._save()
        return invite

    def redeem_invite(self, code: str, label: str) -> IssuedDevice:
        """Pair a device with an invite code; the code is spent whether or not it matches."""
        self._expire()
        for invite in self._state.invites:
            if invite.matches(code):
                self._state.invites.remove(invite)
                return self._issue_device(label)
        raise AccessError("pairing code is unknown, used or expired", "invalid_code")

    # -- requests ---------------------------------------------------------------------------

    def request(self, kind: RequestKind, subject: str, label: str) -> PendingRequest:
        """Ask for access. Asking again returns the same pending request (same code)."""
        self._expire()
        for pending in self._state.requests:
            if pending.kind == kind and pending.subject == subject:
                return pending
        if len(self._state.requests) >= MAX_PENDING_REQUESTS:
            raise AccessError("too many pairing requests are waiting", "too_many_requests")
        now = self._clock()
        pending = PendingRequest(
            code=new_code(),
            kind=kind,
            subject=subject,
            label=label[:100],
            created_at=now,
            expires_at=now + REQUEST_TTL,
        )
        self._state.requests.append(pending)
        self._save()
        log.info("pairing requested: %s %s (%s)", kind, subject, label[:100])
        return pending

    def pending(self) -> list[PendingRequest]:
        self._expire()
        return list(self._state.requests)

    def invites(self) -> list[UnusedInvite]:
        self._expire()
        return [UnusedInvite(expires_at=i.expires_at) for i in self._state.invites]

    def approve(self, code: str, *, owner: bool = False) -> Decision:
        """Approve a pending request; a chat user as the owner or (by default) as a guest."""
        return self._decide(code, approved=True, owner=owner)

    def deny(self, code: str) -> Decision:
        return self._decide(code, approved=False)

    def _decide(self, code: str, *, approved: bool, owner: bool = False) -> Decision:
        self._expire()
        wanted = normalise_code(code)
        pending = next((r for r in self._state.requests if r.code == wanted), None)
        if pending is None:
            raise AccessError(f"no pending request has code {wanted}", "invalid_code")
        self._state.requests.remove(pending)
        issued = None
        if approved and pending.kind == "device":
            issued = self._issue_device(pending.label, device_id=pending.subject)
        elif approved:
            channel, _, user_id = pending.subject.partition(":")
            self._state.channel_users.append(
                ChannelUser(
                    channel=channel,
                    user_id=user_id,
                    label=pending.label,
                    approved_at=self._clock(),
                    owner=owner,
                )
            )
        self._save()
        decision = Decision(request=pending, approved=approved, issued=issued)
        log.info(
            "pairing %s: %s %s", "approved" if approved else "denied", pending.kind, pending.subject
        )
        self._tell("decided", decision)
        return decision

    # -- devices ----------------------------------------------------------------------------

    def _issue_device(self, label: str, device_id: str | None = None) -> IssuedDevice:
        device_id = device_id or f"web-{secrets.token_hex(4)}"
        token = secrets.token_urlsafe(32)
        self._state.devices = [d for d in self._state.devices if d.device_id != device_id]
        self._state.devices.append(
            DeviceRecord(
                device_id=device_id,
                label=label[:100] or device_id,
                token_sha256=_digest(token),
                paired_at=self._clock(),
            )
        )
        self._save()
        log.info("device paired: %s", device_id)
        return IssuedDevice(device_id=device_id, token=token)

    def issue_token(self, label: str) -> IssuedDevice:
        """A device for API clients, issued without pairing (`agenthub ctl tokens new`): an
        `api-` id whose token is shown this once, revoked like any device."""
        return self._issue_device(label, device_id=f"{API_DEVICE_PREFIX}{secrets.token_hex(4)}")

    def device_for_token(self, token: str) -> DeviceRecord | None:
        """The device whose token this is (API clients present the token alone)."""
        digest = _digest(token)
        return next(
            (d for d in self._state.devices if hmac.compare_digest(d.token_sha256, digest)), None
        )

    def devices(self) -> list[DeviceRecord]:
        return list(self._state.devices)

    def verify_device(self, device_id: str, token: str) -> bool:
        record = next((d for d in self._state.devices if d.device_id == device_id), None)
        digest = _digest(token)
        # Compare even when the device is unknown, so timing says nothing about which ids exist.
        expected = record.token_sha256 if record else "0" * len(digest)
        return hmac.compare_digest(expected, digest) and record is not None

    def revoke(self, device_id: str) -> bool:
        record = next((d for d in self._state.devices if d.device_id == device_id), None)
        if record is None:
            return False
        self._state.devices.remove(record)
        self._save()
        log.info("device revoked: %s", device_id)
        self._tell("revoked", record)
        return True

    # -- channel users ----------------------------------------------------------------------

    def channel_users(self) -> list[ChannelUser]:
        return list(self._state.channel_users)

    def is_channel_user_approved(self, channel: str, user_id: str) -> bool:
        return any(u.channel == channel and u.user_id == user_id for u in self._state.channel_users)

    def owner_identities(self) -> frozenset[str]:
        """`<channel>:<userId>` of every chat user approved as the owner."""
        return frozenset(f"{u.channel}:{u.user_id}" for u in self._state.channel_users if u.owner)

    def is_channel_owner(self, channel: str, user_id: str) -> bool:
        """Approved as the owner (see `ChannelUser.owner`)."""
        return any(
            u.channel == channel and u.user_id == user_id and u.owner
            for u in self._state.channel_users
        )

    # -- persistence ------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self._clock()
        invites = [i for i in self._state.invites if i.expires_at > now]
        requests = [r for r in self._state.requests if r.expires_at > now]
        if len(invites) != len(self._state.invites) or len(requests) != len(self._state.requests):
            self._state.invites, self._state.requests = invites, requests
            self._save()

    def _load(self) -> _AccessFile:
        if not self.path.exists():
            return _AccessFile()
        try:
            return _AccessFile.model_validate_json(self.path.read_bytes())
        except ValidationError as exc:
            # Fail closed: an unreadable file grants nothing; keep it for the owner to inspect.
            broken = self.path.with_suffix(".broken")
            os.replace(self.path, broken)
            log.error("%s is unreadable (%s); moved to %s, starting empty", self.path, exc, broken)
            return _AccessFile()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self._state.model_dump_json(indent=1).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
