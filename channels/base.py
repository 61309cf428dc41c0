"""The channel seam: what a chat-app plugin provides and what the manager gives it.

A plugin owns its transport (polling, webhooks), its access checks and its formatting. It
delivers authorised inbound messages as `ChannelMessage` objects to the callback it was
started with, and sends text back to a `ChannelRoute`. The manager never looks inside a
plugin: a second chat app fits by implementing `ChannelPlugin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, get_args

from channels.outbox_store import Ticket
from hub.attachments import Attachment
from hub.health import SubsystemHealth
from hub.origin import ChannelRoute
from hub.wire import WireModel

Command = Literal[
    "start",
    "new",
    "stop",
    "status",
    "model",
    "compact",
    "queue",
    "sessions",
    "usage",
    "memory",
    "forget",
    "activation",
    "whoami",
    "help",
]
COMMANDS: tuple[Command, ...] = get_args(Command)


class ChannelMessage(WireModel):
    """One authorised inbound message. `command` is set for a known command (then `text`
    holds any arguments); `unknown_command` holds the name of a command the bot does not
    have (answered with help, never a model turn); otherwise `text` is what the user wrote,
    with a group mention of the bot already stripped."""

    route: ChannelRoute
    text: str
    sender_label: str = ""
    command: Command | None = None
    unknown_command: str | None = None
    # A button pressed (its `Choice.data`), instead of a message.
    choice: str | None = None
    # Files sent with the message (`hub.attachments`); `text` is their caption.
    attachments: tuple[Attachment, ...] = ()


class Choice(WireModel):
    """A button under a message: what it says, and what pressing it sends back."""

    label: str
    data: str


InboundCallback = Callable[[ChannelMessage], Awaitable[None]]
# The marks a run leaves on the message that started it: while it works, once it is done.
AckStage = Literal["working", "done"]


class BlockLimits(WireModel):
    """How the manager should chunk replies for this plugin: blocks measure between
    `min_chars` and `max_chars` by the plugin's `measure` (except the last)."""

    min_chars: int
    max_chars: int


class LiveSurface(Protocol):
    """A chat app that can show a reply live, by editing its messages in place."""

    @property
    def edit_interval(self) -> float:
        """Seconds between two edits of a growing message (finished text is not held back)."""
        ...

    def render(self, markdown: str) -> str | None:
        """The message text for this Markdown, or None when it would not fit one message."""
        ...

    async def post(
        self,
        route: ChannelRoute,
        text: str,
        *,
        reply: bool,
        plain: bool,
        ticket: Ticket | None = None,
    ) -> str | None:
        """Send `text` (rendered, or plain) as a new message, exactly once; its id, or None
        when it was given up on. With a `ticket` (an outbox entry), what the attempt needs
        to be resumed after a crash is noted on it first, and a transient failure is retried
        for as long as the plugin's retry time allows, counted from the entry's creation."""
        ...

    async def edit(
        self, route: ChannelRoute, message_id: str, text: str, *, ticket: Ticket | None = None
    ) -> bool:
        """Make the message show `text` (rendered); False when it cannot be edited any more.
        With a `ticket` (a final text), retried like a post with one."""
        ...

    async def delete(self, route: ChannelRoute, message_id: str) -> None:
        """Remove one of the bot's messages (best effort)."""
        ...


class ChannelPlugin(Protocol):
    """A chat app. `name` is the `ChannelRoute.channel` of every route it creates."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> BlockLimits: ...

    def measure(self, text: str) -> int:
        """The size the chat app counts for this Markdown text once formatted."""
        ...

    async def start(self, on_message: InboundCallback) -> None:
        """Begin receiving; authorised messages go to `on_message`, in order per chat."""
        ...

    def probe(self) -> SubsystemHealth:
        """The channel's health (reported under its name)."""
        ...

    async def stop(self) -> None:
        """Stop receiving and release the transport; safe to call twice."""
        ...

    def is_allowed(self, user_id: str) -> bool:
        """Whether this user may reach the agent now (the plugin's access policy)."""
        ...

    async def ask(self, route: ChannelRoute, text: str, choices: list[Choice]) -> str | None:
        """Send `text` (plain) with one button per choice; the message id, or None."""
        ...

    async def settle(self, route: ChannelRoute, message_id: str, text: str) -> None:
        """Replace an `ask` message by `text`, without its buttons (best effort)."""
        ...

    async def reply_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        """Send Markdown `text` (or plain text) as a reply to `route.reply_to_message_id`.

        Returns whether the chat app accepted it. Never raises for delivery failures: the
        plugin retries what is safe to retry and logs what it gave up on. With a `ticket`
        (the outbox entry), it notes its progress there first, resumes from what an earlier
        process noted, and waits for its transport to come up rather than failing."""
        ...

    async def send_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        """Like `reply_text`, as a plain follow-up message in the route's chat."""
        ...

    async def typing(self, route: ChannelRoute) -> None:
        """Show a typing indicator in the route's chat (best effort, short-lived)."""
        ...

    async def react(self, route: ChannelRoute, stage: AckStage | None) -> None:
        """Mark the route's message with the reaction for `stage` (None: remove the mark),
        best effort: the plugin picks (or configures) what each stage looks like."""
        ...

    @property
    def live(self) -> LiveSurface | None:
        """How to show replies live, or None to send them as finished blocks."""
        ...
