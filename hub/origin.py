"""Who wrote a turn, and where its reply belongs.

The origin travels with the run it starts (see `AgentStart.origin`), so reply routing is
bound to the run instead of being read from shared state when the reply is sent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.wire import WireModel

Surface = Literal["desktop", "web", "channel"]
ChatKind = Literal["private", "group"]
SURFACES: tuple[Surface, ...] = ("desktop", "web", "channel")


class ChannelRoute(WireModel):
    """Where a channel reply goes: the plugin, the chat, and the message to reply to.

    `chat_kind` and `thread_id` (a forum topic) decide the session key (`hub.scopes`); a
    plugin that leaves `chat_kind` out is taken as a direct (private) chat."""

    channel: str
    chat_id: str
    reply_to_message_id: str | None = None
    thread_id: str | None = None
    user_id: str | None = None
    chat_kind: ChatKind | None = None


class Origin(WireModel):
    """The surface that wrote a turn. `route` is set only for channel turns."""

    surface: Surface
    device_id: str | None = None
    # Chat ids and message ids are delivery details for the channel only: never serialised.
    route: ChannelRoute | None = Field(default=None, exclude=True)
