"""Bindings: which agent an inbound chat message goes to.

Rules are tried in order and the first whose fields all match wins; a field left out matches
anything. No match: the default agent (the first configured). Desktop and web clients name
their agent themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.origin import ChannelRoute
from hub.wire import WireModel


class Binding(WireModel):
    """`[[bindings]]`: `agent`, and any of `channel` (e.g. telegram), `chat` (chat id),
    `user` (sender id), `topic` (forum topic id)."""

    agent: str
    channel: str | None = None
    chat: str | None = None
    user: str | None = None
    topic: str | None = None

    def matches(self, route: ChannelRoute) -> bool:
        wanted = (
            (self.channel, route.channel),
            (self.chat, route.chat_id),
            (self.user, route.user_id),
            (self.topic, route.thread_id),
        )
        return all(rule is None or rule == actual for rule, actual in wanted)


def bound_agent(bindings: Sequence[Binding], route: ChannelRoute, default: str) -> str:
    return next((b.agent for b in bindings if b.matches(route)), default)
