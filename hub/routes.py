"""lastRoute: the route for output that no inbound message asked for.

Replies never read it: each run carries its own origin (`AgentStart.origin`), so a reply goes
where its turn came from even when surfaces interleave. lastRoute says where a message the
agent starts on its own (a schedule's reply, a heartbeat, a notice) should go. It is written
in one place, `Hub.submit`: an accepted channel message sets it; an accepted desktop or web
message clears it, so the agent stops talking to the chat once the person has moved to the
desktop or the browser (`None`: deliver to the desktop and web clients only).
"""

from __future__ import annotations

from hub.origin import ChannelRoute


class LastRoute:
    def __init__(self) -> None:
        self.route: ChannelRoute | None = None

    def set(self, route: ChannelRoute) -> None:
        self.route = route

    def clear(self) -> None:
        self.route = None
