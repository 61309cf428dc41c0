"""lastRoute: the channel route that wrote most recently.

Replies never read it: each run carries its own origin (`AgentStart.origin`), so a reply goes
where its turn came from even when surfaces interleave. lastRoute only says where a message
the agent starts on its own (a reminder, a notice) should go: a channel message sets it; a
desktop or web message clears it, so the agent stops talking to the chat once the person has
moved to the desktop or the browser.
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
