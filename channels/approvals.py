"""Approvals in chat apps: a tool call waiting for a person is asked in the chat its run came
from, with buttons; the button pressed decides it, and the question is edited to show the
outcome however it was decided (in this chat, from another surface, or by expiry).

Who may decide from a chat: the hub's owner, or the person whose message started the run, as
long as they may see its session. A press is decided through the one request table
(`approvals.decide`) as that chat user, so `by` names them (`telegram:<userId>`) and the
table's visibility rule applies (`forbidden` otherwise). Anyone else pressing a button is told
so and decides nothing; a button for an approval that is unknown or already decided (a forged
or stale press) changes nothing either.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from channels.base import ChannelMessage, ChannelPlugin, Choice
from hub.approvals import ApprovalAnswer, Decision
from hub.errors import CodedError
from hub.events import ApprovalRequest, ApprovalResolved
from hub.origin import ChannelRoute
from hub.requests.table import Caller, RequestHost, dispatch
from hub.tasks import TaskFunnel

if TYPE_CHECKING:
    from hub.hub import Hub

log = logging.getLogger("agenthub.channels")

PREFIX = "approval:"
DECISIONS: tuple[tuple[str, Decision], ...] = (
    ("Approve once", "approve"),
    ("Always in this chat", "approve_session"),
    ("Deny", "deny"),
)
OUTCOMES = {"approved": "✅ Approved", "denied": "❌ Denied", "expired": "⌛ Expired (denied)"}
MAX_ARGS_CHARS = 900


@dataclass
class _Asked:
    plugin: ChannelPlugin
    route: ChannelRoute
    question: str
    message_id: str | None = None


class ChannelApprovals:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._asked: dict[str, _Asked] = {}
        self._tasks = TaskFunnel("channels:approvals", log)

    async def close(self) -> None:
        await self._tasks.close()

    def on_event(
        self, event: ApprovalRequest | ApprovalResolved, plugin: ChannelPlugin, route: ChannelRoute
    ) -> None:
        """An approval of a run that a chat started: ask there, or show how it ended."""
        if isinstance(event, ApprovalRequest):
            asked = _Asked(plugin, route, question_text(event))
            self._asked[event.approval_id] = asked
            choices = [
                Choice(label=label, data=f"{PREFIX}{event.approval_id}:{decision}")
                for label, decision in DECISIONS
            ]
            self._tasks.spawn(self._ask(asked, choices), name="approval:ask")
            return
        done = self._asked.pop(event.approval_id, None)
        if done is not None:
            outcome = f"{OUTCOMES[event.decision]} by {event.by}"
            self._tasks.spawn(self._settle(done, outcome), name="approval:settle")

    async def _ask(self, asked: _Asked, choices: list[Choice]) -> None:
        asked.message_id = await asked.plugin.ask(asked.route, asked.question, choices)

    async def _settle(self, asked: _Asked, outcome: str) -> None:
        if asked.message_id is not None:
            await asked.plugin.settle(
                asked.route, asked.message_id, f"{asked.question}\n\n{outcome}"
            )

    async def on_choice(self, message: ChannelMessage) -> str:
        """A button pressed in a chat; returns what to tell the person who pressed it."""
        data = message.choice or ""
        approval_id, _, decision = data.removeprefix(PREFIX).rpartition(":")
        if not data.startswith(PREFIX) or decision not in {d for _, d in DECISIONS}:
            return "That button is not one of mine."
        user = message.route.user_id or ""
        who = f"{message.route.channel}:{user}"
        asked = self._asked.get(approval_id)
        starter = asked.route.user_id if asked is not None else None
        owner = self.hub.scope_config().is_owner(who)
        if not (owner or (user and user == starter)):
            log.warning("approval %s: %s may not decide it", approval_id, who)
            return "Only the owner (or whoever started this request) can decide it."
        caller = Caller(surface="channel", identity=who if user else None, owner=owner)
        host = RequestHost(access=self.hub.access, health=self.hub.health, hub=self.hub)
        params = {"approvalId": approval_id, "decision": decision}
        try:
            answer = await dispatch(host, caller, "approvals.decide", params)
        except CodedError as exc:
            if exc.code == "forbidden":
                log.warning("approval %s: %s may not see its session", approval_id, who)
            return exc.message
        assert isinstance(answer, ApprovalAnswer)
        return f"{answer.decision.capitalize()}."


def question_text(event: ApprovalRequest) -> str:
    args = json.dumps(event.args, ensure_ascii=False, indent=1)
    if len(args) > MAX_ARGS_CHARS:
        args = args[:MAX_ARGS_CHARS] + "…"
    return f"🔐 The agent wants to run {event.tool}:\n{args}\n\nAllow it?"
