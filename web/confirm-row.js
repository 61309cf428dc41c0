// The in-row question before something is removed for good (a session in the drawer, a note
// in the memory panel): what will go, a red button that does it, and Cancel (or Escape).
// Every part is set as text.

import { button, el } from "./dom.js";

/**
 * The question's box. `prefix` starts its class names (`<prefix>`, `<prefix>-text`,
 * `<prefix>-actions`, `<prefix>-<yes in lower case>`, `<prefix>-cancel`); `label`: its name
 * for screen readers; `question`: strings and nodes; `yes`/`busy`: the red button's word, and
 * its word once pressed (both buttons then wait, disabled); `onYes()`, `onCancel()`.
 */
export function confirmRow(doc, { prefix, label, question, yes, busy, onYes, onCancel }) {
  const box = el(doc, "div", `row-confirm ${prefix}`);
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", label);
  const text = el(doc, "p", `row-confirm-text ${prefix}-text`);
  text.append(...question);
  const buttons = el(doc, "div", `row-confirm-actions ${prefix}-actions`);
  const go = button(doc, `danger ${prefix}-${yes.toLowerCase()}`, yes);
  const no = button(doc, `secondary ${prefix}-cancel`, "Cancel");
  go.addEventListener("click", () => {
    go.disabled = no.disabled = true;
    go.textContent = busy;
    onYes();
  });
  no.addEventListener("click", () => onCancel());
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      onCancel();
    }
  });
  buttons.append(go, no);
  box.append(text, buttons);
  return box;
}
