// The message-mode picker's labels: each mode with what it does ("queue: answer it next")
// where there is room, the mode's name alone at phone width, where the long label was cut.

import { PHONE } from "./sessions-sidebar.js";

/** Keep `select`'s option labels fitted to the window's width from now on. */
export function fitModeLabels(select, win = window) {
  const narrow = win.matchMedia(PHONE);
  for (const option of select.options) option.dataset.label = option.textContent;
  const fit = () => {
    for (const option of select.options) {
      option.textContent = narrow.matches ? option.value : option.dataset.label;
    }
  };
  narrow.addEventListener("change", fit);
  fit();
}
