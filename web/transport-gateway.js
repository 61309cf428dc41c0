// The Transport of the browser client: the agenthub gateway over socket.io-client.
// See the interface in ui.js. Frames and events follow docs/protocol.md.
//
// - Credentials (device id + token) live in the given storage (localStorage) and travel only
//   in the Socket.IO `auth` payload, never in a URL.
// - Per-stream `seq` is checked: a jump (or a first frame that is not 0) yields a synthetic
//   `read_gap` event, telling the UI to refetch history. After every (re)connect with a hub
//   online, and whenever a hub comes back, the state "online" tells the UI to resync too.
// - `going_away` (the gateway node is stopping) means: reconnect after a jittered delay.

import { io } from "./node_modules/socket.io-client/dist/socket.io.esm.min.js";

const CREDENTIALS_KEY = "agenthub.device";
const REQUEST_TIMEOUT_MS = 15000;
const MAX_TRACKED_STREAMS = 500;

export class TransportError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class GatewayTransport {
  constructor({ url = location.origin, storage = localStorage, label = navigator.userAgent } = {}) {
    this.url = url;
    this.storage = storage;
    this.label = label.slice(0, 100);
    this.socket = null;
    this.hubs = [];
    this.status = "connecting";
    this._eventHandlers = [];
    this._stateHandlers = [];
    this._pending = new Map();
    this._seqs = new Map();
    this._counter = 0;
    this._goingAway = false;
    this.maxMessageBytes = undefined;
    this.pairing = {
      redeem: (code) => this._redeem(code),
      request: (onDecision) => this._requestAccess(onDecision),
    };
  }

  // -- Transport interface ----------------------------------------------------------------

  onEvent(handler) {
    this._eventHandlers.push(handler);
  }

  onState(handler) {
    this._stateHandlers.push(handler);
  }

  async connect() {
    const credentials = this._credentials();
    if (!credentials) {
      this._setState("unpaired");
      return;
    }
    this._open(credentials);
  }

  // A `message` frame: the session and mode when given (else `main` and its own mode), and
  // attachments [{name, mediaType, data}] (docs/protocol.md).
  send(agentId, text, { sessionKey, mode, attachments } = {}) {
    const payload = { agentId, content: text };
    if (sessionKey) payload.sessionKey = sessionKey;
    if (mode) payload.mode = mode;
    if (attachments && attachments.length) payload.attachments = attachments;
    return this._frame("message", payload, null);
  }

  request(method, params = {}) {
    const requestId = this._nextId("q");
    return this._frame("request", { requestId, method, params }, requestId);
  }

  abort(agentId, sessionKey = null) {
    return this.request("abort", sessionKey ? { agentId, sessionKey } : { agentId });
  }

  // -- connection -------------------------------------------------------------------------

  _credentials() {
    try {
      const saved = JSON.parse(this.storage.getItem(CREDENTIALS_KEY) || "null");
      return saved && saved.deviceId && saved.token ? saved : null;
    } catch {
      return null;
    }
  }

  get deviceId() {
    return this._credentials()?.deviceId ?? null;
  }

  _setState(status, detail = "") {
    this.status = status;
    for (const handler of this._stateHandlers) handler({ status, detail });
  }

  _emitEvent(agentId, streamId, event) {
    for (const handler of this._eventHandlers) handler({ agentId, streamId, event });
  }

  _open(credentials) {
    this._close();
    this._setState("connecting");
    const socket = io(this.url, {
      auth: { role: "client", deviceId: credentials.deviceId, token: credentials.token },
      transports: ["websocket"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 10000,
      randomizationFactor: 0.5,
    });
    this.socket = socket;
    socket.on("registered", (info) => {
      // The gateway's frame limit, when it says (older gateways: 1 MiB, the UI's default).
      if (Number.isInteger(info.maxFrameBytes)) this.maxMessageBytes = info.maxFrameBytes;
      this._online(info.hubs || []);
    });
    socket.on("devices", ({ devices }) => {
      const hubs = devices.filter((d) => d.role === "hub").map((d) => d.deviceId);
      const cameBack = hubs.length > 0 && (this.hubs.length === 0 || hubs[0] !== this.hubs[0]);
      this.hubs = hubs;
      if (hubs.length === 0) this._setState("hub_offline", "The agent's hub is not connected.");
      else if (cameBack) this._setState("online");
    });
    socket.on("receive", (frame) => this._receive(frame));
    socket.on("send_error", (error) => this._sendError(error));
    socket.on("going_away", () => {
      this._goingAway = true;
    });
    socket.on("connect_error", (error) => {
      if (error?.data?.code === "UNAUTHORIZED") {
        // Fail closed: the token is no longer valid (revoked). Forget it and pair again.
        this.storage.removeItem(CREDENTIALS_KEY);
        this._close();
        this._setState("unpaired", "This device is no longer paired. Pair it again.");
      } else {
        this._setState("reconnecting", error?.message || "");
      }
    });
    socket.on("disconnect", (reason) => {
      this._failPending("the connection dropped; the message may not have been delivered");
      if (reason === "io client disconnect") return;
      this._setState("reconnecting");
      if (reason === "io server disconnect") {
        // The server closed this socket: after going_away (a restart) reconnect soon; else
        // (e.g. revoked) try once more, and a refusal then shows the pairing screen.
        const delay = (this._goingAway ? 300 : 1000) * (0.5 + Math.random());
        this._goingAway = false;
        setTimeout(() => {
          if (this.socket === socket) socket.connect();
        }, delay);
      }
    });
  }

  _online(hubs) {
    this.hubs = hubs;
    this._seqs.clear();
    if (hubs.length === 0) this._setState("hub_offline", "The agent's hub is not connected.");
    else this._setState("online");
  }

  _close() {
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.disconnect();
      this.socket = null;
    }
  }

  // -- frames -----------------------------------------------------------------------------

  _nextId(prefix) {
    this._counter += 1;
    return `${prefix}-${Date.now().toString(36)}-${this._counter}`;
  }

  _frame(action, payload, requestId) {
    const credentials = this._credentials();
    if (!this.socket || !this.socket.connected || !credentials) {
      return Promise.reject(new TransportError("OFFLINE", "not connected"));
    }
    if (this.hubs.length === 0) {
      return Promise.reject(new TransportError("DEVICE_NOT_FOUND", "the agent's hub is offline"));
    }
    const id = this._nextId("f");
    const frame = { id, from: credentials.deviceId, to: this.hubs[0], action, payload };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(requestId ?? id);
        reject(new TransportError("TIMEOUT", "no answer from the agent's hub"));
      }, REQUEST_TIMEOUT_MS);
      this._pending.set(requestId ?? id, { resolve, reject, timer, frameId: id });
      this.socket.emit("send", frame);
    });
  }

  _settle(key, settle) {
    const pending = this._pending.get(key);
    if (!pending) return;
    this._pending.delete(key);
    clearTimeout(pending.timer);
    settle(pending);
  }

  _failPending(message) {
    for (const key of [...this._pending.keys()]) {
      this._settle(key, (p) => p.reject(new TransportError("OFFLINE", message)));
    }
  }

  _sendError({ messageId, code, message }) {
    for (const [key, pending] of this._pending) {
      if (pending.frameId === messageId) {
        this._settle(key, (p) => p.reject(new TransportError(code, message)));
        return;
      }
    }
  }

  _receive(frame) {
    if (frame.action === "response") {
      const { requestId, ok, payload, error } = frame.payload;
      this._settle(requestId, (p) =>
        ok ? p.resolve(payload) : p.reject(new TransportError(error.code, error.message)),
      );
    } else if (frame.action === "stream") {
      const { agentId, streamId, seq, event } = frame.payload;
      const expected = this._seqs.has(streamId) ? this._seqs.get(streamId) + 1 : 0;
      this._seqs.set(streamId, seq);
      if (event.type === "agent_end") this._seqs.delete(streamId);
      if (this._seqs.size > MAX_TRACKED_STREAMS) this._seqs.delete(this._seqs.keys().next().value);
      this._emitEvent(agentId, streamId, event);
      if (seq !== expected && event.type !== "read_gap") {
        this._emitEvent(agentId, streamId, { type: "read_gap", agentId });
      }
    }
  }

  // -- pairing ----------------------------------------------------------------------------

  _pairingSocket() {
    return new Promise((resolve, reject) => {
      const socket = io(this.url, { auth: { role: "pair" }, transports: ["websocket"], reconnection: false });
      socket.once("registered", () => resolve(socket));
      socket.once("connect_error", (error) => {
        socket.disconnect();
        reject(new TransportError(error?.data?.code || "OFFLINE", error?.data?.message || "cannot reach the gateway"));
      });
    });
  }

  _adopt(result) {
    this.storage.setItem(
      CREDENTIALS_KEY,
      JSON.stringify({ deviceId: result.deviceId, token: result.token }),
    );
    this._open({ deviceId: result.deviceId, token: result.token });
  }

  async _redeem(code) {
    const socket = await this._pairingSocket();
    try {
      const result = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck("pair", { code, label: this.label });
      if (!result.ok) throw new TransportError(result.error.code, result.error.message);
      this._adopt(result);
    } finally {
      socket.disconnect();
    }
  }

  /** Ask the owner for access. Resolves with the code to tell them; `onDecision(approved)`
   * is called once they decide (approved: this transport connects by itself). */
  async _requestAccess(onDecision) {
    const socket = await this._pairingSocket();
    const result = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck("pair_request", { label: this.label });
    if (!result.ok) {
      socket.disconnect();
      throw new TransportError(result.error.code, result.error.message);
    }
    socket.once("paired", (paired) => {
      socket.disconnect();
      this._adopt(paired);
      onDecision(true);
    });
    socket.once("pair_denied", () => {
      socket.disconnect();
      onDecision(false);
    });
    return { requestCode: result.requestCode };
  }
}
