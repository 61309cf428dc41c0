"""`agenthub desktop`: the hub in-process behind a pywebview window.

Qt must own the main thread, so the Runtime (hub, control socket, and with configuration the
gateway and Telegram) runs its asyncio loop on a background thread. The window and the hub
stop together, whichever goes first:
- the window closes (or SIGINT/SIGTERM) -> the hub drains and stops, then the process exits 0;
- `agenthub ctl shutdown` -> the hub drains and the window is closed.
A hub that has not stopped `STOP_MARGIN` seconds after the runs' grace period is left behind:
the process logs where the hub's tasks and threads were (to find the part that hung) and
exits 1.
Before anything starts, `check_display` makes sure a window can open at all; when it cannot,
the command says what to install or set, and exits 1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

from app.config import ConfigError, Settings

if TYPE_CHECKING:
    from desktop.window import DesktopWindow

log = logging.getLogger("agenthub.app")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Beyond the runs' grace period: time for the services to stop and the loop to end.
STOP_MARGIN = 30.0


def run_desktop(settings: Settings, *, with_gateway: bool) -> int:
    """Open the window and run until it closes. Returns the exit status."""
    from desktop.display import DisplayUnavailable, check_display

    try:
        platform = check_display()
    except DisplayUnavailable as exc:
        print(f"agenthub desktop: {exc}", file=sys.stderr)
        return EXIT_FAILED
    log.debug("Qt platform: %s", platform)

    from app.banner import print_banner
    from app.compose import StartupError, add_desktop, build
    from app.control_server import HubAlreadyRunningError
    from desktop.bridge import DesktopApi, PageGate
    from desktop.config import DesktopConfig
    from desktop.window import DesktopWindow

    config = DesktopConfig(data_dir=settings.data_dir)
    if not config.index_html.is_file():
        print(f"agenthub desktop: the web UI is missing ({config.index_html})", file=sys.stderr)
        return EXIT_FAILED
    try:
        runtime = build(settings, "desktop", with_gateway=with_gateway)
    except ConfigError as exc:
        print(f"agenthub: bad configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE

    window = DesktopWindow(config)
    bridge = add_desktop(runtime, config, window.evaluate)
    batcher = bridge.batcher
    host = _HubThread(
        start=runtime.start,
        stop=runtime.shutdown,
        stop_requested=runtime.stop_requested,
        on_stopping=lambda: threading.Thread(target=window.close, daemon=True).start(),
    )
    try:
        host.start()
    except (StartupError, HubAlreadyRunningError) as exc:
        print(f"agenthub desktop: {exc}", file=sys.stderr)
        return EXIT_FAILED

    gate = PageGate(batcher)
    window.create(DesktopApi(bridge, gate, call_timeout=config.call_timeout), gate)
    batcher.start()
    print_banner(runtime)
    previous = signal.signal(signal.SIGTERM, _closer(window))
    try:
        window.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        batcher.stop()
        stopped = host.stop(settings.shutdown_grace + STOP_MARGIN)
    return EXIT_OK if stopped else EXIT_FAILED


def _closer(window: DesktopWindow) -> Callable[[int, FrameType | None], None]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; closing the window", signal.Signals(signum).name)
        threading.Thread(target=window.close, daemon=True).start()

    return on_signal


class _HubThread:
    """The Runtime's asyncio loop, on its own thread, from start to drained shutdown."""

    def __init__(
        self,
        *,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
        stop_requested: asyncio.Event,
        on_stopping: Callable[[], None],
    ) -> None:
        self._start = start
        self._stop = stop
        self._stop_requested = stop_requested
        self._on_stopping = on_stopping
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="agenthub-hub", daemon=True)

    def start(self) -> None:
        """Start the loop and the Runtime; re-raises a start-up failure."""
        self._thread.start()
        self._ready.result()

    def stop(self, timeout: float) -> bool:
        """Ask the Runtime to drain (if it is not already) and wait up to `timeout` seconds
        for the thread to end. False (after logging where every thread was) if it did not."""
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        log.error("the hub did not stop within %.0f s; exiting without it", timeout)
        # Where it hung: what each of the hub loop's tasks awaits, then every thread.
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop changed under us: skip it
                for task in asyncio.all_tasks(loop):
                    chain = " -> ".join(_awaiting(task.get_coro()))
                    print(f"task {task.get_name()}: {chain}", file=sys.stderr)
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        return False

    def _main(self) -> None:
        asyncio.run(self._lifecycle())

    async def _lifecycle(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        await self._stop_requested.wait()
        # The window may still be open (ctl shutdown): close it while the hub drains.
        self._on_stopping()
        await self._stop()


def _awaiting(coro: object) -> list[str]:
    """The chain of coroutines `coro` is suspended in, outermost first, as file:line in name."""
    chain: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        chain.append(f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain
