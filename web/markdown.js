// Markdown for assistant messages: marked renders, DOMPurify sanitises, and raw HTML written
// in the Markdown is shown as text (escaped), never as markup. The Content-Security-Policy of
// the page is the third line of defence: no inline script can run even if both failed.

import { Marked } from "./node_modules/marked/lib/marked.esm.js";
import DOMPurify from "./node_modules/dompurify/dist/purify.es.mjs";

function escapeHtml(text) {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Raw HTML in a reply (block or inline) is text, not markup.
    html({ text }) {
      return escapeHtml(text);
    },
    // Remote images would leak the reader's address; show them as links instead.
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Sanitised HTML for a Markdown text. */
export function renderMarkdown(text) {
  const html = marked.parse(text, { async: false });
  return DOMPurify.sanitize(html, {
    USE_PROFILE: { html: true },
    FORBID_TAGS: ["style", "img", "form", "input", "button", "iframe"],
    FORBID_ATTR: ["style"],
  });
}
