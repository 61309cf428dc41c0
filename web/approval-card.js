// The approval card: a tool call under the `ask` policy waits for a person (docs/tools.md).
// It shows the exact tool and arguments (as text, never markup) with Approve once / Always for
// this session / Deny, and then the outcome, whoever decided and on whichever surface.

import { el } from "./dom.js";

const DECISIONS = [
  ["approve", "Approve once", "primary"],
  ["approve_session", "Always for this session", "secondary"],
  ["deny", "Deny", "stop"],
];

/** The arguments exactly as they will run, as readable text. */
export function argsText(args) {
  if (typeof args === "string") return args;
  try {
    return JSON.stringify(args, null, 2) ?? String(args);
  } catch {
    return String(args);
  }
}

/** Who decided, in words (`by` of `approval_resolved`). */
export function deciderText(by, selfBy) {
  if (!by) return "";
  if (by === selfBy) return "you, here";
  if (by === "ctl") return "agenthub ctl";
  if (by === "desktop") return "the desktop window";
  if (by === "timeout") return "nobody in time";
  if (by === "abort") return "stopping the run";
  if (by === "restart" || by === "shutdown") return "a hub restart";
  if (by === "session") return "an earlier “always for this session”";
  const [surface, ...rest] = by.split(":");
  const who = rest.join(":");
  if (surface === "web") return `web device ${who}`;
  if (surface === "telegram") return `Telegram user ${who}`;
  return by;
}

function outcomeText(item, selfBy) {
  const who = deciderText(item.by, selfBy);
  switch (item.status) {
    case "pending": {
      const at = new Date(item.expiresAt);
      const time = Number.isFinite(at.getTime())
        ? at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : "";
      return time ? `Waiting for a decision (expires at ${time})` : "Waiting for a decision";
    }
    case "approved":
      return item.choice === "approve_session" && item.by === selfBy
        ? "Approved for this session by you, here"
        : `Approved by ${who}`;
    case "denied":
      return `Denied by ${who}: not run`;
    case "expired":
      return "Expired: nobody decided in time, not run";
    case "closed":
      return "No longer waiting: decided elsewhere (the tool's result says how)";
    default:
      return item.status;
  }
}

/**
 * Fill (or refresh) `node` with the card of approval `item`. `decide(item, decision)` runs
 * when a button is pressed; `selfBy` is how `by` names this surface.
 */
export function fillApproval(doc, node, item, { decide, selfBy = "" }) {
  node.className = "row approval";
  node.dataset.status = item.status;
  node.dataset.approvalId = item.approvalId;
  let card = node.querySelector(".approval-card");
  if (!card) {
    card = el(doc, "div", "approval-card");
    const head = el(doc, "div", "approval-head");
    head.append(el(doc, "span", "approval-title", "Run this tool?"), el(doc, "code", "approval-tool"));
    const actions = el(doc, "div", "approval-actions");
    for (const [decision, label, className] of DECISIONS) {
      const button = el(doc, "button", className, label);
      button.type = "button";
      button.dataset.decision = decision;
      button.addEventListener("click", () => decide(item, decision));
      actions.append(button);
    }
    card.append(
      head,
      el(doc, "pre", "approval-args"),
      actions,
      el(doc, "div", "approval-outcome"),
      el(doc, "div", "approval-error"),
    );
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", "Tool approval");
    node.replaceChildren(card);
  }
  card.querySelector(".approval-tool").textContent = item.tool;
  card.querySelector(".approval-args").textContent = argsText(item.args);
  const pending = item.status === "pending";
  const actions = card.querySelector(".approval-actions");
  actions.hidden = !pending;
  for (const button of actions.querySelectorAll("button")) button.disabled = Boolean(item.deciding);
  card.querySelector(".approval-outcome").textContent = outcomeText(item, selfBy);
  const error = card.querySelector(".approval-error");
  error.textContent = item.error || "";
  error.hidden = !item.error;
}

/** Answer an approval card through `approvals.decide`; the outcome shows at once (through
 * `rerender`), and again (the same) when the hub's `approval_resolved` arrives. */
export async function decideApproval(transport, item, decision, rerender) {
  Object.assign(item, { deciding: true, error: "", choice: decision });
  rerender();
  try {
    const answer = await transport.request("approvals.decide", {
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
