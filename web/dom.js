// Small DOM helpers every view module uses. Text goes in through textContent, never markup.

/** A new element with an optional class and text. */
export function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A button of type "button" (never a form's submit). */
export function button(doc, className, text, title = "") {
  const node = el(doc, "button", className, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

/**
 * Wire a dialog panel: its `open` button shows it, and its `close` button, a click beside its
 * card or Escape hides it (`panel`, `open`, `close`: the elements; `onOpen`, `onClose`: what the
 * owner does then).
 */
export function bindDialog(doc, { panel, open, close }, { onOpen, onClose }) {
  open.addEventListener("click", () => onOpen());
  close.addEventListener("click", () => onClose());
  panel.addEventListener("click", (event) => {
    if (event.target === panel) onClose();
  });
  doc.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) onClose();
  });
}
