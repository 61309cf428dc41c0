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
//   transport.send(agentId, text, {sessionKey?, mode?}): Promise<{runId}>
//       rejects with an Error having `.code`
//   transport.request(method, params): Promise<payload>  any method of the hub's request
//       table: "agents.list", "history", "sessions.*", "approvals.*", …
//   transport.deviceId (optional): this device's id, so `by: "web:<id>"` reads as "you"
//   transport.abort(agentId, sessionKey?): Promise<{aborted}>
//   transport.pairing (optional): {redeem(code): Promise<void>,
//       request(onDecision): Promise<{requestCode}>}; when absent the UI never shows pairing.
//
// Conversations: every agent has sessions (docs/sessions.md); the UI keeps one transcript per
// (agent, session key) and applies every event to its own session's transcript, shown or not,
// so switching keeps each session's live state. A hub without `sessions.list` has `main` only.
//
// Everything rendered from the agent goes through textContent, except assistant Markdown,
// which goes through markdown.js (marked + DOMPurify, raw HTML escaped).

import { ChatState } from "./chat-state.js";
import { fillApproval } from "./approval-card.js";
import { renderMarkdown } from "./markdown.js";
import { SessionsSidebar, sessionTitle } from "./sessions-sidebar.js";

const HISTORY_LIMIT = 200;
const AGENT_KEY = "agenthub.agent";
const SESSION_KEY = "agenthub.session."; // + agent id
const MAIN = "main";
const SEARCH_LOADS = 30;
const NO_SESSIONS_NOTE = "This hub has one conversation per agent; update it for more.";

const STATUS_TEXT = {
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  hub_offline: "Agent offline",
  unpaired: "Not paired",
  offline: "Offline",
};

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function shortJson(value, limit = 80) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) return "";
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

function prettyJson(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export class ChatUI {
  constructor(doc, transport, { storage = localStorage, win = window } = {}) {
    this.doc = doc;
    this.transport = transport;
    this.storage = storage;
    this.states = new Map();
    this.agents = [];
    this.agentId = storage.getItem(AGENT_KEY) || MAIN;
    this.sessionKey = storage.getItem(SESSION_KEY + this.agentId) || MAIN;
    this.sessions = new Map(); // agent id -> [session info] (sessions.list rows)
    this.sessionsSupported = null; // unknown until sessions.list answers
    this.unread = new Set(); // state keys of sessions that changed while not shown
    this.nodes = new Map();
    this.status = "connecting";
    this._localCounter = 0;
    this._resyncing = new Map();
    this._refreshTimer = null;
    this._searching = false;
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      conn: $("conn"), connText: $("conn-text"), picker: $("agent-picker"),
      pairing: $("pairing"), pairForm: $("pair-form"), pairCode: $("pair-code"),
      pairError: $("pair-error"), requestAccess: $("request-access"), pairWaiting: $("pair-waiting"),
      requestCode: $("request-code"), chat: $("chat"), banner: $("banner"),
      bannerText: $("banner-text"), bannerClose: $("banner-close"), messages: $("messages"),
      empty: $("empty"), composer: $("composer"), input: $("input"), send: $("send"),
      stop: $("stop"), thinking: $("thinking"), sidebar: $("sidebar"), toggle: $("sidebar-toggle"),
      sessionTitle: $("session-title"), mode: $("mode-picker"),
    };
    this.sidebar = new SessionsSidebar(
      doc,
      {
        select: (key) => this._switchSession(key),
        create: () => this._newSession(),
        rename: (key, title) => this._renameSession(key, title),
        archive: (key) => this._archiveSession(key),
        search: () => this._loadForSearch(),
      },
      (key) => this._textOf(key),
      { storage, win },
    );
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

  get _selfBy() {
    return this.transport.deviceId ? `web:${this.transport.deviceId}` : "desktop";
  }

  /** Wire the page and connect. `pairCode` (from the URL fragment) pairs at once. */
  async start({ pairCode = null } = {}) {
    this._bind();
    this.transport.onState((s) => this._onState(s));
    this.transport.onEvent((e) => this._onEvent(e));
    if (pairCode && this.transport.pairing) {
      this._showPairing(true);
      await this._redeem(pairCode);
      return;
    }
    await this.transport.connect();
  }

  // -- page wiring ------------------------------------------------------------------------

  _bind() {
    const { $ } = this;
    $.composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this._send();
    });
    $.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this._send();
      }
    });
    $.input.addEventListener("input", () => this._autosize());
    $.stop.addEventListener("click", () => this._abort());
    $.bannerClose.addEventListener("click", () => this._hideBanner());
    $.picker.addEventListener("change", () => this._switchAgent($.picker.value));
    $.mode.addEventListener("change", () => this._setMode($.mode.value));
    $.pairForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this._redeem($.pairCode.value);
    });
    $.requestAccess.addEventListener("click", () => this._requestAccess());
    this.sidebar.bind();
  }

  _autosize() {
    const { input } = this.$;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  // -- connection state -------------------------------------------------------------------

  _onState({ status, detail }) {
    this.status = status;
    this.$.conn.dataset.state = status;
    this.$.connText.textContent = STATUS_TEXT[status] || status;
    this.$.conn.title = detail || "";
    if (status === "unpaired") {
      this._showPairing(true);
      if (detail) this._pairError(detail);
      return;
    }
    this._showPairing(false);
    this._updateComposer();
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
        if (agent.busy && !this.sessionsSupported) this.state(agent.agentId, MAIN).busyRun ??= "running";
      }
    } catch (error) {
      this._showBanner(`Could not list agents: ${error.message}`);
    }
    await this._loadSessions(this.agentId);
    await this._resync(this.agentId, this.sessionKey);
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
    this._loadSessions(agentId).then(() => this._resync(agentId, this.sessionKey));
  }

  /** Show session `key` of the current agent (from its kept transcript; no fetch). */
  _show(key) {
    this.sessionKey = key;
    this.storage.setItem(SESSION_KEY + this.agentId, key);
    this.unread.delete(`${this.agentId}\n${key}`);
    this.$.messages.replaceChildren();
    this.nodes.clear();
    this._hideBanner();
    this._renderAll();
    this._renderSessions();
  }

  _switchSession(key) {
    if (key === this.sessionKey) return;
    this._show(key);
    this._resync(this.agentId, key);
    this.$.input.focus();
  }

  /** Refetch a session's history (and its waiting approvals) and render it once (items are
   * keyed; nothing shows twice). */
  async _resync(agentId, sessionKey = MAIN) {
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
        if (this.sessionsSupported) params.sessionKey = sessionKey;
        const waiting = state.pendingApprovals();
        const answer = await this.transport.request("history", params);
        state.applyHistory(answer.entries);
        Object.assign(state, { loaded: true, stale: false, lastSeq: answer.lastSeq });
        if (this._shown(agentId, sessionKey)) this._renderAll();
        await this._loadApprovals(agentId, sessionKey, waiting, answer.lastSeq);
        if (this._shown(agentId, sessionKey)) {
          this._renderAll();
          this._markRead(agentId, sessionKey, answer.lastSeq);
        }
      } while (this._resyncing.get(key) === "again");
    } catch (error) {
      if (this.status === "online" && this._shown(agentId, sessionKey)) {
        this._showBanner(`Could not load the conversation: ${error.message}`);
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
    if (bySession.size > 1) this._renderSessions();
  }

  // -- live events ------------------------------------------------------------------------

  _onEvent({ agentId, event }) {
    if (event.type === "read_gap") {
      // Events of any session may be lost: refetch the shown one, the others when shown.
      for (const [key, state] of this.states) {
        if (key.startsWith(`${agentId}\n`)) state.stale = true;
      }
      if (agentId === this.agentId) this._resync(agentId, this.sessionKey);
      this._refreshSessions();
      return;
    }
    const sessionKey = event.sessionKey || MAIN;
    const state = this.state(agentId, sessionKey);
    const { item, created } = state.applyEvent(event);
    const shown = this._shown(agentId, sessionKey);
    if (event.type === "agent_end") {
      // The run's user message (maybe from another device) and final texts come from history.
      if (shown) {
        this._markRead(agentId, sessionKey, event.seq);
        this._resync(agentId, sessionKey);
      } else {
        state.stale = true;
      }
      this._refreshSessions();
    }
    if (!shown) {
      if (agentId === this.agentId && (item || event.type === "agent_end")) {
        this.unread.add(`${agentId}\n${sessionKey}`);
      }
      if (agentId === this.agentId) this._renderSessions();
      return;
    }
    if (event.type === "agent_error") {
      this._showBanner(event.message, event.code);
    }
    if (item) {
      if (created) this._renderAll();
      else this._renderItem(item);
    } else if (event.type === "agent_start") {
      this._renderAll();
    }
    if (event.type === "agent_start" || event.type === "agent_end") this._renderSessions();
    this._updateComposer();
  }

  // -- sessions ---------------------------------------------------------------------------

  /** The agent's sessions from the hub; a hub without them has `main` only. */
  async _loadSessions(agentId) {
    let sessions;
    try {
      ({ sessions } = await this.transport.request("sessions.list", { agentId }));
      this.sessionsSupported = true;
    } catch (error) {
      if (error.code !== "unknown_method") {
        if (this.status === "online") this._showBanner(`Could not list conversations: ${error.message}`);
        return;
      }
      this.sessionsSupported = false;
      sessions = [{ sessionKey: MAIN, title: "", updatedAt: 0, messages: 0, unread: 0, busy: false }];
    }
    this.sessions.set(agentId, sessions);
    for (const session of sessions) {
      const key = `${agentId}\n${session.sessionKey}`;
      if (session.busy) this.state(agentId, session.sessionKey).busyRun ??= "running";
      else if (this.states.get(key)?.busyRun === "running") this.states.get(key).busyRun = null;
    }
    if (agentId === this.agentId && this.sessionsSupported === false) this.sessionKey = MAIN;
    if (agentId === this.agentId) {
      this._renderSessions();
      this._updateComposer();
    }
  }

  /** Reload the list soon (titles, activity, unread counts); bursts make one request. */
  _refreshSessions() {
    if (!this.sessionsSupported || this._refreshTimer) return;
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      this._loadSessions(this.agentId);
    }, 250);
  }

  _info(key = this.sessionKey) {
    const list = this.sessions.get(this.agentId) || [];
    return list.find((s) => s.sessionKey === key) || { sessionKey: key, title: "", updatedAt: 0 };
  }

  _renderSessions() {
    const list = [...(this.sessions.get(this.agentId) || [])];
    if (!list.some((s) => s.sessionKey === this.sessionKey)) list.unshift(this._info());
    const rows = list.map((session) => {
      const key = `${this.agentId}\n${session.sessionKey}`;
      const mine = session.sessionKey === this.sessionKey;
      return {
        ...session,
        unreadShown: !mine && (this.unread.has(key) || session.unread > 0),
        busy: this.states.has(key) ? Boolean(this.states.get(key).busyRun) : session.busy,
        waiting: !mine && (this.states.get(key)?.pendingApprovals().length ?? 0) > 0,
      };
    });
    this.sidebar.update(rows, this.sessionKey, {
      canManage: this.sessionsSupported !== false,
      note: this.sessionsSupported === false ? NO_SESSIONS_NOTE : "",
    });
    const info = this._info();
    this.$.sessionTitle.textContent = sessionTitle(info);
    this.$.sessionTitle.title = info.sessionKey;
    this.$.mode.value = info.mode || "queue";
    this.$.mode.parentElement.hidden = !this.sessionsSupported;
  }

  _markRead(agentId, sessionKey, seq) {
    if (!this.sessionsSupported || typeof seq !== "number") return;
    const params = { agentId, sessionKey, seq };
    this.transport.request("sessions.mark_read", params).then(
      () => {
        const info = (this.sessions.get(agentId) || []).find((s) => s.sessionKey === sessionKey);
        if (info) info.unread = 0;
      },
      () => {}, // the marker is a convenience: the list shows it again on the next refresh
    );
  }

  async _newSession() {
    const agentId = this.agentId;
    try {
      const { sessionKey } = await this.transport.request("sessions.new", { agentId });
      const list = this.sessions.get(agentId) || [];
      list.unshift({ sessionKey, title: "", updatedAt: Date.now(), messages: 0, unread: 0, busy: false });
      this.sessions.set(agentId, list);
      this._switchSession(sessionKey);
      this._refreshSessions();
    } catch (error) {
      this._showBanner(`Could not start a new chat: ${error.message}`, error.code);
    }
  }

  async _renameSession(sessionKey, title) {
    const info = this._info(sessionKey);
    const before = info.title;
    info.title = title;
    this._renderSessions();
    try {
      await this.transport.request("sessions.rename", { agentId: this.agentId, sessionKey, title });
    } catch (error) {
      info.title = before;
      this._renderSessions();
      this._showBanner(`Could not rename: ${error.message}`, error.code);
    }
    this._refreshSessions();
  }

  async _archiveSession(sessionKey) {
    const agentId = this.agentId;
    try {
      await this.transport.request("sessions.archive", { agentId, sessionKey });
    } catch (error) {
      this._showBanner(`Could not archive: ${error.message}`, error.code);
      return;
    }
    const list = (this.sessions.get(agentId) || []).filter((s) => s.sessionKey !== sessionKey);
    this.sessions.set(agentId, list);
    if (sessionKey === this.sessionKey && agentId === this.agentId) this._switchSession(MAIN);
    else this._renderSessions();
    this._refreshSessions();
  }

  /** The shown session's default message mode (`sessions.mode`), for every surface. */
  async _setMode(mode) {
    const { agentId, sessionKey } = this;
    const info = this._info(sessionKey);
    const before = info.mode || "queue";
    info.mode = mode;
    try {
      Object.assign(info, await this.transport.request("sessions.mode", { agentId, sessionKey, mode }));
    } catch (error) {
      info.mode = before;
      this._showBanner(`Could not change the mode: ${error.message}`, error.code);
    }
    this._renderSessions();
  }

  /** Searching covers the text of sessions not loaded yet: load some, one at a time. */
  async _loadForSearch() {
    if (this._searching) return;
    this._searching = true;
    try {
      const agentId = this.agentId;
      const unloaded = (this.sessions.get(agentId) || [])
        .filter((s) => !this.state(agentId, s.sessionKey).loaded)
        .slice(0, SEARCH_LOADS);
      for (const session of unloaded) {
        if (!this.sidebar.query) break;
        await this._resync(agentId, session.sessionKey);
        this.sidebar.render();
      }
    } finally {
      this._searching = false;
    }
  }

  /** A session's loaded text, for the search box. */
  _textOf(sessionKey) {
    const key = `${this.agentId}\n${sessionKey}`;
    const state = this.states.get(key);
    if (!state) return "";
    return state
      .ordered()
      .map((i) => (i.kind === "message" || i.kind === "note" ? i.text : `${i.name || i.tool || ""}`))
      .join("\n");
  }

  // -- rendering --------------------------------------------------------------------------

  _renderAll() {
    const { messages } = this.$;
    const items = this.state().ordered();
    const stick = this._nearBottom();
    for (const item of items) messages.appendChild(this._renderItem(item, false));
    const ids = new Set(items.map((i) => i.id));
    for (const [id, node] of this.nodes) {
      if (!ids.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    this.$.empty.hidden = items.length > 0;
    this._updateComposer();
    if (stick) this._scrollToBottom();
  }

  _renderItem(item, scroll = true) {
    const stick = scroll && this._nearBottom();
    let node = this.nodes.get(item.id);
    if (!node) {
      node = el(this.doc, "div", "row");
      node.dataset.id = item.id;
      this.nodes.set(item.id, node);
      this.$.messages.appendChild(node);
    }
    if (item.kind === "message") this._fillMessage(node, item);
    else if (item.kind === "tool") this._fillTool(node, item);
    else if (item.kind === "approval") {
      fillApproval(this.doc, node, item, {
        decide: (approval, decision) => this._decide(approval, decision),
        selfBy: this._selfBy,
      });
    }
    else this._fillNote(node, item);
    if (stick) this._scrollToBottom();
    return node;
  }

  _fillMessage(node, item) {
    node.className = `row message ${item.role}`;
    node.dataset.final = String(Boolean(item.final));
    node.dataset.status = item.status || "";
    let bubble = node.querySelector(".bubble");
    if (!bubble) {
      bubble = el(this.doc, "div", "bubble");
      node.replaceChildren(bubble);
    }
    if (item.role === "assistant") {
      if (bubble.dataset.text !== item.text) {
        bubble.innerHTML = renderMarkdown(item.text);
        bubble.dataset.text = item.text;
      }
      bubble.classList.toggle("streaming", !item.final);
    } else {
      bubble.textContent = item.text;
    }
    let meta = node.querySelector(".meta");
    const metaText =
      item.status === "failed" ? `Not sent: ${item.error}` :
      item.status === "sending" ? "Sending…" :
      item.aborted ? "Stopped" : "";
    if (metaText) {
      if (!meta) {
        meta = el(this.doc, "div", "meta");
        node.appendChild(meta);
      }
      meta.textContent = metaText;
    } else if (meta) {
      meta.remove();
    }
  }

  _fillTool(node, item) {
    node.className = "row tool";
    node.dataset.status = item.status;
    let details = node.querySelector("details");
    if (!details) {
      details = el(this.doc, "details", "tool-card");
      const summary = el(this.doc, "summary");
      summary.append(
        el(this.doc, "span", "tool-icon"),
        el(this.doc, "span", "tool-name"),
        el(this.doc, "code", "tool-args"),
        el(this.doc, "span", "tool-status"),
      );
      details.append(summary, el(this.doc, "pre", "tool-result"));
      node.replaceChildren(details);
    }
    details.querySelector(".tool-name").textContent = item.name;
    details.querySelector(".tool-args").textContent = shortJson(item.args);
    details.querySelector(".tool-status").textContent =
      item.status === "running" ? "running…" : item.status === "error" ? "failed" : "done";
    details.querySelector(".tool-result").textContent =
      item.status === "running" ? "Waiting for the result…" : prettyJson(item.result);
  }

  _fillNote(node, item) {
    node.className = "row note";
    node.textContent = item.text;
  }

  _nearBottom() {
    const { messages } = this.$;
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  _scrollToBottom() {
    const { messages } = this.$;
    messages.scrollTop = messages.scrollHeight;
  }

  _updateComposer() {
    const online = this.status === "online";
    const busy = Boolean(this.state().busyRun);
    this.$.send.disabled = !online;
    this.$.input.placeholder = online ? "Message the agent…" : STATUS_TEXT[this.status] || "";
    this.$.stop.hidden = !busy;
    const run = this.state().busyRun;
    const answering = this.state().ordered().some(
      (i) => i.runId === run && (i.kind === "tool" || i.role === "assistant"),
    );
    this.$.thinking.hidden = !busy || answering;
  }

  _showBanner(message, code = "") {
    this.$.bannerText.textContent = code ? `${message} (${code})` : message;
    this.$.banner.hidden = false;
  }

  _hideBanner() {
    this.$.banner.hidden = true;
  }

  // -- actions ----------------------------------------------------------------------------

  async _send() {
    const text = this.$.input.value;
    if (!text.trim() || this.status !== "online") return;
    this.$.input.value = "";
    this._autosize();
    this._hideBanner();
    const { agentId, sessionKey } = this;
    const state = this.state(agentId, sessionKey);
    this._localCounter += 1;
    const localId = `${Date.now().toString(36)}-${this._localCounter}`;
    state.addLocal(localId, text);
    this._renderAll();
    this._scrollToBottom();
    try {
      const options = this.sessionsSupported ? { sessionKey } : {};
      const { runId } = await this.transport.send(agentId, text, options);
      const item = state.bindLocal(localId, runId);
      if (item && this._shown(agentId, sessionKey)) this._renderItem(item);
    } catch (error) {
      const item = state.failLocal(localId, error.message);
      if (item && this._shown(agentId, sessionKey)) this._renderItem(item);
    }
  }

  /** Answer an approval card; the outcome shows at once, and again (the same) when the
   * hub's `approval_resolved` arrives. */
  async _decide(item, decision) {
    const rerender = () => {
      if (this.nodes.has(item.id)) this._renderItem(item);
    };
    Object.assign(item, { deciding: true, error: "", choice: decision });
    rerender();
    try {
      const answer = await this.transport.request("approvals.decide", {
        approvalId: item.approvalId, decision,
      });
      if (item.status === "pending") Object.assign(item, { status: answer.decision, by: answer.by });
    } catch (error) {
      item.error =
        error.code === "already_decided" ? error.message : `Could not decide: ${error.message}`;
    } finally {
      item.deciding = false;
      rerender();
    }
  }

  async _abort() {
    try {
      await this.transport.abort(this.agentId, this.sessionsSupported ? this.sessionKey : null);
    } catch (error) {
      this._showBanner(`Could not stop: ${error.message}`);
    }
  }

  // -- pairing ----------------------------------------------------------------------------

  _showPairing(show) {
    this.$.pairing.hidden = !show;
    this.$.chat.hidden = show;
    this.$.sidebar.hidden = show;
    this.$.toggle.hidden = show;
    if (show) this.$.pairCode.focus();
  }

  _pairError(message) {
    this.$.pairError.textContent = message;
    this.$.pairError.hidden = !message;
  }

  async _redeem(code) {
    this._pairError("");
    try {
      await this.transport.pairing.redeem(code.trim());
    } catch (error) {
      this._pairError(error.message);
    }
  }

  async _requestAccess() {
    this._pairError("");
    this.$.requestAccess.disabled = true;
    try {
      const { requestCode } = await this.transport.pairing.request((approved) => {
        this.$.pairWaiting.hidden = true;
        this.$.requestAccess.disabled = false;
        if (!approved) this._pairError("The owner declined this device.");
      });
      this.$.requestCode.textContent = `${requestCode.slice(0, 4)}-${requestCode.slice(4)}`;
      this.$.pairWaiting.hidden = false;
    } catch (error) {
      this.$.requestAccess.disabled = false;
      this._pairError(error.message);
    }
  }
}
