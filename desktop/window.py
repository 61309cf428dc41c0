"""The pywebview window (Qt backend) that shows the web client's UI with the desktop transport.

- The UI is `web/index.html` and its modules, served by `WebFiles` (with a Content Security
  Policy) through pywebview's HTTP server on 127.0.0.1, a random port.
- The page may talk to nothing but that origin: a request interceptor blocks every other
  origin (no remote images or scripts: nothing the agent writes can call home), and a link
  that would navigate the window away opens in the system browser instead. Should a foreign
  page load all the same, the `PageGate` marks it untrusted before pywebview injects the API,
  so it can call nothing and receives nothing, and the window goes back to the UI.
- Size and position are restored from and saved to `<data-dir>/window.json`.

`run()` must be called on the main thread and returns when the window has closed.
"""

from __future__ import annotations

import logging
import threading
import webbrowser
from typing import Any
from urllib.parse import urlsplit

import webview
from PyQt6.QtCore import QUrl
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWebEngineCore import QWebEngineUrlRequestInfo, QWebEngineUrlRequestInterceptor

from desktop.bridge import DesktopApi, PageGate
from desktop.config import DesktopConfig
from desktop.static import WebFiles
from desktop.window_state import ScreenArea, WindowState, clamped, load_state, placed_on, save_state

log = logging.getLogger("agenthub.desktop")

LOCAL_SCHEMES = frozenset({"data", "blob", "about", "qrc"})
EXTERNAL_SCHEMES = frozenset({"http", "https", "mailto"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SameOriginOnly(QWebEngineUrlRequestInterceptor):
    """Blocks every request that leaves the UI's origin; link clicks open outside."""

    def __init__(self, origin: str) -> None:
        super().__init__()
        self.origin = origin
        self.blocked = 0

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:
        url = info.requestUrl()
        if url.scheme() in LOCAL_SCHEMES or origin_of(url.toString()) == self.origin:
            return
        info.block(True)
        self.blocked += 1
        main_frame = (
            info.resourceType() == QWebEngineUrlRequestInfo.ResourceType.ResourceTypeMainFrame
        )
        if main_frame and url.scheme() in EXTERNAL_SCHEMES:
            target = url.toString()
            threading.Thread(target=webbrowser.open, args=(target, 2), daemon=True).start()
            log.info("opened %s in the system browser", target)
        else:
            log.info("blocked a request from the window to %s", url.host() or url.scheme())


class DesktopWindow:
    """One pywebview window with the UI, the API and the navigation guard."""

    def __init__(self, config: DesktopConfig) -> None:
        self.config = config
        self._window: webview.Window | None = None
        self._gate: PageGate | None = None
        self._interceptor: SameOriginOnly | None = None
        self._origin = ""
        self._state = WindowState()
        self._closed = threading.Event()
        self._owed: dict[str, dict[str, Any]] = {}
        self._closing = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def create(self, api: DesktopApi, gate: PageGate) -> None:
        self._gate = gate
        self._state = load_state(self.config.data_dir)
        window = webview.create_window(
            self.config.title,
            url=WebFiles(self.config.web_root),
            js_api=api,
            width=self._state.width,
            height=self._state.height,
            x=self._state.x,
            y=self._state.y,
            min_size=(480, 360),
            background_color="#FFFFFF",
            text_select=True,
        )
        if window is None:
            raise RuntimeError("pywebview refused to create the window")
        window.events.before_show += self._on_before_show
        window.events.before_load += self._on_before_load
        window.events.closing += self._on_closing
        window.events.closed += self._on_closed
        self._window = window

    def run(self) -> None:
        """Show the window and run the GUI loop until the window closes (main thread)."""
        webview.start(gui="qt", http_server=True, private_mode=True, debug=self.config.debug)
        self._on_closed()

    def evaluate(self, script: str) -> object:
        """Run `script` in the page and return its value (any thread but the GUI's).

        `run_js` is pywebview's evaluate_js without the `eval()` wrapper: the batcher's
        scripts are plain calls, so they need no re-escaping."""
        window = self._window
        if window is None or self.closed:
            raise RuntimeError("the window is closed")
        return window.run_js(script)

    def close(self) -> None:
        """Close the window (any thread); `run()` then returns."""
        if self._window is not None and not self.closed:
            self._window.destroy()

    def _on_closed(self) -> None:
        self._closed.set()
        native: Any = self._window.native if self._window is not None else None
        with self._closing:  # pywebview's event thread, then the main thread after the loop
            results = getattr(native, "_js_results", None)
            if isinstance(results, dict) and not isinstance(results, _Unanswerable):
                native._js_results = _Unanswerable(results)
                self._owed = results
            # Again once the GUI loop has ended: a wait may have joined the old table meanwhile.
            _Unanswerable.release(self._owed)

    # -- GUI-thread handlers (pywebview calls these synchronously on Qt's thread) ---------------

    def _on_before_show(self) -> None:
        window = self._window
        assert window is not None and window.real_url is not None
        self._origin = origin_of(window.real_url)
        native: Any = window.native
        self._interceptor = SameOriginOnly(self._origin)
        native.profile.setUrlRequestInterceptor(self._interceptor)
        screens = [
            ScreenArea(g.x(), g.y(), g.width(), g.height())
            for g in (s.availableGeometry() for s in QGuiApplication.screens())
        ]
        if self._state.x is not None and placed_on(self._state, screens).x is None:
            log.info("the saved window position is on no screen; centring the window")
            centre = native.screen.center() - native.rect().center()
            native.move(centre.x(), centre.y())

    def _on_before_load(self) -> None:
        window = self._window
        assert window is not None and self._gate is not None
        native: Any = window.native
        url = native.webview.url().toString()
        trusted = origin_of(url) == self._origin
        self._gate.set(trusted)
        if not trusted:
            log.warning("the window left the UI (to %s); going back", origin_of(url))
            native.webview.setUrl(QUrl(window.real_url))

    def _on_closing(self) -> None:
        native: Any = self._window.native if self._window is not None else None
        if native is None:
            return
        state = clamped(native.width(), native.height(), native.x(), native.y())
        save_state(self.config.data_dir, state)


class _Unanswerable(dict[str, dict[str, Any]]):
    """The JS results a closed window's page still owes (pywebview 6, Qt).

    pywebview's `evaluate_js` waits without a timeout for the page to hand its result back,
    and it answers each call from the page on a (non-daemon) thread of its own that way: a
    closed page never does, and such a thread would keep the process from exiting. Once the
    window is closed every wait is released, also one registered from now on (the caller gets
    no result; pywebview does the same on GTK and WinForms). A result the page hands back
    after its wait was released lands in a throwaway entry (pywebview's Qt callback would
    otherwise fail on the missing key and abort the process)."""

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        value["semaphore"].release()

    def __missing__(self, key: str) -> dict[str, Any]:
        return {"semaphore": threading.Semaphore(0), "result": "", "parse_json": False}

    @staticmethod
    def release(results: dict[str, dict[str, Any]]) -> None:
        for pending in list(results.values()):
            pending["semaphore"].release()
