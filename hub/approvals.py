"""Approvals: a tool call under the `ask` policy waits until a person decides.

`Approvals.ask` emits `approval_request` on the agent's stream (through the run's `announce`
callback), waits for `decide` (the `approvals.decide` request, `agenthub ctl approvals`, a
channel's button) or for the expiry, and emits `approval_resolved`. The first decision wins;
later ones are refused with `already_decided`. `approve_session` also approves later calls of
the same tool in the same session without asking. `close()` (the hub stopping) denies whatever
is still pending, so the run records the refusal in its session as the tool's result.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from hub.errors import CodedError
from hub.events import AgentEvent, ApprovalRequest, ApprovalResolved, now_ms
from hub.wire import WireModel

log = logging.getLogger("agenthub.approvals")

Decision = Literal["approve", "approve_session", "deny"]
Outcome = Literal["approved", "denied", "expired"]
# Given the next seq, the event to emit: the agent stamps the seq, the caller builds the rest.
EventBuilder = Callable[[int], AgentEvent]
Announce = Callable[[EventBuilder], None]

DEFAULT_TIMEOUT = 300.0
MAX_SHOWN_ARGS = 100_000
_REMEMBERED = 256


class ApprovalError(CodedError):
    """A decision was refused: `unknown_approval`, `already_decided` or `forbidden`."""

    code = "approval"


class PendingApproval(WireModel):
    """A call waiting for a person, as `approvals.list` shows it."""

    approval_id: str
    agent_id: str
    session_key: str
    run_id: str
    tool: str
    args: JsonValue
    created_at: int
    expires_at: int


class ApprovalAnswer(WireModel):
    """The outcome of an approval (the answer of `approvals.decide`)."""

    approval_id: str
    decision: Outcome
    by: str


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a tool call happens: which agent, run and session, and how to reach its stream."""

    agent_id: str
    run_id: str
    session_key: str = "main"
    session_id: str = ""
    announce: Announce | None = None
    # Whose notes the memory tools keep (`hub.scopes.memory_scope`); None: no memory here.
    memory_scope: str | None = None


@dataclass(slots=True)
class _Waiting:
    info: PendingApproval
    context: CallContext
    future: asyncio.Future[ApprovalAnswer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Visible = Callable[[PendingApproval], bool]


class Approvals:
    """Every pending approval of the process, whichever agent asked."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._waiting: dict[str, _Waiting] = {}
        self._resolved: OrderedDict[str, ApprovalAnswer] = OrderedDict()
        self._session_grants: set[tuple[str, str, str, str]] = set()
        self._closed = False

    def pending(self, visible: Visible | None = None) -> list[PendingApproval]:
        """Pending approvals, oldest first; `visible` filters what the asker may see."""
        infos = [w.info for w in self._waiting.values()]
        return [i for i in infos if visible is None or visible(i)]

    async def ask(self, context: CallContext, tool: str, args: JsonValue) -> ApprovalAnswer:
        """Wait for a person to decide on this call; returns approved, denied or expired."""
        grant = (context.agent_id, context.session_key, context.session_id, tool)
        if grant in self._session_grants:
            return ApprovalAnswer(approval_id="", decision="approved", by="session")
        if self._closed:
            return ApprovalAnswer(approval_id="", decision="denied", by="shutdown")
        created = now_ms()
        info = PendingApproval(
            approval_id=f"ap-{secrets.token_hex(6)}",
            agent_id=context.agent_id,
            session_key=context.session_key,
            run_id=context.run_id,
            tool=tool,
            args=args,
            created_at=created,
            expires_at=created + int(self.timeout * 1000),
        )
        waiting = _Waiting(info, context)
        self._waiting[info.approval_id] = waiting
        self._announce(context, lambda seq: _request_event(info, seq))
        answer: ApprovalAnswer | None = None
        try:
            async with asyncio.timeout(self.timeout):
                answer = await asyncio.shield(waiting.future)
        except TimeoutError:
            answer = self._resolve(waiting, "expired", "timeout")
        finally:
            if answer is None:  # the run was aborted while it waited
                answer = self._resolve(waiting, "denied", "abort")
            self._announce(context, lambda seq: _resolved_event(info, answer, seq))
        return answer

    def decide(
        self, approval_id: str, decision: Decision, by: str, *, visible: Visible | None = None
    ) -> ApprovalAnswer:
        """Resolve a pending approval. Raises ApprovalError when it is unknown, already
        decided, or not `visible` to the one deciding."""
        waiting = self._waiting.get(approval_id)
        if waiting is None:
            done = self._resolved.get(approval_id)
            if done is not None:
                raise ApprovalError(
                    f"approval {approval_id} was already {done.decision} by {done.by}",
                    "already_decided",
                )
            raise ApprovalError(f"no pending approval {approval_id!r}", "unknown_approval")
        if visible is not None and not visible(waiting.info):
            raise ApprovalError(
                f"approval {approval_id} belongs to a conversation you cannot see", "forbidden"
            )
        if decision == "approve_session":
            info = waiting.info
            context = waiting.context
            self._session_grants.add(
                (info.agent_id, info.session_key, context.session_id, info.tool)
            )
        return self._resolve(waiting, "denied" if decision == "deny" else "approved", by)

    def close(self) -> int:
        """Deny every pending approval (the hub is stopping) and ask no more; returns how many."""
        self._closed = True
        waiting = list(self._waiting.values())
        for item in waiting:
            self._resolve(item, "denied", "restart")
        if waiting:
            log.info("denied %d pending approval(s): the hub is stopping", len(waiting))
        return len(waiting)

    def _resolve(self, waiting: _Waiting, outcome: Outcome, by: str) -> ApprovalAnswer:
        answer = ApprovalAnswer(approval_id=waiting.info.approval_id, decision=outcome, by=by)
        self._waiting.pop(answer.approval_id, None)
        self._resolved[answer.approval_id] = answer
        while len(self._resolved) > _REMEMBERED:
            self._resolved.popitem(last=False)
        if not waiting.future.done():
            waiting.future.set_result(answer)
        return answer

    def _announce(self, context: CallContext, build: EventBuilder) -> None:
        if context.announce is None:
            return
        try:
            context.announce(build)
        except Exception:
            log.exception("could not emit an approval event for agent %s", context.agent_id)


def _request_event(info: PendingApproval, seq: int) -> ApprovalRequest:
    return ApprovalRequest(
        agent_id=info.agent_id,
        run_id=info.run_id,
        seq=seq,
        approval_id=info.approval_id,
        session_key=info.session_key,
        tool=info.tool,
        args=info.args,
        expires_at=info.expires_at,
    )


def _resolved_event(info: PendingApproval, answer: ApprovalAnswer, seq: int) -> ApprovalResolved:
    return ApprovalResolved(
        agent_id=info.agent_id,
        run_id=info.run_id,
        session_key=info.session_key,
        seq=seq,
        approval_id=info.approval_id,
        decision=answer.decision,
        by=answer.by,
    )
