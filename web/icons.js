// Line icons drawn as SVG (the page ships no icon font, and emoji need a font the desktop's
// webview may lack). Each is 24x24 path data, stroked in the text's colour.

const SVG = "http://www.w3.org/2000/svg";

const SHAPES = {
  paperclip: [["path", { d: "M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5" }]],
  bookmark: [["path", { d: "M19 21l-7-5-7 5V5a2 2 0 0 1 2-2h10a2 2 0 0 1 2 2z" }]],
  clock: [["circle", { cx: "12", cy: "12", r: "10" }], ["polyline", { points: "12 6 12 12 16 14" }]],
  file: [
    ["path", { d: "M13 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9z" }],
    ["polyline", { points: "13 2 13 9 20 9" }],
  ],
  trash: [
    ["polyline", { points: "3 6 5 6 21 6" }],
    ["path", { d: "M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6" }],
    ["path", { d: "M10 11v6M14 11v6M9 6V4a1 1 0 0 1 1-1h4a1 1 0 0 1 1 1v2" }],
  ],
};

/** An inline SVG icon (decorative: hidden from screen readers). */
export function icon(doc, name, className = "icon") {
  const svg = doc.createElementNS(SVG, "svg");
  for (const [key, value] of Object.entries({
    viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2",
    "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true",
  })) svg.setAttribute(key, value);
  svg.setAttribute("class", className);
  for (const [tag, attributes] of SHAPES[name]) {
    const shape = doc.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) shape.setAttribute(key, value);
    svg.append(shape);
  }
  return svg;
}

/** Put the icons named by `data-icon` attributes of the page into their elements. */
export function placeIcons(doc) {
  for (const node of doc.querySelectorAll("[data-icon]")) {
    node.prepend(icon(doc, node.dataset.icon));
  }
}
