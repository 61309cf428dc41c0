"""Stopping the hub while a run waits for an approval: the approval is denied (by `restart`),
the run finishes with the refusal as the tool's result, and the session records it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hub.approvals import Approvals
from hub.events import AgentEnd, AgentEvent, ApprovalRequest, ApprovalResolved
from hub.hub import AgentSetup, Hub
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore, ToolEntry
from tests.fake_openai import FakeOpenAI, Reply, ToolCall


async def test_a_restart_denies_the_pending_approval_and_the_session_records_it(
    data_dir: Path,
) -> None:
    async with FakeOpenAI() as fake:
        fake.enqueue(
            Reply(chunks=(), tool_calls=(ToolCall("shell", json.dumps({"command": "ls"})),)),
            Reply(chunks=("The hub stopped before anyone approved.",)),
        )
        config = ModelConfig.model_validate(
            {
                "spec": "openai:gpt-test",
                "openai_base_url": fake.base_url,
                "tooling": {"enable_tools": ["shell"], "workspace_root": data_dir / "workspace"},
            }
        )
        approvals = Approvals()
        model = build_model(config, approvals=approvals)
        hub = Hub(data_dir, agents=[AgentSetup("main", "Main", model)], approvals=approvals)
        agent = hub.agent("main")
        events: list[AgentEvent] = []
        asked = asyncio.Event()

        def on_event(event: AgentEvent) -> None:
            events.append(event)
            if isinstance(event, ApprovalRequest):
                asked.set()

        agent.subscribe(on_event)
        agent.write("list the files")
        await asked.wait()
        await hub.close(grace=30)

    resolved = next(e for e in events if isinstance(e, ApprovalResolved))
    assert (resolved.decision, resolved.by) == ("denied", "restart")
    end = next(e for e in events if isinstance(e, AgentEnd))
    assert end.status == "completed"
    session = SessionStore(data_dir).current("main")
    (entry,) = [e for e in session.entries if isinstance(e, ToolEntry)]
    assert entry.is_error
    assert entry.result == "ToolDeniedError: shell was not run: denied by restart"
    assert not (data_dir / "workspace" / "main").exists()  # the command never ran
