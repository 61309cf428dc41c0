"""Session keys: which conversation an inbound message belongs to, by one rule set.

Rules, first match wins (see docs/sessions.md, "Session keys"):
1. Group chats get a key per chat, per topic in forum groups (`telegram:group:<chat>` or
   `telegram:group:<chat>:topic:<id>`), never `main`, whoever writes.
2. The owner's surfaces share `main`: the desktop, paired web devices (unless listed as
   guests), and the channel identities in `owners` (or linked to one of them).
3. Other direct-message senders, per `dm_scope`:
   - `per-channel-peer` (the default once `owners` is set): one session per sender per
     channel, `telegram:dm:<userId>`. Safe for a bot with several allowed users: nobody reads
     or steers anybody else's conversation, and it needs no identity links.
   - `per-peer`: one session per person across channels, `peer:<name>`, where `identity_links`
     name the person (an unlinked sender is their own person).
   - `main`: everyone shares the owner's conversation. The default while `owners` is not
     configured, so a single-user setup keeps talking in `main` as before; configure
     `owners` to keep other people out of it.
Desktop and web writes name their key explicitly (default `main`); a guest may only write to
sessions it takes part in.

`identity_links` map one person's ids on several surfaces to one name:
`{"alice": ["telegram:111", "web:d-7"]}`. An id listed under two names (a loop between
identities), or naming a surface the hub does not know, is a configuration error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from hub.errors import CodedError
from hub.events import MAIN_SESSION
from hub.origin import ChannelRoute, Origin
from hub.wire import WireModel

DmScope = Literal["main", "per-peer", "per-channel-peer"]
DEFAULT_DM_SCOPE: DmScope = "per-channel-peer"
# Surfaces an identity may name: `web:<deviceId>`, and the chat channels.
IDENTITY_SURFACES = frozenset({"web", "telegram"})

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,159}")
_IDENTITY = re.compile(r"([a-z]+):([A-Za-z0-9._@+=-]{1,128})")
_GROUP_KEY = re.compile(r"([a-z]+):group:([^:]+)(?::topic:.+)?")
_DM_KEY = re.compile(r"([a-z]+):dm:(.+)")
OWNER_MEMORY = "owner"


class InvalidSessionKeyError(CodedError):
    code = "invalid_session_key"


def check_session_key(key: str) -> str:
    """A session key is 1-160 characters of `[A-Za-z0-9._:@+=-]`, starting with a letter or
    digit; raises `InvalidSessionKeyError` otherwise."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidSessionKeyError(
            "a session key is 1-160 letters, digits or ._:@+=- (starting with a letter or digit)"
        )
    return key


class ConversationConfig(WireModel):
    """How inbound messages map to sessions, and how many runs go at once (settings
    `owners`, `dm_scope`, `[identity_links]`, `max_concurrent_runs`, debounce)."""

    # None: not configured (single-user setups): DMs share `main` unless `dm_scope` says.
    owners: frozenset[str] | None = None
    dm_scope: DmScope | None = None
    identity_links: dict[str, list[str]] = Field(default_factory=dict)
    # Web devices are the owner's (pairing is approved by the owner) unless listed here.
    guest_devices: frozenset[str] = frozenset()
    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] = 4
    # Channel bursts: a message waits this long for the next one, at most `debounce_cap`.
    debounce_idle: Annotated[float, Field(ge=0, le=60)] = 0.5
    debounce_cap: Annotated[float, Field(ge=0, le=300)] = 2.0

    @field_validator("owners")
    @classmethod
    def _owners_are_identities(cls, owners: frozenset[str] | None) -> frozenset[str] | None:
        for owner in owners or ():
            _check_identity(owner)
        return owners

    @model_validator(mode="after")
    def _links_form_no_loop(self) -> ConversationConfig:
        seen: dict[str, str] = {}
        for name, ids in self.identity_links.items():
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
                raise ValueError(f"identity_links: {name!r} is not a name ([A-Za-z0-9._-])")
            for identity in ids:
                _check_identity(identity)
                if identity in seen and seen[identity] != name:
                    raise ValueError(
                        f"identity_links: {identity} is linked to both {seen[identity]!r} and "
                        f"{name!r}; an id belongs to one person"
                    )
                seen[identity] = name
        return self

    @property
    def scope(self) -> DmScope:
        """The DM scope in force: as configured, else `main` without owners (the single-user
        behaviour), else the safe `per-channel-peer`."""
        if self.dm_scope is not None:
            return self.dm_scope
        return "main" if self.owners is None else DEFAULT_DM_SCOPE

    def person(self, identity: str) -> str | None:
        """The linked name of `identity`, if any."""
        for name, ids in self.identity_links.items():
            if identity in ids:
                return name
        return None

    def same_person(self, identity: str) -> set[str]:
        """Every id of the person behind `identity` (itself included)."""
        name = self.person(identity)
        return {identity, *self.identity_links.get(name, [])} if name else {identity}

    def is_owner(self, identity: str) -> bool:
        return bool(self.same_person(identity) & (self.owners or frozenset()))


def _check_identity(identity: str) -> None:
    match = _IDENTITY.fullmatch(identity)
    if match is None:
        raise ValueError(f"{identity!r} is not an identity like telegram:111 or web:<deviceId>")
    if match.group(1) not in IDENTITY_SURFACES:
        surfaces = ", ".join(sorted(IDENTITY_SURFACES))
        raise ValueError(f"{identity!r} names an unknown surface (known: {surfaces})")


class Viewer(WireModel):
    """Who writes or asks: the surface, the device (web) or channel identity, and whether
    it is the owner. It decides which sessions are visible."""

    surface: Literal["desktop", "web", "control", "channel"]
    device_id: str | None = None
    identity: str | None = None
    owner: bool = False

    @property
    def reader_id(self) -> str:
        """Whose read marker this viewer moves: the device, the identity, or the surface."""
        if self.device_id:
            return f"web:{self.device_id}"
        return self.identity or self.surface


def identity_of(origin: Origin) -> str | None:
    """`<channel>:<userId>` for a channel message, `web:<deviceId>` for a web one."""
    if origin.route is not None and origin.route.user_id:
        return f"{origin.route.channel}:{origin.route.user_id}"
    if origin.surface == "web" and origin.device_id:
        return f"web:{origin.device_id}"
    return None


def viewer_of(origin: Origin, config: ConversationConfig) -> Viewer:
    identity = identity_of(origin)
    if origin.surface == "desktop":
        owner = True
    elif origin.surface == "web":
        owner = origin.device_id not in config.guest_devices or (
            identity is not None and config.is_owner(identity)
        )
    else:
        owner = identity is not None and config.is_owner(identity)
    return Viewer(
        surface=origin.surface, device_id=origin.device_id, identity=identity, owner=owner
    )


def channel_session_key(route: ChannelRoute, config: ConversationConfig) -> str:
    """The session key of a channel message (rules 1-3 of the module doc)."""
    if route.chat_kind == "group":
        key = f"{route.channel}:group:{route.chat_id}"
        return f"{key}:topic:{route.thread_id}" if route.thread_id else key
    identity = f"{route.channel}:{route.user_id}"
    scope = config.scope
    if config.is_owner(identity) or scope == "main":
        return MAIN_SESSION
    if scope == "per-peer":
        return f"peer:{config.person(identity) or identity}"
    return f"{route.channel}:dm:{route.user_id}"


def memory_scope(session_key: str, members: Iterable[str], config: ConversationConfig) -> str:
    """Whose notes (`hub.tools.memory`) a session's runs keep and see, following the session
    rules so notes never reach anyone the conversation would not: a group chat's own (all its
    topics), a direct-message sender's own (their person's, when linked), the owner's in
    `main` and in the sessions the owner's surfaces name, unless a guest device wrote there
    (then the guest's)."""
    if group := _GROUP_KEY.fullmatch(session_key):
        return f"{group[1]}:group:{group[2]}"
    if dm := _DM_KEY.fullmatch(session_key):
        return _person_memory(f"{dm[1]}:{dm[2]}", config)
    if session_key.startswith("peer:"):
        person = session_key.removeprefix("peer:")
        # An unlinked sender is their own person (`peer:telegram:5`): the same notes as in
        # their direct-message session, whichever `dm_scope` made the key.
        return _person_memory(person, config) if ":" in person else session_key
    if session_key == MAIN_SESSION:
        return OWNER_MEMORY
    for member in members:
        if member.startswith("web:") and member.removeprefix("web:") in config.guest_devices:
            return _person_memory(member, config)
    return OWNER_MEMORY


def _person_memory(identity: str, config: ConversationConfig) -> str:
    if config.is_owner(identity):
        return OWNER_MEMORY
    person = config.person(identity)
    return f"peer:{person}" if person else identity
