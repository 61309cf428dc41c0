// The usage line of the shown session: its runs, tokens and cost so far (the `usage` request
// with agentId and sessionKey, docs/usage.md). Refreshed when the session is shown and when
// one of its runs ends. Where the hub refuses (a guest device asking about a session not its
// own) or has no usage, the line stays hidden.

const RECHECK_MS = [150, 300, 600, 1200, 2400];
const COUNT = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export function tokensText(count) {
  return count < 1000 ? String(count) : COUNT.format(count);
}

export function costText(cost) {
  if (cost === 0) return "$0";
  if (cost < 1) return `$${cost.toPrecision(2)}`;
  return `$${cost.toFixed(2)}`;
}

/** One line of words for a session's totals (docs/usage.md `Totals`). */
export function usageText(totals) {
  if (!totals || totals.runs === 0) return "No usage yet in this conversation";
  const parts = [
    `${totals.runs} ${totals.runs === 1 ? "run" : "runs"}`,
    `${tokensText(totals.inputTokens)} tokens in` +
      (totals.cachedTokens ? ` (${tokensText(totals.cachedTokens)} cached)` : ""),
    `${tokensText(totals.outputTokens)} out`,
  ];
  if (totals.unpriced === totals.runs) parts.push("cost unknown (no price set)");
  else parts.push(costText(totals.cost) + (totals.unpriced ? ` + ${totals.unpriced} unpriced` : ""));
  return parts.join(" · ");
}

export class UsageLine {
  constructor(doc, transport, { win = window } = {}) {
    this.transport = transport;
    this.win = win;
    this.node = doc.getElementById("usage-line");
    this.allowed = true;
    this.shown = null; // "agent\nsession" whose totals are on the line
    this.runs = 0; // the runs the line counts
    this._asked = 0;
  }

  /** Ask for the totals of `sessionKey` of `agentId` and show them; true once shown. */
  async show(agentId, sessionKey) {
    if (!this.allowed) return false;
    const key = `${agentId}\n${sessionKey}`;
    if (key !== this.shown) {
      this.node.hidden = true;
      this.runs = 0;
    }
    this.shown = key;
    this._asked += 1;
    const asked = this._asked;
    let report;
    try {
      report = await this.transport.request("usage", { agentId, sessionKey });
    } catch (error) {
      // An older hub has no usage at all; `forbidden` is about this session only (a guest
      // may ask about its own sessions).
      if (error.code === "unknown_method") this.allowed = false;
      if (asked === this._asked) this.node.hidden = true;
      return false;
    }
    if (asked !== this._asked) return false; // asked again meanwhile
    const totals = report.sessions.find((s) => s.agentId === agentId && s.sessionKey === sessionKey);
    this.runs = totals?.runs ?? 0;
    this.node.textContent = usageText(totals);
    this.node.hidden = false;
    return true;
  }

  /** A run of the shown session ended: its usage is recorded by the hub just after the
   * event, so ask until the count moves (a few times, backing off). */
  async afterRun(agentId, sessionKey) {
    const key = `${agentId}\n${sessionKey}`;
    const before = this.runs;
    for (let tries = 0; ; tries += 1) {
      if (!(await this.show(agentId, sessionKey)) || this.runs > before) return;
      if (tries === RECHECK_MS.length) return;
      await new Promise((resolve) => this.win.setTimeout(resolve, RECHECK_MS[tries]));
      if (this.shown !== key) return;
    }
  }
}
