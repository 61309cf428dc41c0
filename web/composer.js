// The composer: the message field, Send and Stop, and attachments (the 📎 button, files
// dropped on the conversation, files pasted into the field). A message goes out as its text
// plus `attachments: [{name, mediaType, data}]` (data: base64), see docs/protocol.md. What
// would not fit in one frame of the connection is refused here, with the reason, before
// anything is sent.

import { fileChip, removeButton, showsAsImage, sizeText, thumbnail } from "./attachment-view.js";
import { el } from "./dom.js";

export const MAX_ATTACHMENTS = 8;
// What a message frame holds besides the text and attachments (ids, agent, session, JSON).
const FRAME_OVERHEAD = 1024;
// Photos above this (or too big for the room left in the message) are sent shrunk, as
// docs/protocol.md asks: JPEG, the long side at most the first size that fits.
const SHRINK_ABOVE_BYTES = 2 * 1024 * 1024;
const SHRINK_STEPS = [[2048, 0.85], [1600, 0.8], [1280, 0.75], [1024, 0.7], [800, 0.65]];
const SHRINKABLE = new Set(["image/jpeg", "image/png", "image/webp"]);

function encode(doc, bitmap, longSide, quality) {
  const scale = Math.min(1, longSide / Math.max(bitmap.width, bitmap.height));
  const canvas = doc.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff"; // JPEG has no transparency
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}

/** A photo made to fit `room` bytes (and SHRINK_ABOVE_BYTES): JPEG, smaller step by step;
 * the file itself when it fits already, is not a still image, or cannot be decoded here. */
export async function shrinkPhoto(doc, file, room) {
  const goal = Math.min(room, SHRINK_ABOVE_BYTES);
  if (!SHRINKABLE.has(file.type) || file.size <= goal) return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file;
  }
  let best = null;
  try {
    for (const [longSide, quality] of SHRINK_STEPS) {
      const blob = await encode(doc, bitmap, longSide, quality);
      if (blob && (!best || blob.size < best.size)) best = blob;
      if (best && best.size <= goal) break;
    }
  } finally {
    bitmap.close();
  }
  if (!best || best.size >= file.size) return file;
  const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
  return new File([best], name, { type: "image/jpeg" });
}

/** The base64 of a File (or Blob). */
export function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error || new Error("the file could not be read"));
    reader.readAsDataURL(file);
  });
}

/** The bytes a message takes in a frame: its JSON, as sent. */
export function messageBytes(text, attachments) {
  return new TextEncoder().encode(JSON.stringify({ content: text, attachments })).length +
    FRAME_OVERHEAD;
}

export class Composer {
  /** `actions`: {send(text, attachments), stop()}; `limit()`: the largest message (bytes). */
  constructor(doc, actions, limit) {
    this.doc = doc;
    this.actions = actions;
    this.limit = limit;
    this.pending = []; // [{name, mediaType, data}]
    this.reading = 0;
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
      thinking: $("thinking"), attach: $("attach"), files: $("file-input"),
      tray: $("attachment-tray"), error: $("composer-error"), chat: $("chat"),
    };
  }

  bind() {
    const { $ } = this;
    $.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    $.input.addEventListener("input", () => this.autosize());
    $.stop.addEventListener("click", () => this.actions.stop());
    $.attach.addEventListener("click", () => $.files.click());
    $.files.addEventListener("change", () => {
      this.add([...$.files.files]);
      $.files.value = "";
    });
    $.input.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (files.length === 0) return;
      e.preventDefault();
      this.add(files);
    });
    const carriesFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
    $.chat.addEventListener("dragover", (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      $.chat.classList.add("dropping");
    });
    $.chat.addEventListener("dragleave", (e) => {
      if (e.target === $.chat || !$.chat.contains(e.relatedTarget)) $.chat.classList.remove("dropping");
    });
    $.chat.addEventListener("drop", (e) => {
      $.chat.classList.remove("dropping");
      if (!carriesFiles(e)) return;
      e.preventDefault();
      this.add([...e.dataTransfer.files]);
    });
  }

  autosize() {
    const { input } = this.$;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  focus() {
    this.$.input.focus();
  }

  /** The composer's controls for the connection and the shown session's run. */
  update({ online, placeholder, busy, thinking }) {
    const { $ } = this;
    $.send.disabled = !online || this.reading > 0;
    $.attach.disabled = !online;
    $.input.placeholder = placeholder;
    $.stop.hidden = !busy;
    $.thinking.hidden = !thinking;
  }

  error(message) {
    this.$.error.textContent = message;
    this.$.error.hidden = !message;
  }

  /** Add files to the message being written; each that does not fit is refused, named. */
  async add(files) {
    this.error("");
    this.reading += 1;
    this.$.send.disabled = true;
    const refused = [];
    try {
      for (const file of files) {
        if (this.pending.length >= MAX_ATTACHMENTS) {
          refused.push(`${file.name}: a message takes at most ${MAX_ATTACHMENTS} attachments`);
          continue;
        }
        const name = file.name || `pasted.${(file.type.split("/")[1] || "bin").split("+")[0]}`;
        let data;
        let sent;
        try {
          sent = await shrinkPhoto(this.doc, file, this._room());
          data = await readBase64(sent);
        } catch (error) {
          refused.push(`${name}: could not be read (${error.message})`);
          continue;
        }
        const attachment = {
          name: sent === file ? name : sent.name,
          mediaType: sent.type || "application/octet-stream",
          data,
        };
        const tooBig = this._tooBig(this.$.input.value, [...this.pending, attachment]);
        if (tooBig) {
          refused.push(`${name} (${sizeText(sent.size)}): ${tooBig}`);
          continue;
        }
        this.pending.push(attachment);
      }
    } finally {
      this.reading -= 1;
      this.$.send.disabled = this.reading > 0;
      this._renderTray();
    }
    if (refused.length) this.error(`Not attached: ${refused.join("; ")}.`);
  }

  remove(attachment) {
    this.pending = this.pending.filter((a) => a !== attachment);
    this.error("");
    this._renderTray();
  }

  /** The bytes of a file that still fit in the message (base64 takes 4 for every 3). */
  _room() {
    const used = messageBytes(this.$.input.value, this.pending);
    return Math.max(0, Math.floor(((this.limit() - used) * 3) / 4) - 512);
  }

  /** Why `text` with `attachments` cannot go in one message, or "" when it can. */
  _tooBig(text, attachments) {
    const limit = this.limit();
    if (messageBytes(text, attachments) <= limit) return "";
    const room = Math.max(0, Math.floor(((limit - FRAME_OVERHEAD) * 3) / 4));
    return `a message can carry about ${sizeText(room)} in all over this connection; ` +
      "send a smaller file, or fewer at once";
  }

  _renderTray() {
    const { doc } = this;
    const onRemove = (a) => this.remove(a);
    this.$.tray.replaceChildren(
      ...this.pending.map((a) => {
        if (!showsAsImage(a)) return fileChip(doc, a, onRemove);
        const box = el(doc, "span", "attachment-pending");
        box.append(thumbnail(doc, a), removeButton(doc, a, onRemove));
        return box;
      }),
    );
    this.$.tray.hidden = this.pending.length === 0;
  }

  /** Send what was written (text and attachments), if anything and if it fits. */
  submit() {
    const { $ } = this;
    const text = $.input.value;
    const attachments = this.pending;
    if ((!text.trim() && attachments.length === 0) || $.send.disabled) return;
    const tooBig = this._tooBig(text, attachments);
    if (tooBig) {
      this.error(`Not sent: ${tooBig}.`);
      return;
    }
    $.input.value = "";
    this.pending = [];
    this.error("");
    this._renderTray();
    this.autosize();
    this.actions.send(text, attachments);
  }
}
