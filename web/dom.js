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
