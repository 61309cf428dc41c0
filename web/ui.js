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
//   transport.send(agentId, text): Promise<{runId}>    rejects with an Error having `.code`
//   transport.request(method, params): Promise<payload>  "agents.list", "history", "status"
//   transport.abort(agentId): Promise<{aborted}>
//   transport.pairing (optional): {redeem(code): Promise<void>,
//       request(onDecision): Promise<{requestCode}>}; when absent the UI never shows pairing.
//
// Everything rendered from the agent goes through textContent, except assistant Markdown,
// which goes through markdown.js (marked + DOMPurify, raw HTML escaped).

import { ChatState } from "./chat-state.js";
import { renderMarkdown } from "./markdown.js";

const HISTORY_LIMIT = 200;
const AGENT_KEY = "agenthub.agent";

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
  constructor(doc, transport, { storage = localStorage } = {}) {
    this.doc = doc;
    this.transport = transport;
    this.storage = storage;
    this.states = new Map();
    this.agents = [];
    this.agentId = storage.getItem(AGENT_KEY) || "main";
    this.nodes = new Map();
    this.status = "connecting";
    this._localCounter = 0;
    this._resyncing = new Map();
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      conn: $("conn"), connText: $("conn-text"), picker: $("agent-picker"),
      pairing: $("pairing"), pairForm: $("pair-form"), pairCode: $("pair-code"),
      pairError: $("pair-error"), requestAccess: $("request-access"), pairWaiting: $("pair-waiting"),
      requestCode: $("request-code"), chat: $("chat"), banner: $("banner"),
      bannerText: $("banner-text"), bannerClose: $("banner-close"), messages: $("messages"),
      empty: $("empty"), composer: $("composer"), input: $("input"), send: $("send"),
      stop: $("stop"), thinking: $("thinking"),
    };
  }

  state(agentId = this.agentId) {
    if (!this.states.has(agentId)) this.states.set(agentId, new ChatState());
    return this.states.get(agentId);
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
    $.pairForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this._redeem($.pairCode.value);
    });
    $.requestAccess.addEventListener("click", () => this._requestAccess());
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
      if (!this.agents.includes(this.agentId) && this.agents.length) this.agentId = this.agents[0];
      this._renderPicker();
      for (const agent of agents) {
        if (agent.busy) this.state(agent.agentId).busyRun ??= "running";
      }
    } catch (error) {
      this._showBanner(`Could not list agents: ${error.message}`);
    }
    await this._resync(this.agentId);
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
    this.$.messages.replaceChildren();
    this.nodes.clear();
    this._hideBanner();
    this._renderAll();
    this._resync(agentId);
  }

  /** Refetch history and render it once (items are keyed; nothing shows twice). */
  async _resync(agentId) {
    if (this._resyncing.get(agentId)) {
      this._resyncing.set(agentId, "again");
      return;
    }
    this._resyncing.set(agentId, "busy");
    try {
      do {
        this._resyncing.set(agentId, "busy");
        const answer = await this.transport.request("history", { agentId, limit: HISTORY_LIMIT });
        this.state(agentId).applyHistory(answer.entries);
        if (agentId === this.agentId) this._renderAll();
      } while (this._resyncing.get(agentId) === "again");
    } catch (error) {
      if (this.status === "online") this._showBanner(`Could not load the conversation: ${error.message}`);
    } finally {
      this._resyncing.delete(agentId);
    }
  }

  // -- live events ------------------------------------------------------------------------

  _onEvent({ agentId, event }) {
    if (event.type === "read_gap") {
      this._resync(agentId);
      return;
    }
    const state = this.state(agentId);
    const { item, created } = state.applyEvent(event);
    if (event.type === "agent_end") {
      // The run's user message (maybe from another device) and final texts come from history.
      this._resync(agentId);
    }
    if (agentId !== this.agentId) return;
    if (event.type === "agent_error") {
      this._showBanner(event.message, event.code);
    }
    if (item) {
      if (created) this._renderAll();
      else this._renderItem(item);
    } else if (event.type === "agent_start") {
      this._renderAll();
    }
    this._updateComposer();
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
    const agentId = this.agentId;
    const state = this.state(agentId);
    this._localCounter += 1;
    const localId = `${Date.now().toString(36)}-${this._localCounter}`;
    state.addLocal(localId, text);
    this._renderAll();
    this._scrollToBottom();
    try {
      const { runId } = await this.transport.send(agentId, text);
      const item = state.bindLocal(localId, runId);
      if (item && agentId === this.agentId) this._renderItem(item);
    } catch (error) {
      const item = state.failLocal(localId, error.message);
      if (item && agentId === this.agentId) this._renderItem(item);
    }
  }

  async _abort() {
    try {
      await this.transport.abort(this.agentId);
    } catch (error) {
      this._showBanner(`Could not stop: ${error.message}`);
    }
  }

  // -- pairing ----------------------------------------------------------------------------

  _showPairing(show) {
    this.$.pairing.hidden = !show;
    this.$.chat.hidden = show;
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
