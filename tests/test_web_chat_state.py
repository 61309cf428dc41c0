"""The web client's transcript model (web/chat-state.js) in Chromium: history and live events
applied in any order, any number of times, show each message once, with its final text."""

from __future__ import annotations

from pathlib import Path

from tests.test_gateway_support import running_stack
from tests.test_web_chat import chromium

SCENARIOS = """
async () => {
  const { ChatState } = await import("/chat-state.js");
  const ev = (type, seq, extra) => ({ type, agentId: "main", runId: "r1", seq, ts: 0, ...extra });
  const start = ev("agent_start", 1, { origin: { surface: "web", deviceId: "web-1" } });
  const mStart = ev("message_start", 4, { messageId: "m-a", role: "assistant" });
  const upd = (seq, text) =>
    ev("message_update", seq, { messageId: "m-a", role: "assistant", text, delta: "" });
  const mEnd = ev("message_end", 9, { messageId: "m-a", role: "assistant", text: "Hello world" });
  const entry = (id, seq, role, text) =>
    ({ type: "message", id, runId: "r1", seq, role, text, ts: 0, aborted: false });
  const history = [entry("m-u", 3, "user", "hi"), entry("m-a", 9, "assistant", "Hello world")];
  const view = (s) => s.ordered().map((i) => `${i.role || i.kind}:${i.text}`);
  const results = {};

  // Live first, then history (a resync after the reply).
  let s = new ChatState();
  s.addLocal("f1", "hi");
  s.bindLocal("f1", "r1");
  for (const e of [start, mStart, upd(5, "Hel"), upd(6, "Hello wo"), mEnd]) s.applyEvent(e);
  s.applyHistory(history);
  s.applyHistory(history);
  results.liveThenHistory = view(s);

  // History first (after a reconnect), then late live frames of the same message.
  s = new ChatState();
  s.applyHistory(history);
  for (const e of [upd(6, "Hello wo"), mEnd, upd(5, "Hel")]) s.applyEvent(e);
  results.historyThenLive = view(s);

  // A reply still streaming when history is fetched stays, after the history.
  s = new ChatState();
  s.applyHistory([history[0]]);
  s.applyEvent(mStart);
  s.applyEvent(upd(5, "Hel"));
  s.applyHistory([history[0]]);
  results.streamingKept = view(s);

  // A tool row: running, then its end; history's entry for it is the same row.
  s = new ChatState();
  s.applyEvent(ev("tool_execution_start", 5, { toolCallId: "c1", toolName: "lookup", args: {} }));
  s.applyEvent(ev("tool_execution_end", 6, {
    toolCallId: "c1", toolName: "lookup", args: {}, result: 42, isError: false }));
  s.applyHistory([{ type: "tool", id: "t-1", runId: "r1", seq: 6, toolCallId: "c1",
    toolName: "lookup", args: {}, result: 42, isError: false, ts: 0 }]);
  results.tool = s.ordered().map((i) => `${i.kind}:${i.status}`);

  // The run starts (and answers) before the hub's answer binds the local message to it.
  s = new ChatState();
  s.addLocal("f2", "hi");
  for (const e of [start, mStart, upd(5, "Hel")]) s.applyEvent(e);
  s.bindLocal("f2", "r1");
  results.startedBeforeBound = view(s);

  // Approval cards: asked, resolved (by anyone); an outcome for a card never shown is
  // ignored; the list adds missing cards after their tool row and closes cards that stopped
  // waiting while away; a repeated request keeps the outcome.
  s = new ChatState();
  s.applyEvent(ev("tool_execution_start", 5, { toolCallId: "c1", toolName: "shell", args: {} }));
  const ask = (id, seq) => ev("approval_request", seq, {
    approvalId: id, sessionKey: "main", tool: "shell", args: { command: "ls" }, expiresAt: 0 });
  s.applyEvent(ask("ap-1", 6));
  s.applyEvent(ev("approval_resolved", 7, { approvalId: "ap-1", decision: "denied", by: "ctl" }));
  s.applyEvent(ask("ap-1", 6));
  s.applyEvent(ev("approval_resolved", 8, { approvalId: "ap-x", decision: "approved", by: "ctl" }));
  s.applyEvent(ask("ap-2", 9));
  const waiting = s.pendingApprovals();
  s.applyPending([{ approvalId: "ap-3", runId: "r1", tool: "shell", args: {}, expiresAt: 0 }],
    waiting, 20);
  results.approvals = s.ordered().map((i) => `${i.kind}:${i.approvalId || ""}:${i.status}`);
  return results;
}
"""


async def test_history_and_live_events_render_each_message_once(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page()
        await page.goto(stack.url)
        results = await page.evaluate(SCENARIOS)
    assert results["liveThenHistory"] == ["user:hi", "assistant:Hello world"]
    assert results["historyThenLive"] == ["user:hi", "assistant:Hello world"]
    assert results["streamingKept"] == ["user:hi", "assistant:Hel"]
    assert results["tool"] == ["tool:success"]
    assert results["startedBeforeBound"] == ["user:hi", "assistant:Hel"]
    assert results["approvals"] == [
        "tool::running",
        "approval:ap-3:pending",
        "approval:ap-1:denied",
        "approval:ap-2:closed",
    ]
