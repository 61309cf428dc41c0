// The page's entry point: the chat UI over a transport.
//
// The transport is chosen by the page's `?transport=NAME` query (default: gateway), which loads
// `./transport-NAME.js`; that module exports `createTransport()` returning a Transport (see
// ui.js). The browser uses the gateway; the desktop window loads this same page with its own.
//
// A pairing code arrives in the URL fragment (#pair=CODE), which browsers never send to a
// server; it is removed from the address bar before anything else runs.

import { ChatUI } from "./ui.js";

function takePairCode() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("pair");
  if (code) history.replaceState(null, "", location.pathname + location.search);
  return code;
}

const pairCode = takePairCode();
const name = new URLSearchParams(location.search).get("transport") || "gateway";
if (!/^[a-z]+$/.test(name)) throw new Error(`bad transport name: ${name}`);
const { createTransport } = await import(`./transport-${name}.js`);
const ui = new ChatUI(document, createTransport());
ui.start({ pairCode });
