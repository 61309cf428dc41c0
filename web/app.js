// The browser entry point: the chat UI over the gateway transport.
// A pairing code arrives in the URL fragment (#pair=CODE), which browsers never send to a
// server; it is removed from the address bar before anything else runs.

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
// The desktop window loads the page as index.html?desktop=1 (desktop/static.py).
const desktop = new URLSearchParams(location.search).has("desktop");
const ui = new ChatUI(document, desktop ? new DesktopTransport() : new GatewayTransport());
ui.start({ pairCode });
