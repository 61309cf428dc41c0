// The conversations sidebar: new chat, switch, rename, archive, delete (after an in-row
// confirmation), search over titles and text, unread and busy markers. It only draws and
// reports what the person does; ui.js owns the sessions and the requests. Collapsible: beside
// the chat on wide screens, a drawer over it on narrow ones (style.css switches at 720px).
// Every title and snippet is set as text.

import { confirmRow } from "./confirm-row.js";
import { button, el } from "./dom.js";
import { icon } from "./icons.js";

export const PHONE = "(max-width: 720px)";
const OPEN_KEY = "agenthub.sidebar";
const SNIPPET = 60;

/** The title a session shows (a fresh one has none until its first message). */
export function sessionTitle(session) {
  if (session.title) return session.title;
  return session.sessionKey === "main" ? "Main conversation" : "New chat";
}

function when(ms) {
  if (!ms) return "";
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

function snippetAround(text, at, length) {
  const start = Math.max(0, at - 20);
  const piece = text.slice(start, start + SNIPPET).replace(/\s+/g, " ");
  return (start > 0 ? "…" : "") + piece + (start + SNIPPET < text.length ? "…" : "");
}

export class SessionsSidebar {
  /**
   * `actions`: {select(key), create(), rename(key, title), archive(key), search(query),
   * remove(key) (resolves to whether the session was deleted)};
   * `textOf(key)`: the loaded text of a session, for the search.
   */
  constructor(doc, actions, textOf, { storage = localStorage, win = window } = {}) {
    this.doc = doc;
    this.actions = actions;
    this.textOf = textOf;
    this.storage = storage;
    this.win = win;
    this.sessions = [];
    this.current = "main";
    this.query = "";
    this.editing = null;
    this.renaming = null; // the rename form, kept across renders so what is typed stays
    this.confirming = null; // the key whose deletion waits for a yes, and its box
    this.confirmBox = null;
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      app: $("app"), toggle: $("sidebar-toggle"), sidebar: $("sidebar"), scrim: $("scrim"),
      create: $("new-session"), search: $("session-search"), list: $("session-list"),
      note: $("sessions-note"),
    };
  }

  get phone() {
    return this.win.matchMedia(PHONE).matches;
  }

  bind() {
    const { $ } = this;
    this.setOpen(this.phone ? false : this.storage.getItem(OPEN_KEY) !== "closed", false);
    // Narrowed to phone width, the sidebar would cover the chat: it closes (a drawer now).
    this.win.matchMedia(PHONE).addEventListener("change", () => {
      if (this.phone) this.setOpen(false, false);
    });
    $.toggle.addEventListener("click", () => this.setOpen($.app.dataset.sidebar !== "open"));
    $.scrim.addEventListener("click", () => this.setOpen(false));
    $.create.addEventListener("click", () => {
      this.actions.create();
      if (this.phone) this.setOpen(false);
    });
    $.search.addEventListener("input", () => {
      this.query = $.search.value.trim();
      this.render();
      if (this.query) this.actions.search(this.query);
    });
  }

  setOpen(open, remember = true) {
    const { $ } = this;
    $.app.dataset.sidebar = open ? "open" : "closed";
    $.toggle.setAttribute("aria-expanded", String(open));
    $.scrim.hidden = !(open && this.phone);
    if (remember && !this.phone) this.storage.setItem(OPEN_KEY, open ? "open" : "closed");
  }

  /** Show `sessions` with `current` selected; `canManage` false: the hub has main only. */
  update(sessions, current, { canManage = true, note = "" } = {}) {
    this.sessions = sessions;
    this.current = current;
    this.$.create.disabled = !canManage;
    this.$.create.title = canManage ? "Start a new conversation" : note;
    this.$.note.textContent = note;
    this.$.note.hidden = !note;
    this.canManage = canManage;
    this.render();
  }

  /** The snippet of the session's text that matches the query, or null. */
  _match(session, query) {
    const needle = query.toLowerCase();
    if (sessionTitle(session).toLowerCase().includes(needle)) return "";
    if (session.sessionKey.toLowerCase().includes(needle)) return "";
    const text = this.textOf(session.sessionKey);
    const at = text.toLowerCase().indexOf(needle);
    return at < 0 ? null : snippetAround(text, at, needle.length);
  }

  render() {
    const { doc } = this;
    // A refresh (a reply streaming, another device) must not take the rename box's focus or
    // caret, which moving it to its new row does: note them before the move.
    const input = this.renaming?.querySelector("input");
    const caret = input && doc.activeElement === input
      ? [input.selectionStart, input.selectionEnd]
      : null;
    const confirmFocus = this.confirmBox?.contains(doc.activeElement) ? doc.activeElement : null;
    const rows = [];
    for (const session of this.sessions) {
      const snippet = this.query ? this._match(session, this.query) : "";
      if (snippet === null) continue;
      rows.push(this._row(session, snippet));
    }
    if (rows.length === 0 && this.query) {
      rows.push(el(doc, "li", "session-empty", "No conversation matches."));
    }
    this.$.list.replaceChildren(...rows);
    if (caret) {
      input.focus();
      input.setSelectionRange(...caret);
    }
    if (confirmFocus?.isConnected) confirmFocus.focus();
  }

  _row(session, snippet) {
    const { doc } = this;
    const key = session.sessionKey;
    const row = el(doc, "li", "session");
    row.dataset.key = key;
    row.dataset.current = String(key === this.current);
    row.dataset.unread = String(Boolean(session.unreadShown));
    row.dataset.busy = String(Boolean(session.busy));
    row.dataset.waiting = String(Boolean(session.waiting));
    if (this.editing === key) {
      this.renaming ??= this._renameForm(session);
      row.append(this.renaming);
      return row;
    }
    if (this.confirming === key) {
      this.confirmBox ??= this._confirmDelete(session);
      row.dataset.confirming = "true";
      row.append(this.confirmBox);
      return row;
    }
    const open = el(doc, "button", "session-open");
    open.type = "button";
    open.title = key;
    const top = el(doc, "span", "session-top");
    top.append(el(doc, "span", "session-name", sessionTitle(session)));
    if (key === "main") {
      const tag = el(doc, "span", "session-tag", "main");
      tag.title = "The conversation your desktop, browsers and chat apps share";
      top.append(tag);
    }
    open.append(top, el(doc, "span", "session-when", when(session.updatedAt)));
    if (snippet) open.append(el(doc, "span", "session-snippet", snippet));
    const badge = el(doc, "span", "session-badge");
    badge.setAttribute(
      "aria-label",
      session.waiting ? "waiting for approval" : session.busy ? "answering" : "unread",
    );
    if (session.waiting) badge.textContent = "!";
    open.append(badge);
    if (key === this.current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => {
      this.actions.select(key);
      if (this.phone) this.setOpen(false);
    });
    row.append(open);
    if (this.canManage) {
      // A row's action: `what` is its title and, with the session's, its name for readers.
      const action = (kind, what, content, onClick) => {
        const control = button(doc, `session-action session-${kind}`, "", what);
        control.append(content);
        control.setAttribute("aria-label", `${what} ${sessionTitle(session)}`);
        control.addEventListener("click", onClick);
        return control;
      };
      row.append(action("rename", "Rename", "✎", () => {
        this.editing = key;
        this.renaming = null;
        this.render();
      }));
      if (key !== "main") {
        const archive = action("archive", "Archive", "⤓", () => this.actions.archive(key));
        const remove = action("delete", "Delete", icon(doc, "trash"), () => {
          this.confirming = key;
          this.confirmBox = null;
          this.render();
          this.confirmBox?.querySelector(".session-confirm-cancel").focus();
        });
        row.append(archive, remove);
      }
    }
    return row;
  }

  /** Forget a deletion waiting for a yes (done, cancelled, or its session gone). */
  endConfirm(key, focusRow = false) {
    if (this.confirming !== key) return;
    this.confirming = null;
    this.confirmBox = null;
    this.render();
    if (!focusRow) return;
    const row = [...this.$.list.children].find((r) => r.dataset.key === key);
    row?.querySelector(".session-delete")?.focus();
  }

  /** The in-row question before a deletion: Delete or Cancel (Escape), focus on Cancel. */
  _confirmDelete(session) {
    const { doc } = this;
    const key = session.sessionKey;
    return confirmRow(doc, {
      prefix: "session-confirm",
      label: `Delete ${sessionTitle(session)}?`,
      question: [
        "Delete ",
        el(doc, "strong", "", sessionTitle(session)),
        "? Its messages and the photos only it holds are removed for good.",
      ],
      yes: "Delete",
      busy: "Deleting…",
      // Refused: back to the row's Delete button (the banner says why).
      onYes: () => this.actions.remove(key).then((deleted) => this.endConfirm(key, !deleted)),
      onCancel: () => this.endConfirm(key, true),
    });
  }

  _renameForm(session) {
    const { doc } = this;
    const form = el(doc, "form", "session-rename-form");
    const input = el(doc, "input", "session-title-input");
    input.value = sessionTitle(session);
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title");
    const done = () => {
      this.editing = null;
      this.renaming = null;
      this.render();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (title && title !== sessionTitle(session)) this.actions.rename(session.sessionKey, title);
      done();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") done();
    });
    form.append(input);
    this.win.setTimeout(() => {
      input.focus();
      input.select();
    }, 0);
    return form;
  }
}
