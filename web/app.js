// The page's entry point: the chat UI over a transport (see the interface in ui.js).
// The browser uses the gateway; the desktop window loads this same page as
// index.html?desktop=1 (desktop/static.py) and gets its bridge transport.
//
// A pairing code arrives in the URL fragment (#pair=CODE), which browsers never send to a
// server; it is removed from the address bar before anything else runs.

import { MemoryPanel } from "./memory-panel.js";
import { ChatUI } from "./ui.js";
import { GatewayTransport } from "./transport-gateway.js";
import { DesktopTransport } from "./transport-desktop.js";

function takePairCode() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("pair");
  if (code) history.replaceState(null, "", location.pathname + location.search);
  return code;
}

const pairCode = takePairCode();
const desktop = new URLSearchParams(location.search).has("desktop");
const ui = new ChatUI(document, desktop ? new DesktopTransport() : new GatewayTransport());
new MemoryPanel(document, ui).bind();
ui.start({ pairCode });
