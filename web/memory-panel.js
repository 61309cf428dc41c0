// The memory panel (docs/tools.md, "Memory"): the notes the agent keeps about the person of the
// shown conversation (`memory.list` with its agent and session; whose they are follows the
// session rules, so a guest sees its own), numbered, each with Forget after an in-row
// confirmation (`memory.forget`). Opened from the sidebar; its button hides where the hub has
// no memory requests. Every note is set as text.

import { confirmRow } from "./confirm-row.js";
import { bindDialog, button, el } from "./dom.js";

const MEMORY_TOOLS = new Set(["remember", "forget"]);
const EMPTY =
  "No notes yet. With memory switched on (enable_tools = [\"memory\"] in config.toml), the " +
  "agent saves short notes, such as your name or what you prefer, and sees them in every later " +
  "conversation. Each shows here, to forget when it no longer holds.";

export class MemoryPanel {
  /** `ui`: the ChatUI (its transport, and the agent and session it shows). */
  constructor(doc, ui) {
    this.doc = doc;
    this.ui = ui;
    this.answer = null; // the memory.list or memory.forget answer on screen
    this.message = "";
    this.failed = false; // the message says what went wrong
    this.confirming = null; // {number, note, box}: a Forget waiting for a yes
    this._asked = 0; // answers to earlier requests are dropped
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      panel: $("memory"), open: $("memory-open"), close: $("memory-close"),
      heading: $("memory-heading"), list: $("memory-list"), note: $("memory-note"),
    };
  }

  bind() {
    bindDialog(this.doc, this.$, { onOpen: () => this.open(), onClose: () => this.close() });
    this.ui.transport.onState(({ status }) => {
      if (status === "online") this.probe();
    });
    // ChatUI says when it shows another conversation (or agent): follow it.
    this.doc.addEventListener("conversation-shown", () => {
      if (this.isOpen) this.load();
    });
    // The agent saved or forgot a note (in any conversation this device sees): show it now.
    this.ui.transport.onEvent(({ agentId, event }) => {
      const changed = event.type === "tool_execution_end" && MEMORY_TOOLS.has(event.toolName);
      if (changed && this.isOpen && agentId === this.ui.agentId) this.load();
    });
  }

  get isOpen() {
    return !this.$.panel.hidden;
  }

  /** Show the sidebar's button unless the hub has no memory requests (an older hub); a
   * refusal of `main` (a guest device) keeps it: the panel shows the guest's own notes. */
  async probe() {
    try {
      await this.ui.transport.request("memory.list", {});
    } catch (error) {
      if (error.code === "unknown_method") {
        this._noMemory();
        return;
      }
    }
    this.$.open.hidden = false;
    if (this.isOpen) this.load();
  }

  open() {
    this.$.panel.hidden = false;
    this.load();
    this.$.close.focus();
  }

  close() {
    this.$.panel.hidden = true;
    this.confirming = null;
  }

  /** Ask for the shown conversation's notes and show them under `message`. */
  async load({ message = "", failed = false } = {}) {
    const { agentId, sessionKey } = this.ui;
    const asked = ++this._asked;
    try {
      const answer = await this.ui.transport.request("memory.list", { agentId, sessionKey });
      if (asked === this._asked) this._show(answer, message, failed);
    } catch (error) {
      if (asked !== this._asked) return;
      if (error.code === "unknown_method") this._noMemory();
      else this._show(null, `Could not list the notes: ${error.message}`, true);
    }
  }

  /** The hub has no memory requests (an older one): no button, no panel. */
  _noMemory() {
    this.$.open.hidden = true;
    this.close();
  }

  /** Delete note `number`, if it still says `note` (`memory.forget`); the list then shows
   * the hub's answer. */
  async forget(number, note) {
    const { agentId, sessionKey } = this.answer;
    const asked = ++this._asked;
    let answer;
    try {
      const params = { agentId, sessionKey, number, note };
      answer = await this.ui.transport.request("memory.forget", params);
    } catch (error) {
      this.confirming = null;
      // The notes may have changed meanwhile (the hub's message names the numbers there are).
      if (asked === this._asked) {
        await this.load({ message: `Could not forget #${number}: ${error.message}`, failed: true });
      }
      return;
    }
    this.confirming = null;
    if (asked !== this._asked) return;
    const said = answer.forgotten || "";
    this._show(answer, said.charAt(0).toUpperCase() + said.slice(1), false);
    this.$.close.focus();
  }

  _show(answer, message, failed) {
    Object.assign(this, { answer, message, failed });
    this.render();
  }

  render() {
    const notes = this.answer?.notes ?? [];
    const { confirming } = this;
    if (confirming && notes[confirming.number - 1] !== confirming.note) this.confirming = null;
    this.$.heading.textContent = this._heading();
    this.$.note.textContent = this.message || (this.answer && !notes.length ? EMPTY : "");
    this.$.note.hidden = !this.$.note.textContent;
    this.$.note.dataset.error = String(this.failed);
    this.$.list.replaceChildren(...notes.map((note, i) => this._row(note, i + 1)));
  }

  _heading() {
    const { ui } = this;
    const agentId = this.answer?.agentId ?? ui.agentId;
    const name = ui.agentNames?.get(agentId) ?? agentId;
    const whose = this.answer?.whose;
    if (!whose) return `What ${name} remembers`;
    if (whose.includes(":group:")) return `What ${name} remembers about this group`;
    // The owner's notes, or on a guest device the guest's own (the only ones it may see).
    if (whose === "owner" || ui.sessions.guest) return `What ${name} remembers about you`;
    return `What ${name} remembers about ${whose}`;
  }

  _row(note, number) {
    const { doc } = this;
    const row = el(doc, "li", "memory-item");
    row.dataset.number = String(number);
    if (this.confirming?.number === number) {
      this.confirming.box ??= this._confirmForget(number, note);
      row.dataset.confirming = "true";
      row.append(this.confirming.box);
      return row;
    }
    const forget = button(doc, "secondary memory-forget", "Forget", "Delete this note");
    forget.setAttribute("aria-label", `Forget note ${number}`);
    forget.addEventListener("click", () => {
      this.confirming = { number, note, box: null };
      this.render();
      this.$.list.querySelector(".memory-confirm-cancel")?.focus();
    });
    row.append(
      el(doc, "span", "memory-number", `${number}.`),
      el(doc, "span", "memory-text", note),
      forget,
    );
    return row;
  }

  _confirmForget(number, note) {
    const { doc } = this;
    return confirmRow(doc, {
      prefix: "memory-confirm",
      label: `Forget note ${number}?`,
      question: ["Forget ", el(doc, "strong", "", note), "? The agent will no longer know it."],
      yes: "Forget",
      busy: "Forgetting…",
      onYes: () => this.forget(number, note),
      onCancel: () => {
        this.confirming = null;
        this.render();
        this.$.list.querySelector(`[data-number="${number}"] .memory-forget`)?.focus();
      },
    });
  }
}
