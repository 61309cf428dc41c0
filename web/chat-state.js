// The transcript of one agent as the UI shows it: items keyed by a stable id, so applying the
// same message twice (from history, then live, or live, then history) never shows it twice.
//
// Item ids: a message's id is its messageId (live events and history entries share it); a tool
// row's id is "tool:" + toolCallId; a message this client sent and has no id for yet is
// "local:" + the frame id, until history brings the real entry of its run.
// Items sort by seq: a live item takes the seq of its first event, a history entry its own.

export class ChatState {
  constructor() {
    this.items = new Map();
    this.busyRun = null;
    this.lastError = null;
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
  addLocal(localId, text) {
    return this._upsert(`local:${localId}`, {
      kind: "message", role: "user", text, final: true, seq: Number.MAX_SAFE_INTEGER,
      status: "sending", runId: null,
    });
  }

  /** The hub accepted the local message and started (or queued) run `runId`. */
  bindLocal(localId, runId) {
    const item = this.items.get(`local:${localId}`);
    if (item) Object.assign(item, { status: "sent", runId });
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

  /**
   * Apply one live agent event. Returns the item it touched (or null), and whether the item
   * is new (so the view knows to insert rather than update).
   */
  applyEvent(event) {
    switch (event.type) {
      case "agent_start": {
        this.busyRun = event.runId;
        this.lastError = null;
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
      case "agent_error":
        this.lastError = { code: event.code, message: event.message, runId: event.runId };
        return { item: null, created: false };
      default:
        return { item: null, created: false };
    }
  }
}
