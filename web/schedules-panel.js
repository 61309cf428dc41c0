// The schedules panel (docs/schedules.md): every schedule with its timing, next run and last
// result, and Run now. Opened from the sidebar; owner only, so the sidebar's button shows only
// where `schedules.list` answers. Every field is set as text.

import { bindDialog, button, el } from "./dom.js";

const STATUS_WORDS = {
  running: "running",
  completed: "done",
  aborted: "stopped",
  failed: "failed",
  interrupted: "interrupted by a restart",
  skipped: "skipped",
  refused: "refused",
};

export function moment(ms) {
  if (!ms) return "";
  const date = new Date(ms);
  const year = date.getFullYear() === new Date().getFullYear() ? undefined : "numeric";
  return date.toLocaleString([], {
    year, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

function delivery(deliver) {
  if (deliver === "last") return "reply to the chat last used";
  if (deliver === "none") return "reply kept in the conversation";
  const [channel, chat] = deliver.split(":");
  return `reply to ${channel === "telegram" ? "Telegram" : channel} chat ${chat}`;
}

function timing(schedule) {
  const zone = schedule.timezone ? ` (${schedule.timezone})` : "";
  return schedule.cron ? `cron ${schedule.cron}${zone}` : `once at ${schedule.at}${zone}`;
}

function lastText(last) {
  if (!last) return "Never run yet";
  const words = STATUS_WORDS[last.status] || last.status;
  return `${words} · ${moment(last.ts || last.due)}` + (last.detail ? ` · ${last.detail}` : "");
}

export class SchedulesPanel {
  constructor(doc, transport) {
    this.doc = doc;
    this.transport = transport;
    this.entries = [];
    this.message = ""; // what the last Run now said, when it did not start
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      panel: $("schedules"), open: $("schedules-open"), close: $("schedules-close"),
      list: $("schedule-list"), note: $("schedules-note"), count: $("schedules-count"),
    };
  }

  bind() {
    bindDialog(this.doc, this.$, { onOpen: () => this.open(), onClose: () => this.close() });
  }

  get isOpen() {
    return !this.$.panel.hidden;
  }

  /** Ask for the schedules; the sidebar's button shows when this device may see them.
   * Answers true when listed, false when refused (not the owner's device, or a hub without
   * schedules), null when the request failed otherwise. */
  async load() {
    let schedules;
    try {
      ({ schedules } = await this.transport.request("schedules.list", {}));
    } catch (error) {
      const refused = error.code === "forbidden" || error.code === "unknown_method";
      if (refused) {
        this.$.open.hidden = true;
        this.close();
        return false;
      }
      this.message = `Could not list the schedules: ${error.message}`;
      this.render();
      return null;
    }
    this.entries = schedules;
    this.$.open.hidden = false;
    this.$.count.textContent = `Schedules (${schedules.length})`;
    this.render();
    return true;
  }

  open() {
    this.message = "";
    this.$.panel.hidden = false;
    this.load();
    this.$.close.focus();
  }

  close() {
    this.$.panel.hidden = true;
  }

  render() {
    const empty = this.entries.length ? "" : "No schedules yet. Add one with " +
      "agenthub ctl schedules add, or a [[schedules]] table in config.toml.";
    this.$.note.textContent = this.message || empty;
    this.$.note.hidden = !this.$.note.textContent;
    this.$.note.dataset.error = String(Boolean(this.message));
    this.$.list.replaceChildren(...this.entries.map((entry) => this._row(entry)));
  }

  _row(entry) {
    const { doc } = this;
    const { schedule, nextRun, lastRun } = entry;
    const row = el(doc, "li", "schedule");
    row.dataset.name = schedule.name;
    row.dataset.enabled = String(schedule.enabled !== false);
    row.dataset.last = lastRun?.status || "";
    const head = el(doc, "div", "schedule-head");
    head.append(el(doc, "span", "schedule-name", schedule.name));
    if (schedule.enabled === false) head.append(el(doc, "span", "schedule-tag", "paused"));
    const run = button(doc, "secondary schedule-run", "Run now", "Run it now, whatever its timing");
    run.addEventListener("click", () => this.runNow(schedule.name, run));
    head.append(run);
    const agent = schedule.agent ? `agent ${schedule.agent}, ` : "";
    const where = `${agent}session ${schedule.session}, ${delivery(schedule.deliver)}`;
    row.append(
      head,
      el(doc, "div", "schedule-timing", `${timing(schedule)} · ${where}`),
      el(doc, "div", "schedule-prompt", schedule.prompt),
      el(doc, "div", "schedule-next", `Next: ${nextRun ? moment(nextRun) : "none"}`),
      el(doc, "div", "schedule-last", `Last: ${lastText(lastRun)}`),
    );
    return row;
  }

  async runNow(name, control) {
    control.disabled = true;
    this.message = "";
    try {
      const { runId, detail } = await this.transport.request("schedules.run", { name });
      if (!runId) this.message = `${name} did not start: ${detail || "no reason given"}`;
    } catch (error) {
      this.message = `Could not run ${name}: ${error.message} (${error.code})`;
    } finally {
      control.disabled = false;
    }
    await this.load();
    this.render();
  }
}
