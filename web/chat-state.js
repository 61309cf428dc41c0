// The transcript of one agent as the UI shows it: items keyed by a stable id, so applying the
// same message twice (from history, then live, or live, then history) never shows it twice.
//
// Item ids: a message's id is its messageId (live events and history entries share it); a tool
// row's id is "tool:" + toolCallId; a message this client sent and has no id for yet is
// "local:" + the frame id, until history brings the real entry of its run.
// Items sort by seq: a live item takes the seq of its first event, a history entry its own.
// An approval card's id is "approval:" + approvalId; its status is "pending", then the
// outcome (approved, denied, expired), or "closed" when it stopped waiting while this client
// was away (the tool row's result says what happened).

export class ChatState {
  constructor() {
    this.items = new Map();
    this.busyRun = null;
    this.lastError = null;
    this.runStarts = new Map(); // run id -> seq of its agent_start (the latest few)
  }

  /** Every item, in transcript order. */
  ordered() {
    return [...this.items.values()].sort((a, b) => a.seq - b.seq || a.order - b.order);
  }

  _upsert(id, fields) {
    const existing = this.items.get(id);
    if (existing) {
      Object.assign(existing, fields);
      return { item: existing, created: false };
    }
    const item = { id, order: this.items.size, ...fields };
    this.items.set(id, item);
    return { item, created: true };
  }

  /** A message this client is sending; `localId` is the frame id. */
  addLocal(localId, text, attachments = []) {
    return this._upsert(`local:${localId}`, {
      kind: "message", role: "user", text, final: true, seq: Number.MAX_SAFE_INTEGER,
      status: "sending", runId: null, attachments,
    });
  }

  /** The hub accepted the local message and started (or queued) run `runId`. The run may
   * have started before the answer came: the message then takes its place at the start. */
  bindLocal(localId, runId) {
    const item = this.items.get(`local:${localId}`);
    if (item) Object.assign(item, { status: "sent", runId });
    if (item && this.runStarts.has(runId)) item.seq = this.runStarts.get(runId);
    return item;
  }

  failLocal(localId, message) {
    const item = this.items.get(`local:${localId}`);
    if (item) Object.assign(item, { status: "failed", error: message });
    return item;
  }

  /**
   * Apply a history answer: entries oldest first. Returns true when anything changed.
   * Local messages whose run appears in history are replaced by the history entry.
   */
  applyHistory(entries) {
    const runs = new Set();
    for (const entry of entries) {
      if (entry.type === "message") {
        if (entry.role === "user") runs.add(entry.runId);
        this._upsert(entry.id, {
          kind: "message", role: entry.role, text: entry.text, final: true, seq: entry.seq,
          aborted: entry.aborted, runId: entry.runId,
          attachments: this._withLocalData(entry),
        });
      } else if (entry.type === "tool") {
        this._upsert(`tool:${entry.toolCallId}`, {
          kind: "tool", name: entry.toolName, args: entry.args, result: entry.result,
          status: entry.isError ? "error" : "success", seq: entry.seq, runId: entry.runId,
        });
      }
    }
    for (const [id, item] of this.items) {
      if (id.startsWith("local:") && item.runId && runs.has(item.runId)) this.items.delete(id);
    }
    return true;
  }

  /** A history entry's attachments; where the entry has no bytes for one this client sent
   * (its local message of the same run), the local bytes are kept, so a thumbnail stays. */
  _withLocalData(entry) {
    const attachments = entry.attachments || [];
    if (entry.role !== "user" || attachments.every((a) => a.data)) return attachments;
    const local = [...this.items.values()].find(
      (i) => i.id.startsWith("local:") && i.runId === entry.runId,
    ) || this.items.get(entry.id);
    const sent = local?.attachments || [];
    return attachments.map((a) => {
      if (a.data) return a;
      const same = sent.find((s) => s.data && s.name === a.name && s.mediaType === a.mediaType);
      return same ? { ...a, data: same.data } : a;
    });
  }

  /** Ids of the approvals this transcript shows as waiting. */
  pendingApprovals() {
    return [...this.items.values()]
      .filter((i) => i.kind === "approval" && i.status === "pending")
      .map((i) => i.approvalId);
  }

  /**
   * Apply an `approvals.list` answer (this session's waiting approvals). A card not yet shown
   * goes after its run's running tool row, else at the end (`afterSeq`). Cards in `before`
   * (waiting when the list was asked for) that the answer no longer holds were decided
   * meanwhile: they become "closed" unless their outcome arrived.
   */
  applyPending(approvals, before = [], afterSeq = 0) {
    const listed = new Set();
    for (const a of approvals) {
      listed.add(a.approvalId);
      const id = `approval:${a.approvalId}`;
      const existing = this.items.get(id);
      if (existing) continue;
      const tool = [...this.items.values()].find(
        (i) => i.kind === "tool" && i.runId === a.runId && i.status === "running",
      );
      this._upsert(id, {
        kind: "approval", approvalId: a.approvalId, tool: a.tool, args: a.args,
        expiresAt: a.expiresAt, runId: a.runId, status: "pending",
        seq: (tool ? tool.seq : afterSeq) + 0.5,
      });
    }
    for (const approvalId of before) {
      const item = this.items.get(`approval:${approvalId}`);
      if (item && item.status === "pending" && !listed.has(approvalId)) item.status = "closed";
    }
  }

  /**
   * Apply one live agent event. Returns the item it touched (or null), and whether the item
   * is new (so the view knows to insert rather than update).
   */
  applyEvent(event) {
    switch (event.type) {
      case "agent_start": {
        this.busyRun = event.runId;
        this.lastError = null;
        this.runStarts.set(event.runId, event.seq);
        if (this.runStarts.size > 50) this.runStarts.delete(this.runStarts.keys().next().value);
        for (const item of this.items.values()) {
          if (item.runId === event.runId && item.id.startsWith("local:")) item.seq = event.seq;
        }
        return { item: null, created: false };
      }
      case "agent_end":
        this.busyRun = null;
        return { item: null, created: false };
      case "message_start":
        return this._upsert(event.messageId, {
          kind: "message", role: event.role, text: "", final: false, seq: event.seq,
          runId: event.runId,
        });
      case "message_update":
      case "message_end": {
        const existing = this.items.get(event.messageId);
        if (existing && existing.final) return { item: existing, created: false };
        const fields = {
          kind: "message", role: event.role, text: event.text,
          final: event.type === "message_end", runId: event.runId,
          aborted: Boolean(event.aborted),
        };
        if (!existing) fields.seq = event.seq;
        return this._upsert(event.messageId, fields);
      }
      case "tool_execution_start": {
        const existing = this.items.get(`tool:${event.toolCallId}`);
        if (existing && existing.status !== "running") return { item: existing, created: false };
        return this._upsert(`tool:${event.toolCallId}`, {
          kind: "tool", name: event.toolName, args: event.args, result: undefined,
          status: "running", seq: existing ? existing.seq : event.seq, runId: event.runId,
        });
      }
      case "tool_execution_end": {
        const existing = this.items.get(`tool:${event.toolCallId}`);
        return this._upsert(`tool:${event.toolCallId}`, {
          kind: "tool", name: event.toolName, args: event.args, result: event.result,
          status: event.isError ? "error" : "success", seq: existing ? existing.seq : event.seq,
          runId: event.runId,
        });
      }
      case "compaction_start":
        return this._upsert(`compaction:${event.runId}:${event.seq}`, {
          kind: "note", text: "Compacting the conversation…", seq: event.seq, runId: event.runId,
        });
      case "compaction_end":
        return this._upsert(`compaction-end:${event.runId}:${event.seq}`, {
          kind: "note",
          text: `Conversation compacted: ${event.removed} older entries summarised.`,
          seq: event.seq, runId: event.runId,
        });
      case "approval_request": {
        const existing = this.items.get(`approval:${event.approvalId}`);
        return this._upsert(`approval:${event.approvalId}`, {
          kind: "approval", approvalId: event.approvalId, tool: event.tool, args: event.args,
          expiresAt: event.expiresAt, runId: event.runId,
          seq: existing ? existing.seq : event.seq,
          status: existing ? existing.status : "pending",
        });
      }
      case "approval_resolved": {
        const existing = this.items.get(`approval:${event.approvalId}`);
        if (!existing) return { item: null, created: false };
        return this._upsert(existing.id, { status: event.decision, by: event.by });
      }
      case "agent_error":
        this.lastError = { code: event.code, message: event.message, runId: event.runId };
        return { item: null, created: false };
      default:
        return { item: null, created: false };
    }
  }
}
