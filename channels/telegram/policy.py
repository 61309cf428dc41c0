"""Who may talk to the agent through Telegram: the DM policy.

- `pairing` (default): allowlisted users, and users the owner approved. Anyone else who
  writes in a private chat gets a pairing code (an `AccessStore` request) and nothing else;
  the owner approves with `agenthub ctl pair approve CODE`.
- `allowlist`: only `allowed_users` (an empty list lets nobody in).
- `open`: anyone.
- `disabled`: nobody.

Group messages use the same check, but an unknown user in a group is ignored: a pairing code
is only ever shown in a private chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.telegram.config import DmPolicy
from hub.access import AccessError, AccessStore

CHANNEL = "telegram"


def subject(user_id: int | str) -> str:
    """The AccessStore subject of a Telegram user."""
    return f"{CHANNEL}:{user_id}"


@dataclass(frozen=True, slots=True)
class Allowed:
    pass


@dataclass(frozen=True, slots=True)
class NeedsPairing:
    """Show this code to the user; the owner approves it."""

    code: str


@dataclass(frozen=True, slots=True)
class Denied:
    """`reason` is safe to show the user, or empty to stay silent."""

    reason: str


Verdict = Allowed | NeedsPairing | Denied


class AccessPolicy:
    def __init__(self, policy: DmPolicy, allowed_users: list[int], store: AccessStore) -> None:
        self.policy = policy
        self.allowed_users = frozenset(str(u) for u in allowed_users)
        self.store = store

    def is_allowed(self, user_id: str) -> bool:
        if not user_id or self.policy == "disabled":
            return False
        if self.policy == "open":
            return True
        if user_id in self.allowed_users:
            return True
        return self.policy == "pairing" and self.store.is_channel_user_approved(CHANNEL, user_id)

    def check_private(self, user_id: str, label: str) -> Verdict:
        """The verdict for a private-chat message (may create a pairing request)."""
        if self.is_allowed(user_id):
            return Allowed()
        if self.policy != "pairing" or not user_id:
            return Denied("")
        try:
            pending = self.store.request("channel", subject(user_id), label)
        except AccessError as exc:
            return Denied(f"Access requests are not accepted right now: {exc.message}.")
        return NeedsPairing(pending.code)
