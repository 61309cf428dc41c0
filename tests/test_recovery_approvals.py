"""Approvals pending at a crash: the next start resolves each as denied by `restart` in its run
(`approval_resolved`, and the waiting call's refusal as a tool entry), before the run is closed
as interrupted; one decided before the crash is left alone; a call that only waited for its
approval counts as no side effect."""

from __future__ import annotations

from pathlib import Path

from hub.events import ApprovalResolved
from hub.sessions import RunEntry, ToolEntry
from tests.recovery_rig import ROUTE, Recovered, append_journal, crashed, journal_line


async def crashed_asking(data_dir: Path, *, decided: bool) -> None:
    """A crash while run r-crashed's shell call waited for approval ap-1 (or after it was
    `decided`)."""
    await crashed(data_dir)
    lines = [
        journal_line("tool", runId="r-crashed", tool="shell", toolCallId="c-9"),
        journal_line(
            "approval", runId="r-crashed", approvalId="ap-1", tool="shell", args={"command": "ls"}
        ),
    ]
    if decided:
        lines.append(journal_line("decided", runId="r-crashed", approvalId="ap-1"))
    append_journal(data_dir, *lines)


async def test_a_pending_approval_is_denied_by_restart_in_its_session(
    data_dir: Path, recover: Recovered
) -> None:
    await crashed_asking(data_dir, decided=False)
    await recover.run()
    (event,) = [e for e in recover.events if isinstance(e, ApprovalResolved)]
    assert (event.approval_id, event.decision, event.by) == ("ap-1", "denied", "restart")
    assert event.run_id == "r-crashed"
    (tool,) = [e for e in recover.entries if isinstance(e, ToolEntry)]
    assert (tool.tool_call_id, tool.args, tool.is_error) == ("c-9", {"command": "ls"}, True)
    assert tool.result == "ToolDeniedError: shell was not run: denied by restart"
    assert tool.seq > event.seq
    statuses = [e.status for e in recover.entries if isinstance(e, RunEntry)]
    assert statuses == ["interrupted", "completed"]  # nothing ran: answered again
    assert recover.recovery.denied == ["ap-1"] and recover.recovery.rerun == ["r-crashed"]
    assert "1 pending approval(s) denied" in (recover.recovery.probe().detail or "")
    # The chat that was asked is told how its question ended.
    assert recover.delivered == [
        (ROUTE, "The hub restarted while shell waited for your approval: denied, nothing was run.")
    ]


async def test_an_approval_decided_before_the_crash_is_left_alone(
    data_dir: Path, recover: Recovered
) -> None:
    await crashed_asking(data_dir, decided=True)
    await recover.run()
    assert recover.recovery.denied == []
    assert not [e for e in recover.entries if isinstance(e, ToolEntry)]
    # Approved, so the shell may have run: the chat is told, nothing is run again.
    assert recover.recovery.told == ["r-crashed"]
