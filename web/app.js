// The browser entry point: the chat UI over the gateway transport.
// A pairing code arrives in the URL fragment (#pair=CODE), which browsers never send to a
// server; it is removed from the address bar before anything else runs.

import { ChatUI } from "./ui.js";
import { GatewayTransport } from "./transport-gateway.js";

function takePairCode() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("pair");
  if (code) history.replaceState(null, "", location.pathname + location.search);
  return code;
}

const pairCode = takePairCode();
const ui = new ChatUI(document, new GatewayTransport());
ui.start({ pairCode });
