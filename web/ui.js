// The chat UI, shared by the browser (gateway transport) and the desktop window (its bridge
// transport; app.js picks it when the page is loaded as index.html?desktop=1). It talks to the
// agent only through a Transport object:
//
//   transport.connect(): Promise<void>           start; keep the connection up by itself
//   transport.onEvent(({agentId, streamId, event}) => …)
//       `event` is an agent event (docs/events.md), or {type: "read_gap", agentId}: events
//       were missed, refetch that agent's history.
//   transport.onState(({status, detail}) => …)
//       status: "connecting" | "online" | "reconnecting" | "hub_offline" | "unpaired" | "offline".
//       Every "online" (after each connect and reconnect) makes the UI refetch history, so a
//       reply that completed while it was away shows in full, once.
//   transport.send(agentId, text, {sessionKey?, mode?, attachments?}): Promise<{runId}>
//       rejects with an Error having `.code`; attachments: [{name, mediaType, data (base64)}]
//   transport.maxMessageBytes (optional): the largest message the connection carries
//   transport.request(method, params): Promise<payload>  any method of the hub's request
//       table: "agents.list", "history", "sessions.*", "approvals.*", "usage", "schedules.*", …
//   transport.deviceId (optional): this device's id, so `by: "web:<id>"` reads as "you"
//   transport.abort(agentId, sessionKey?): Promise<{aborted}>
//   transport.pairing (optional): {redeem(code): Promise<void>,
//       request(onDecision): Promise<{requestCode}>}; when absent the UI never shows pairing.
//
// Conversations: every agent has sessions (docs/sessions.md); the UI keeps one transcript per
// (agent, session key) and applies every event to its own session's transcript, shown or not,
// so switching keeps each session's live state (sessions.js holds the list and its requests).
//
// The parts: composer.js (writing, attachments), conversation-view.js (the transcript's rows),
// sessions.js + sessions-sidebar.js, usage-line.js, schedules-panel.js, pairing-view.js.
// Everything rendered from the agent goes through textContent, except assistant Markdown,
// which goes through markdown.js (marked + DOMPurify, raw HTML escaped).

import { decideApproval } from "./approval-card.js";
import { ImageCache } from "./attachment-view.js";
import { ChatState } from "./chat-state.js";
import { Composer } from "./composer.js";
import { ConversationView } from "./conversation-view.js";
import { el } from "./dom.js";
import { placeIcons } from "./icons.js";
import { PairingView } from "./pairing-view.js";
import { SchedulesPanel } from "./schedules-panel.js";
import { MAIN, Sessions } from "./sessions.js";
import { UsageLine } from "./usage-line.js";

const HISTORY_LIMIT = 200;
const AGENT_KEY = "agenthub.agent";
const SESSION_KEY = "agenthub.session."; // + agent id
// A gateway frame is at most 8 MiB unless the gateway says otherwise (docs/protocol.md).
const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1_048_576;

const STATUS_TEXT = {
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  hub_offline: "Agent offline",
  unpaired: "Not paired",
  offline: "Offline",
};

export class ChatUI {
  constructor(doc, transport, { storage = localStorage, win = window } = {}) {
    this.doc = doc;
    this.transport = transport;
    this.storage = storage;
    this.states = new Map();
    this.agents = [];
    this.agentId = storage.getItem(AGENT_KEY) || MAIN;
    this.sessionKey = storage.getItem(SESSION_KEY + this.agentId) || MAIN;
    this.status = "connecting";
    this._localCounter = 0;
    this._resyncing = new Map();
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      conn: $("conn"), connText: $("conn-text"), picker: $("agent-picker"), banner: $("banner"),
      bannerText: $("banner-text"), bannerClose: $("banner-close"),
    };
    this.sessions = new Sessions(this, doc, { storage, win });
    this.view = new ConversationView(doc, { messages: $("messages"), empty: $("empty") }, {
      decide: (item, decision) =>
        decideApproval(transport, item, decision, () => {
          if (this.view.has(item.id)) this.view.renderItem(item);
        }),
      get selfBy() {
        return transport.deviceId ? `web:${transport.deviceId}` : "desktop";
      },
    }, (attachment) =>
      this.images.load(this.agentId, this.sessions.supported ? this.sessionKey : null, attachment));
    this.images = new ImageCache(transport);
    this.composer = new Composer(
      doc,
      { send: (text, attachments) => this._send(text, attachments), stop: () => this._abort() },
      () => transport.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    );
    this.usage = new UsageLine(doc, transport, { win });
    this.schedules = new SchedulesPanel(doc, transport);
    this.pairing = new PairingView(doc, transport);
  }

  /** The transcript of one session of one agent (the shown one by default). */
  state(agentId = this.agentId, sessionKey = this.sessionKey) {
    const key = `${agentId}\n${sessionKey}`;
    if (!this.states.has(key)) this.states.set(key, new ChatState());
    return this.states.get(key);
  }

  _shown(agentId, sessionKey) {
    return agentId === this.agentId && sessionKey === this.sessionKey;
  }

  /** Wire the page and connect. `pairCode` (from the URL fragment) pairs at once. */
  async start({ pairCode = null } = {}) {
    this._bind();
    this.transport.onState((s) => this._onState(s));
    this.transport.onEvent((e) => this._onEvent(e));
    if (pairCode && this.transport.pairing) {
      this.pairing.show(true);
      await this.pairing.redeem(pairCode);
      return;
    }
    await this.transport.connect();
  }

  _bind() {
    const { $ } = this;
    placeIcons(this.doc);
    $.bannerClose.addEventListener("click", () => this.hideBanner());
    $.picker.addEventListener("change", () => this._switchAgent($.picker.value));
    this.composer.bind();
    this.sessions.bind();
    this.schedules.bind();
    this.pairing.bind();
  }

  // -- connection state -------------------------------------------------------------------

  _onState({ status, detail }) {
    this.status = status;
    this.$.conn.dataset.state = status;
    this.$.connText.textContent = STATUS_TEXT[status] || status;
    this.$.conn.title = detail || "";
    if (status === "unpaired") {
      this.pairing.show(true);
      if (detail) this.pairing.error(detail);
      return;
    }
    this.pairing.show(false);
    this.updateComposer();
    if (status === "online") this._whenOnline();
  }

  async _whenOnline() {
    try {
      const { agents } = await this.transport.request("agents.list", {});
      this.agents = agents.map((a) => a.agentId);
      this.agentNames = new Map(agents.map((a) => [a.agentId, a.name || a.agentId]));
      if (!this.agents.includes(this.agentId) && this.agents.length) {
        this.agentId = this.agents[0];
        this.sessionKey = this.storage.getItem(SESSION_KEY + this.agentId) || MAIN;
      }
      this._renderPicker();
      for (const agent of agents) {
        if (agent.busy && !this.sessions.supported) this.state(agent.agentId, MAIN).busyRun ??= "running";
      }
    } catch (error) {
      this.showBanner(`Could not list agents: ${error.message}`);
    }
    // Schedules are the owner's: a refusal says this device is a guest (docs/web.md).
    this.sessions.guest = (await this.schedules.load()) === false;
    await this.sessions.load(this.agentId);
    this.usage.show(this.agentId, this.sessionKey);
    await this.resync(this.agentId, this.sessionKey);
  }

  _renderPicker() {
    const { picker } = this.$;
    picker.replaceChildren(
      ...this.agents.map((id) => {
        const option = el(this.doc, "option", "", this.agentNames?.get(id) ?? id);
        option.value = id;
        option.selected = id === this.agentId;
        return option;
      }),
    );
    picker.hidden = this.agents.length < 2;
  }

  _switchAgent(agentId) {
    this.agentId = agentId;
    this.storage.setItem(AGENT_KEY, agentId);
    this._show(this.storage.getItem(SESSION_KEY + agentId) || MAIN);
    this.sessions.load(agentId).then(() => this.resync(agentId, this.sessionKey));
  }

  /** Show session `key` of the current agent (from its kept transcript; no fetch). */
  _show(key) {
    this.sessionKey = key;
    this.storage.setItem(SESSION_KEY + this.agentId, key);
    this.sessions.shown(this.agentId, key);
    this.view.clear();
    this.hideBanner();
    this._renderAll();
    this.sessions.render();
    this.usage.show(this.agentId, key);
    // Panels about the shown conversation follow it (memory-panel.js, wired in app.js).
    this.doc.dispatchEvent(new CustomEvent("conversation-shown"));
  }

  switchSession(key) {
    if (key === this.sessionKey) return;
    this._show(key);
    this.resync(this.agentId, key);
    this.composer.focus();
  }

  /** Refetch a session's history (and its waiting approvals) and render it once (items are
   * keyed; nothing shows twice). */
  async resync(agentId, sessionKey = MAIN) {
    const key = `${agentId}\n${sessionKey}`;
    if (this._resyncing.get(key)) {
      this._resyncing.set(key, "again");
      return;
    }
    this._resyncing.set(key, "busy");
    const state = this.state(agentId, sessionKey);
    try {
      do {
        this._resyncing.set(key, "busy");
        const params = { agentId, limit: HISTORY_LIMIT };
        if (this.sessions.supported) params.sessionKey = sessionKey;
        const waiting = state.pendingApprovals();
        const answer = await this.transport.request("history", params);
        state.applyHistory(answer.entries);
        Object.assign(state, { loaded: true, stale: false, lastSeq: answer.lastSeq });
        if (this._shown(agentId, sessionKey)) this._renderAll();
        await this._loadApprovals(agentId, sessionKey, waiting, answer.lastSeq);
        if (this._shown(agentId, sessionKey)) {
          this._renderAll();
          this.sessions.markRead(agentId, sessionKey, answer.lastSeq);
        }
      } while (this._resyncing.get(key) === "again");
    } catch (error) {
      if (this.status === "online" && this._shown(agentId, sessionKey)) {
        this.showBanner(`Could not load the conversation: ${error.message}`);
      }
    } finally {
      this._resyncing.delete(key);
    }
  }

  /** Waiting approvals (a hub without approvals has none): the session being resynced gets
   * its cards (and closes those no longer waiting); other sessions get cards they lack, so
   * their rows can show that something waits there. */
  async _loadApprovals(agentId, sessionKey, waiting, lastSeq) {
    let approvals;
    try {
      ({ approvals } = await this.transport.request("approvals.list", { agentId }));
    } catch (error) {
      if (error.code !== "unknown_method") throw error;
      return;
    }
    const bySession = new Map([[sessionKey, []]]);
    for (const approval of approvals) {
      const key = approval.sessionKey || MAIN;
      if (!bySession.has(key)) bySession.set(key, []);
      bySession.get(key).push(approval);
    }
    for (const [key, list] of bySession) {
      const state = this.state(agentId, key);
      if (key === sessionKey) state.applyPending(list, waiting, lastSeq);
      else state.applyPending(list, [], state.lastSeq ?? lastSeq);
    }
    if (bySession.size > 1) this.sessions.render();
  }

  // -- live events ------------------------------------------------------------------------

  _onEvent({ agentId, event }) {
    if (event.type === "read_gap") {
      // Events of any session may be lost: refetch the shown one, the others when shown.
      for (const [key, state] of this.states) {
        if (key.startsWith(`${agentId}\n`)) state.stale = true;
      }
      if (agentId === this.agentId) this.resync(agentId, this.sessionKey);
      this.sessions.refresh();
      return;
    }
    const sessionKey = event.sessionKey || MAIN;
    if (event.type === "session_deleted") {
      this.sessions.deleted(agentId, sessionKey);
      return;
    }
    const state = this.state(agentId, sessionKey);
    const { item, created } = state.applyEvent(event);
    const shown = this._shown(agentId, sessionKey);
    if (event.type === "agent_end") {
      // The run's user message (maybe from another device) and final texts come from history.
      if (shown) {
        this.sessions.markRead(agentId, sessionKey, event.seq);
        this.resync(agentId, sessionKey);
        this.usage.afterRun(agentId, sessionKey);
      } else {
        state.stale = true;
      }
      this.sessions.refresh();
      if (this.schedules.isOpen) this.schedules.load();
    }
    if (!shown) {
      if (agentId === this.agentId && (item || event.type === "agent_end")) {
        this.sessions.markUnread(agentId, sessionKey);
      }
      if (agentId === this.agentId) this.sessions.render();
      return;
    }
    if (event.type === "agent_error") {
      this.showBanner(event.message, event.code);
    }
    if (item) {
      if (created) this._renderAll();
      else this.view.renderItem(item);
    } else if (event.type === "agent_start") {
      this._renderAll();
    }
    if (event.type === "agent_start" || event.type === "agent_end") this.sessions.render();
    this.updateComposer();
  }

  // -- rendering --------------------------------------------------------------------------

  _renderAll() {
    this.view.renderAll(this.state().ordered());
    this.updateComposer();
  }

  updateComposer() {
    const online = this.status === "online";
    const state = this.state();
    const run = state.busyRun;
    const answering = state.ordered().some(
      (i) => i.runId === run && (i.kind === "tool" || i.role === "assistant"),
    );
    this.composer.update({
      online,
      placeholder: online ? "Message the agent…" : STATUS_TEXT[this.status] || "",
      busy: Boolean(run),
      thinking: Boolean(run) && !answering,
    });
  }

  showBanner(message, code = "") {
    this.$.bannerText.textContent = code ? `${message} (${code})` : message;
    this.$.banner.hidden = false;
  }

  hideBanner() {
    this.$.banner.hidden = true;
  }

  // -- actions ----------------------------------------------------------------------------

  async _send(text, attachments = []) {
    if (this.status !== "online") return;
    this.hideBanner();
    const { agentId, sessionKey } = this;
    const state = this.state(agentId, sessionKey);
    this._localCounter += 1;
    const localId = `${Date.now().toString(36)}-${this._localCounter}`;
    state.addLocal(localId, text, attachments);
    this._renderAll();
    this.view.scrollToBottom();
    try {
      const options = this.sessions.supported ? { sessionKey } : {};
      if (attachments.length) options.attachments = attachments;
      const { runId } = await this.transport.send(agentId, text, options);
      const item = state.bindLocal(localId, runId);
      if (item && this._shown(agentId, sessionKey)) this.view.renderItem(item);
    } catch (error) {
      const item = state.failLocal(localId, error.message);
      if (item && this._shown(agentId, sessionKey)) this.view.renderItem(item);
    }
  }

  async _abort() {
    try {
      await this.transport.abort(this.agentId, this.sessions.supported ? this.sessionKey : null);
    } catch (error) {
      this.showBanner(`Could not stop: ${error.message}`);
    }
  }
}
