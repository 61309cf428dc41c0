// The Transport of the desktop window: the pywebview bridge to the hub running in the same
// process (desktop/bridge.py). Same interface as the gateway transport (see ui.js), plus the
// owner's pairing panel: pending requests from web devices and Telegram users, with approve
// and deny, kept current by the hub's pushes.
//
// - Calls: `window.pywebview.api.<method>(…)` answers {ok, payload} or {ok: false, error}.
//   pywebview injects the API after the page has loaded and fires `pywebviewready`.
// - Pushes: the hub calls `window.agenthubDesktop.receive(text)` with a JSON *string* holding
//   an array of pushes (one call per batch, at most one per animation frame). It is parsed
//   here as data, never evaluated: `stream` items go to onEvent handlers as
//   {agentId, streamId, event}; `pairing` items refresh the pairing panel.
// - Links in replies never navigate the window: http(s)/mailto links open in the system
//   browser through the bridge (the window itself blocks every other origin).
// - Everything shown in the pairing panel is set through textContent.

const READY_TIMEOUT_MS = 20000;

export class TransportError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function waitForBridge(win) {
  if (win.pywebview?.api?.subscribe) return Promise.resolve(win.pywebview.api);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new TransportError("NO_BRIDGE", "the desktop bridge did not start")),
      READY_TIMEOUT_MS,
    );
    win.addEventListener(
      "pywebviewready",
      () => {
        clearTimeout(timer);
        resolve(win.pywebview.api);
      },
      { once: true },
    );
  });
}

export class DesktopTransport {
  constructor({ win = window, doc = document } = {}) {
    this.win = win;
    this.doc = doc;
    this.api = null;
    this.status = "connecting";
    this.subscribed = new Set();
    this._eventHandlers = [];
    this._stateHandlers = [];
    this.panel = new PairingPanel(doc, this);
  }

  // -- Transport interface ----------------------------------------------------------------

  onEvent(handler) {
    this._eventHandlers.push(handler);
  }

  onState(handler) {
    this._stateHandlers.push(handler);
  }

  async connect() {
    this._setState("connecting");
    this.win.agenthubDesktop = { receive: (text) => this._receive(text) };
    this._guardLinks();
    try {
      this.api = await waitForBridge(this.win);
      const { agents } = await this.request("agents.list");
      // Subscribe before the UI fetches history (on "online"), so no event falls between.
      for (const agent of agents) await this._subscribe(agent.agentId);
      this.panel.show((await this.request("pair.list")).pending);
      this._setState("online");
    } catch (error) {
      this._setState("offline", error.message);
    }
  }

  // The bridge's `send`: the session and mode when given, and attachments
  // [{name, mediaType, data}] as in a gateway `message` frame (docs/protocol.md).
  async send(agentId, text, { sessionKey, mode, attachments } = {}) {
    await this._subscribe(agentId);
    const options = {};
    if (sessionKey) options.sessionKey = sessionKey;
    if (mode) options.mode = mode;
    if (attachments && attachments.length) options.attachments = attachments;
    return this._call("send", agentId, text, options);
  }

  // Any method of the hub's request table (the same names as over the gateway).
  request(method, params = {}) {
    return this._call("request", method, params);
  }

  abort(agentId, sessionKey = null) {
    return this.request("abort", sessionKey ? { agentId, sessionKey } : { agentId });
  }

  // Owner actions on pairing requests (the pairing panel uses them). `owner`: a chat user
  // joins the owner's own conversation instead of getting one of their own.
  approve(code, owner = false) {
    return this.request("pair.approve", { code, owner });
  }

  deny(code) {
    return this.request("pair.deny", { code });
  }

  // -- plumbing ---------------------------------------------------------------------------

  async _call(method, ...args) {
    if (!this.api) throw new TransportError("offline", "the desktop bridge is not ready");
    let reply;
    try {
      reply = await this.api[method](...args);
    } catch (error) {
      throw new TransportError("bridge", error?.message || String(error));
    }
    if (!reply || !reply.ok) {
      const error = reply?.error || { code: "bridge", message: "no answer from the hub" };
      throw new TransportError(error.code, error.message);
    }
    return reply.payload;
  }

  async _subscribe(agentId) {
    if (this.subscribed.has(agentId)) return;
    await this._call("subscribe", agentId);
    this.subscribed.add(agentId);
  }

  _setState(status, detail = "") {
    this.status = status;
    for (const handler of this._stateHandlers) handler({ status, detail });
  }

  _receive(text) {
    let pushes;
    try {
      pushes = JSON.parse(text);
    } catch {
      return 0;
    }
    if (!Array.isArray(pushes)) return 0;
    for (const push of pushes) {
      try {
        if (push.kind === "stream") {
          const { agentId, streamId, event } = push;
          for (const handler of this._eventHandlers) handler({ agentId, streamId, event });
        } else if (push.kind === "pairing") {
          this.panel.show(push.pending);
        }
      } catch (error) {
        console.error("agenthub: a push could not be shown", error);
      }
    }
    return pushes.length;
  }

  _guardLinks() {
    this.doc.addEventListener(
      "click",
      (event) => {
        const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
        if (!link) return;
        const url = new URL(link.getAttribute("href"), this.doc.baseURI);
        if (url.origin === this.win.location.origin && !link.target) return;
        event.preventDefault();
        if (["http:", "https:", "mailto:"].includes(url.protocol)) {
          this._call("open_link", url.href).catch((error) => console.warn(error.message));
        }
      },
      true,
    );
  }
}

// The owner's list of pending pairing requests, shown above the chat while any are waiting.
class PairingPanel {
  constructor(doc, transport) {
    this.doc = doc;
    this.transport = transport;
    this.root = null;
  }

  _mount() {
    if (this.root) return this.root;
    const doc = this.doc;
    const root = doc.createElement("section");
    root.id = "pairing-requests";
    root.setAttribute("aria-label", "Pairing requests");
    // Styled through the CSSOM (the page's CSP allows no inline style markup).
    Object.assign(root.style, {
      display: "flex",
      flexDirection: "column",
      gap: "8px",
      width: "calc(100% - 40px)",
      maxWidth: "820px",
      margin: "12px auto 0",
      padding: "12px 14px",
      borderRadius: "10px",
      background: "var(--panel)",
      border: "1px solid color-mix(in srgb, var(--warn) 45%, var(--border))",
    });
    root.hidden = true;
    const anchor = doc.querySelector(".topbar");
    if (anchor) anchor.after(root);
    else doc.body.prepend(root);
    this.root = root;
    return root;
  }

  show(pending) {
    const root = this._mount();
    const doc = this.doc;
    const items = (Array.isArray(pending) ? pending : []).map((request) => {
      const row = doc.createElement("div");
      row.className = "pairing-request";
      row.dataset.code = String(request.code);
      Object.assign(row.style, { display: "flex", alignItems: "center", gap: "10px" });
      row.title = String(request.subject);
      const what = doc.createElement("span");
      const who = request.kind === "channel" ? "Chat user" : "Web device";
      what.textContent = `${who} “${request.label || request.subject}” asks for access`;
      what.style.flex = "1";
      const code = doc.createElement("code");
      const text = String(request.code);
      code.textContent = `${text.slice(0, 4)}-${text.slice(4)}`;
      Object.assign(code.style, { whiteSpace: "nowrap", fontWeight: "600", letterSpacing: "1px" });
      const buttons = [];
      if (request.kind === "channel") {
        // A chat user is a guest (a conversation of their own) unless the owner says it is them.
        const guest = this._button("Approve as guest", "primary", () =>
          this.transport.approve(request.code, false),
        );
        guest.dataset.action = "approve";
        const owner = this._button("It's me", "secondary", () =>
          this.transport.approve(request.code, true),
        );
        owner.dataset.action = "approve-owner";
        owner.title = "Approve as yourself: this chat joins your own conversation";
        buttons.push(guest, owner);
      } else {
        const approve = this._button("Approve", "primary", () =>
          this.transport.approve(request.code),
        );
        approve.dataset.action = "approve";
        buttons.push(approve);
      }
      const deny = this._button("Deny", "stop", () => this.transport.deny(request.code));
      deny.dataset.action = "deny";
      row.append(what, code, ...buttons, deny);
      return row;
    });
    const title = doc.createElement("strong");
    title.textContent = "Pairing requests";
    root.replaceChildren(title, ...items);
    root.hidden = items.length === 0;
  }

  _button(text, className, action) {
    const button = this.doc.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = text;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } catch (error) {
        button.disabled = false;
        button.title = error.message;
      }
    });
    return button;
  }
}
