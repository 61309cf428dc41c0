// The conversation as the page shows it: one row per transcript item (chat-state.js), kept by
// item id so an update touches its own row only. Messages (assistant Markdown through
// markdown.js, everything else as text), their attachments (image thumbnails and file chips),
// tool rows, approval cards and notes.

import { fillApproval } from "./approval-card.js";
import { fillAttachments, splitFiles } from "./attachment-view.js";
import { el } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

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

export class ConversationView {
  /** `messages`: the scrolling list; `empty`: shown when there is nothing; `approvals`:
   * {decide(item, decision), selfBy} for the cards; `loadImage(attachment)`: a promise of the
   * base64 bytes of an image history names by id. */
  constructor(doc, { messages, empty }, approvals, loadImage) {
    this.doc = doc;
    this.messages = messages;
    this.empty = empty;
    this.approvals = approvals;
    this.loadImage = loadImage;
    this.nodes = new Map();
  }

  /** Forget every row (another session is about to be shown). */
  clear() {
    this.messages.replaceChildren();
    this.nodes.clear();
  }

  has(id) {
    return this.nodes.has(id);
  }

  /** Show `items` (transcript order): rows are added, updated in place, or removed. */
  renderAll(items) {
    const stick = this.nearBottom();
    for (const item of items) this.messages.appendChild(this.renderItem(item, false));
    const ids = new Set(items.map((i) => i.id));
    for (const [id, node] of this.nodes) {
      if (!ids.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    this.empty.hidden = items.length > 0;
    if (stick) this.scrollToBottom();
  }

  renderItem(item, scroll = true) {
    const stick = scroll && this.nearBottom();
    let node = this.nodes.get(item.id);
    if (!node) {
      node = el(this.doc, "div", "row");
      node.dataset.id = item.id;
      this.nodes.set(item.id, node);
      this.messages.appendChild(node);
    }
    if (item.kind === "message") this._fillMessage(node, item);
    else if (item.kind === "tool") this._fillTool(node, item);
    else if (item.kind === "approval") fillApproval(this.doc, node, item, this.approvals);
    else this._fillNote(node, item);
    if (stick) this.scrollToBottom();
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
    // A user's files read into text show as chips; the bubble holds what they wrote.
    const { caption, files } =
      item.role === "user" ? splitFiles(item.text) : { caption: item.text, files: [] };
    fillAttachments(this.doc, node, bubble, item.attachments, this.loadImage, files);
    bubble.hidden = !caption && Boolean(item.attachments?.length || files.length);
    if (item.role === "assistant") {
      if (bubble.dataset.text !== item.text) {
        bubble.innerHTML = renderMarkdown(item.text);
        bubble.dataset.text = item.text;
      }
      bubble.classList.toggle("streaming", !item.final);
    } else {
      bubble.textContent = caption;
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

  nearBottom() {
    const { messages } = this;
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  scrollToBottom() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }
}
