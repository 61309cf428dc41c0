// Attachments as the conversation shows them: an image (with its bytes at hand) as a
// thumbnail that opens larger on click, anything else as a file chip (name, size). Images
// load from data: URLs only (the page's Content-Security-Policy allows no other origin);
// names are set as text.

import { button, el } from "./dom.js";
import { icon } from "./icons.js";

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** Bytes as people read them. */
export function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** The size of base64 `data` once decoded. */
export function decodedSize(data) {
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.floor((data.length * 3) / 4) - padding;
}

/** Whether the attachment can show as a picture: a known image type with its bytes, or
 * with the id the hub keeps it under (history: `attachments.get` brings the bytes). */
export function showsAsImage(attachment) {
  return IMAGE_TYPES.has(attachment.mediaType) &&
    (typeof attachment.data === "string" || Boolean(attachment.id));
}

function sizeOf(attachment) {
  if (typeof attachment.size === "number") return attachment.size;
  return typeof attachment.data === "string" ? decodedSize(attachment.data) : null;
}

/** A thumbnail: click to see it larger, click again (or Escape) to close. Without its
 * bytes, `load(attachment)` (a promise of the base64 data) fetches them. */
export function thumbnail(doc, attachment, load = null) {
  const img = el(doc, "img", "attachment-image");
  const show = (data) => {
    img.src = `data:${attachment.mediaType};base64,${data}`;
    img.classList.remove("loading");
  };
  if (typeof attachment.data === "string") show(attachment.data);
  else if (load) {
    img.classList.add("loading");
    load(attachment).then(show, () => {
      img.classList.replace("loading", "missing");
      img.title = `${attachment.name || "image"}: could not be loaded`;
    });
  }
  img.alt = attachment.name || "image";
  img.title ||= attachment.name || "";
  img.tabIndex = 0;
  const toggle = () => img.classList.toggle("expanded");
  img.addEventListener("click", toggle);
  img.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || (event.key === "Escape" && img.classList.contains("expanded"))) {
      toggle();
    }
  });
  return img;
}

/** A file chip; `onRemove` adds a × that calls it (the composer's pending files). */
export function fileChip(doc, attachment, onRemove = null) {
  const chip = el(doc, "span", "attachment-file");
  chip.append(icon(doc, "file", "icon attachment-icon"));
  chip.append(el(doc, "span", "attachment-name", attachment.name || "file"));
  const size = sizeOf(attachment);
  if (size !== null) chip.append(el(doc, "span", "attachment-size", sizeText(size)));
  chip.title = `${attachment.name || "file"} (${attachment.mediaType || "unknown type"})`;
  if (onRemove) chip.append(removeButton(doc, attachment, onRemove));
  return chip;
}

export function removeButton(doc, attachment, onRemove) {
  const remove = button(doc, "attachment-remove", "×", "Remove");
  remove.setAttribute("aria-label", `Remove ${attachment.name || "attachment"}`);
  remove.addEventListener("click", () => onRemove(attachment));
  return remove;
}

// A text file or PDF the hub read into the turn: "[file: NAME]", then the text in a fence
// (hub/attachments.py), after the caption.
const FILE_TEXT = /(?:^|\n\n)\[file: ([^\]\n]+)\]\n(`{3,})\n([\s\S]*?)\n\2(?=\n|$)/g;

/** A user message's text split into what the person wrote and the files' text in it. */
export function splitFiles(text) {
  const files = [];
  const caption = text.replace(FILE_TEXT, (_, name, fence, body) => {
    files.push({ name, text: body });
    return "";
  });
  return { caption: caption.trim(), files };
}

/** A file read into text: a chip that opens to show the text. */
export function fileText(doc, file) {
  const details = el(doc, "details", "attachment-text");
  const summary = el(doc, "summary", "attachment-file");
  summary.append(icon(doc, "file", "icon attachment-icon"));
  summary.append(el(doc, "span", "attachment-name", file.name));
  summary.append(el(doc, "span", "attachment-size", `${file.text.length.toLocaleString()} chars`));
  details.append(summary, el(doc, "pre", "attachment-body", file.text));
  return details;
}

/** Put a message's attachments in `node`, before its `bubble` (drawn once per set):
 * images and files, then `files` (texts read from files); `load` fetches an image's bytes
 * the message does not hold. */
export function fillAttachments(doc, node, bubble, attachments, load = null, files = []) {
  let box = node.querySelector(".attachments");
  attachments = attachments || [];
  if (attachments.length === 0 && files.length === 0) {
    box?.remove();
    return;
  }
  const signature = attachments
    .map((a) => `${a.id || ""}:${a.name}:${a.mediaType}:${sizeOf(a)}`)
    .concat(files.map((f) => `text:${f.name}:${f.text.length}`))
    .join("|");
  if (box && box.dataset.signature === signature) return;
  if (!box) {
    box = el(doc, "div", "attachments");
    node.insertBefore(box, bubble);
  }
  box.dataset.signature = signature;
  box.replaceChildren(
    ...attachments.map((a) => (showsAsImage(a) ? thumbnail(doc, a, load) : fileChip(doc, a))),
    ...files.map((f) => fileText(doc, f)),
  );
}

const MAX_IMAGES_KEPT = 200;

/** The bytes of images history entries name by id (`attachments.get`), kept (the latest
 * few hundred) so a redraw asks once; a failed load is asked again on the next drawing. */
export class ImageCache {
  constructor(transport) {
    this.transport = transport;
    this._images = new Map(); // "agent\nsession\nid" -> promise of base64
  }

  /** `sessionKey` null: a hub without sessions (the id alone names the image). */
  load(agentId, sessionKey, attachment) {
    const key = `${agentId}\n${sessionKey ?? ""}\n${attachment.id}`;
    if (!this._images.has(key)) {
      const params = { agentId, attachmentId: attachment.id };
      if (sessionKey !== null) params.sessionKey = sessionKey;
      const loading = this.transport.request("attachments.get", params).then(({ data }) => {
        attachment.data = data;
        return data;
      });
      loading.catch(() => this._images.delete(key));
      this._images.set(key, loading);
      if (this._images.size > MAX_IMAGES_KEPT) this._images.delete(this._images.keys().next().value);
    }
    return this._images.get(key);
  }
}
