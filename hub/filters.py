"""The one event filter table: which agent events each surface receives.

Every surface asks `forward(surface, event)`; none writes its own filter.

| event                          | desktop        | web            | channel        |
|--------------------------------|----------------|----------------|----------------|
| agent_start / agent_end        | yes            | yes            | lifecycle only |
| message_start / update / end   | assistant only | assistant only | assistant only |
| tool_execution_start / end     | yes            | yes            | status only    |
| compaction_start / end         | yes            | yes            | no             |
| agent_error                    | yes            | yes            | as text        |
| approval_request / resolved    | yes            | yes            | yes            |
| session_deleted                | yes            | yes            | no             |
| user message events            | no             | no             | no             |

`LIFECYCLE` rows reach the channel manager so it can bind a run to its route and stop the
typing indicator; they are never shown in the chat. `AS_TEXT` means the surface renders the
event as plain text (`[Error] …`). `STATUS` means only the tool's name reaches the chat, as
a short status line under a live reply while the tool runs: arguments and results stay
private. A channel renders approval events itself (buttons on the chat where the run
started, edited to show the outcome), never as raw events. `session_deleted` updates the
session lists of the desktop and web clients (a guest's only when it could see the session);
a chat has no list to update.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

from hub.events import AgentEvent, EventType, MessageEnd, MessageStart, MessageUpdate
from hub.origin import Surface


class Forward(Enum):
    YES = "yes"
    NO = "no"
    ASSISTANT_ONLY = "assistant_only"
    AS_TEXT = "as_text"
    LIFECYCLE = "lifecycle"
    STATUS = "status"


_Y, _N, _A, _T, _L, _S = (
    Forward.YES,
    Forward.NO,
    Forward.ASSISTANT_ONLY,
    Forward.AS_TEXT,
    Forward.LIFECYCLE,
    Forward.STATUS,
)

FILTER_TABLE: Final[Mapping[EventType, Mapping[Surface, Forward]]] = MappingProxyType(
    {
        "agent_start": {"desktop": _Y, "web": _Y, "channel": _L},
        "agent_end": {"desktop": _Y, "web": _Y, "channel": _L},
        "message_start": {"desktop": _A, "web": _A, "channel": _A},
        "message_update": {"desktop": _A, "web": _A, "channel": _A},
        "message_end": {"desktop": _A, "web": _A, "channel": _A},
        "tool_execution_start": {"desktop": _Y, "web": _Y, "channel": _S},
        "tool_execution_end": {"desktop": _Y, "web": _Y, "channel": _S},
        "compaction_start": {"desktop": _Y, "web": _Y, "channel": _N},
        "compaction_end": {"desktop": _Y, "web": _Y, "channel": _N},
        "agent_error": {"desktop": _Y, "web": _Y, "channel": _T},
        "approval_request": {"desktop": _Y, "web": _Y, "channel": _Y},
        "approval_resolved": {"desktop": _Y, "web": _Y, "channel": _Y},
        "session_deleted": {"desktop": _Y, "web": _Y, "channel": _N},
    }
)


def rule(surface: Surface, event: AgentEvent) -> Forward:
    """The table's cell for this event on this surface, with `ASSISTANT_ONLY` resolved."""
    cell = FILTER_TABLE[event.type][surface]
    if cell is Forward.ASSISTANT_ONLY:
        assert isinstance(event, MessageStart | MessageUpdate | MessageEnd)
        return Forward.YES if event.role == "assistant" else Forward.NO
    return cell


def forward(surface: Surface, event: AgentEvent) -> bool:
    """Whether the surface receives the event at all (any cell but `NO`)."""
    return rule(surface, event) is not Forward.NO
