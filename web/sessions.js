// The shown agent's sessions (docs/sessions.md): the list from the hub (`sessions.list`),
// the requests on them (new, rename, archive, delete, mode, mark read), unread markers, and
// the search's loading of text; the sidebar (sessions-sidebar.js) draws them. A hub without
// `sessions.list` has `main` only.

import { fitModeLabels } from "./mode-picker.js";
import { SessionsSidebar, sessionTitle } from "./sessions-sidebar.js";

export const MAIN = "main";
const SEARCH_LOADS = 30;
const REFRESH_MS = 250;
const NO_SESSIONS_NOTE = "This hub has one conversation per agent; update it for more.";

export class Sessions {
  /** `ui`: the ChatUI (its transport, shown agent and session, transcripts, banner). */
  constructor(ui, doc, { storage, win }) {
    this.ui = ui;
    this.lists = new Map(); // agent id -> [session info] (sessions.list rows)
    this.supported = null; // unknown until sessions.list answers
    this.unread = new Set(); // state keys of sessions that changed while not shown
    this._refreshTimer = null;
    this._changes = 0; // changes made here (rename, archive, mode), and how many are going
    this._changing = 0;
    this._searching = false;
    this._creating = false;
    this.guest = false; // set by the UI: this device may not see the owner's sessions
    this.$ = { title: doc.getElementById("session-title"), mode: doc.getElementById("mode-picker") };
    fitModeLabels(this.$.mode, win);
    this.sidebar = new SessionsSidebar(
      doc,
      {
        select: (key) => ui.switchSession(key),
        create: () => this.create(),
        rename: (key, title) => this.rename(key, title),
        archive: (key) => this.archive(key),
        remove: (key) => this.remove(key),
        search: () => this.loadForSearch(),
      },
      (key) => this.textOf(key),
      { storage, win },
    );
  }

  bind() {
    this.sidebar.bind();
    this.$.mode.addEventListener("change", () => this.setMode(this.$.mode.value));
  }

  /** The agent's sessions from the hub. */
  async load(agentId) {
    const { ui } = this;
    let sessions;
    const [changes, changing] = [this._changes, this._changing];
    try {
      ({ sessions } = await ui.transport.request("sessions.list", { agentId }));
      this.supported = true;
      if (changing || this._changes !== changes) {
        this.refresh(); // it may predate a change made here meanwhile: never undo it on screen
        return;
      }
    } catch (error) {
      if (error.code !== "unknown_method") {
        if (ui.status === "online") ui.showBanner(`Could not list conversations: ${error.message}`);
        return;
      }
      this.supported = false;
      sessions = [{ sessionKey: MAIN, title: "", updatedAt: 0, messages: 0, unread: 0, busy: false }];
    }
    this.lists.set(agentId, sessions);
    for (const session of sessions) {
      const key = `${agentId}\n${session.sessionKey}`;
      if (session.busy) ui.state(agentId, session.sessionKey).busyRun ??= "running";
      else if (ui.states.get(key)?.busyRun === "running") ui.states.get(key).busyRun = null;
    }
    if (agentId === ui.agentId && this.supported === false) ui.sessionKey = MAIN;
    if (agentId === ui.agentId) {
      this.render();
      ui.updateComposer();
      if (this.supported && this.guest) this._showOneListed(sessions);
    }
  }

  /** A guest sees only its own sessions (and may not write in `main`): show the newest
   * listed one, or with none yet a new one of its own. */
  _showOneListed(sessions) {
    const { ui } = this;
    if (this._creating || sessions.some((s) => s.sessionKey === ui.sessionKey)) return;
    if (sessions.length) {
      ui.switchSession(sessions[0].sessionKey);
      return;
    }
    this._creating = true;
    this.create().finally(() => {
      this._creating = false;
    });
  }

  /** Reload the list soon (titles, activity, unread counts); bursts make one request. */
  refresh() {
    if (!this.supported || this._refreshTimer) return;
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      this.load(this.ui.agentId);
    }, REFRESH_MS);
  }

  info(key = this.ui.sessionKey) {
    const list = this.lists.get(this.ui.agentId) || [];
    return list.find((s) => s.sessionKey === key) || { sessionKey: key, title: "", updatedAt: 0 };
  }

  /** Mark a session of the shown agent as changed while not shown. */
  markUnread(agentId, sessionKey) {
    this.unread.add(`${agentId}\n${sessionKey}`);
  }

  shown(agentId, sessionKey) {
    this.unread.delete(`${agentId}\n${sessionKey}`);
  }

  render() {
    const { ui } = this;
    const list = [...(this.lists.get(ui.agentId) || [])];
    if (!list.some((s) => s.sessionKey === ui.sessionKey)) list.unshift(this.info());
    const rows = list.map((session) => {
      const key = `${ui.agentId}\n${session.sessionKey}`;
      const mine = session.sessionKey === ui.sessionKey;
      const state = ui.states.get(key);
      return {
        ...session,
        unreadShown: !mine && (this.unread.has(key) || session.unread > 0),
        busy: state ? Boolean(state.busyRun) : session.busy,
        waiting: !mine && (state?.pendingApprovals().length ?? 0) > 0,
      };
    });
    this.sidebar.update(rows, ui.sessionKey, {
      canManage: this.supported !== false,
      note: this.supported === false ? NO_SESSIONS_NOTE : "",
    });
    const info = this.info();
    this.$.title.textContent = sessionTitle(info);
    this.$.title.title = info.sessionKey;
    this.$.mode.value = info.mode || "queue";
    this.$.mode.parentElement.hidden = !this.supported;
  }

  markRead(agentId, sessionKey, seq) {
    if (!this.supported || typeof seq !== "number") return;
    const params = { agentId, sessionKey, seq };
    this.ui.transport.request("sessions.mark_read", params).then(
      () => {
        const info = (this.lists.get(agentId) || []).find((s) => s.sessionKey === sessionKey);
        if (info) info.unread = 0;
      },
      () => {}, // the marker is a convenience: the list shows it again on the next refresh
    );
  }

  async create() {
    const { ui } = this;
    const agentId = ui.agentId;
    try {
      const { sessionKey } = await ui.transport.request("sessions.new", { agentId });
      const list = this.lists.get(agentId) || [];
      list.unshift({ sessionKey, title: "", updatedAt: Date.now(), messages: 0, unread: 0, busy: false });
      this.lists.set(agentId, list);
      ui.switchSession(sessionKey);
      this.refresh();
    } catch (error) {
      ui.showBanner(`Could not start a new chat: ${error.message}`, error.code);
    }
  }

  async rename(sessionKey, title) {
    const { ui } = this;
    const info = this.info(sessionKey);
    const before = info.title;
    info.title = title;
    this.render();
    const params = { agentId: ui.agentId, sessionKey, title };
    if (!(await this._ask("sessions.rename", params, "rename"))) {
      info.title = before;
      this.render();
    }
    this.refresh();
  }

  async archive(sessionKey) {
    const { ui } = this;
    const agentId = ui.agentId;
    if (!(await this._ask("sessions.archive", { agentId, sessionKey }, "archive"))) return;
    const list = (this.lists.get(agentId) || []).filter((s) => s.sessionKey !== sessionKey);
    this.lists.set(agentId, list);
    if (sessionKey === ui.sessionKey && agentId === ui.agentId) ui.switchSession(MAIN);
    else this.render();
    this.refresh();
  }

  /** Delete a session for good (`sessions.delete`); every client then hears
   * `session_deleted` (see `deleted`). Refusals (a reply in progress) show in the banner.
   * Resolves to whether it was deleted. */
  async remove(sessionKey) {
    const { ui } = this;
    const agentId = ui.agentId;
    if (!(await this._ask("sessions.delete", { agentId, sessionKey }, "delete"))) return false;
    this.deleted(agentId, sessionKey);
    return true;
  }

  /** Session `sessionKey` is gone (deleted here or elsewhere): drop it and its transcript;
   * showing it, move to main (a guest: to its newest session, or a new one). */
  deleted(agentId, sessionKey) {
    const { ui } = this;
    const list = this.lists.get(agentId);
    if (list) this.lists.set(agentId, list.filter((s) => s.sessionKey !== sessionKey));
    ui.states.delete(`${agentId}\n${sessionKey}`);
    this.unread.delete(`${agentId}\n${sessionKey}`);
    this.sidebar.endConfirm(sessionKey);
    if (agentId !== ui.agentId) return;
    if (sessionKey !== ui.sessionKey) {
      this.render();
      return;
    }
    if (this.guest) this._showOneListed(this.lists.get(agentId) || []);
    else ui.switchSession(MAIN);
    this.refresh();
  }

  /** Request `method` as a change made here (`_change`): its answer, or null after showing a
   * refusal in the banner as "Could not <doing>: …". */
  async _ask(method, params, doing) {
    try {
      return await this._change(() => this.ui.transport.request(method, params));
    } catch (error) {
      this.ui.showBanner(`Could not ${doing}: ${error.message}`, error.code);
      return null;
    }
  }

  /** A change made here; list answers that may predate it are dropped (`load`). */
  async _change(request) {
    this._changes += 1;
    this._changing += 1;
    try {
      return await request();
    } finally {
      this._changing -= 1;
    }
  }

  /** The shown session's default message mode (`sessions.mode`), for every surface. */
  async setMode(mode) {
    const { ui } = this;
    const { agentId, sessionKey } = ui;
    const info = this.info(sessionKey);
    const before = info.mode || "queue";
    info.mode = mode;
    const changed = await this._ask(
      "sessions.mode", { agentId, sessionKey, mode }, "change the mode");
    if (changed) Object.assign(info, changed);
    else info.mode = before;
    this.render();
  }

  /** Searching covers the text of sessions not loaded yet: load some, one at a time. */
  async loadForSearch() {
    if (this._searching) return;
    this._searching = true;
    const { ui } = this;
    try {
      const agentId = ui.agentId;
      const unloaded = (this.lists.get(agentId) || [])
        .filter((s) => !ui.state(agentId, s.sessionKey).loaded)
        .slice(0, SEARCH_LOADS);
      for (const session of unloaded) {
        if (!this.sidebar.query) break;
        await ui.resync(agentId, session.sessionKey);
        this.sidebar.render();
      }
    } finally {
      this._searching = false;
    }
  }

  /** A session's loaded text, for the search box. */
  textOf(sessionKey) {
    const state = this.ui.states.get(`${this.ui.agentId}\n${sessionKey}`);
    if (!state) return "";
    return state
      .ordered()
      .map((i) => (i.kind === "message" || i.kind === "note" ? i.text : `${i.name || i.tool || ""}`))
      .join("\n");
  }
}
