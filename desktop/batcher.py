"""Python -> JS pushes, batched: many events ride one script evaluation.

Evaluating a script in the page is a round trip through the GUI thread (about a millisecond
in Qt), so one per token would eat the window's time. The batcher collects pushes from the
hub's loop and a dedicated thread hands them to the page:
- leading-edge throttle: a push after a quiet spell goes at once; while pushes keep coming,
  at most one script per `interval` (≈ one animation frame) carries all that arrived;
- a script carries at most `max_batch_bytes` of JSON (a backlog goes in several scripts);
- the payload travels as a JSON *string literal* parsed in the page (`JSON.parse`), ASCII
  only, with `<`, `>`, `&`, U+2028 and U+2029 escaped: nothing in it can end the literal or
  run as code, whatever the agent wrote.
The sink blocks until the page ran the script, so a busy page makes batches larger rather
than queues longer. `pending` lets producers hold back while the page is behind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("agenthub.desktop")

RECEIVER = "window.agenthubDesktop"

Sink = Callable[[str], object]


def push_script(items: list[str]) -> str:
    """The script that hands the page a batch of JSON-serialised pushes."""
    batch = "[" + ",".join(items) + "]"
    literal = (
        json.dumps(batch, ensure_ascii=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    # ensure_ascii already wrote U+2028/2029 as \u escapes; the literal is plain ASCII.
    return f"{RECEIVER}&&{RECEIVER}.receive({literal})"


@dataclass
class BatchStats:
    scripts: int = 0
    items: int = 0
    failures: int = 0


class PushBatcher:
    """Collects JSON pushes from any thread; one thread delivers them to `sink` in batches.

    `max_items=1` with `interval=0` gives one script per push (the unbatched baseline)."""

    def __init__(
        self,
        sink: Sink,
        *,
        interval: float = 0.016,
        max_items: int = 10_000,
        max_batch_bytes: int = 1 << 20,
    ) -> None:
        self._sink = sink
        self.interval = interval
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self.stats = BatchStats()
        self._items: deque[str] = deque()
        self._cond = threading.Condition()
        self._open = False
        self._stopping = False
        self._last_flush = 0.0
        # Told (on the batcher's thread) after each script, so producers can wait for room.
        self.on_delivered: Callable[[], object] | None = None
        self._thread = threading.Thread(target=self._run, name="agenthub-desktop-push", daemon=True)

    @property
    def pending(self) -> int:
        return len(self._items)

    def start(self) -> None:
        self._thread.start()

    def open(self) -> None:
        """The page is ready to receive: start delivering (pushes before are kept)."""
        with self._cond:
            self._open = True
            self._cond.notify()

    def close(self) -> None:
        """The page is gone or untrusted: hold pushes, and drop what is queued."""
        with self._cond:
            self._open = False
            self._items.clear()

    def push(self, item: str) -> None:
        """Queue one JSON-serialised push (thread-safe)."""
        with self._cond:
            if not self._open:
                return
            self._items.append(item)
            self._cond.notify()

    def stop(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (within `timeout`), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or (self._open and self._items)):
                    self._cond.wait()
                if not self._items:
                    return
                wait = self._last_flush + self.interval - time.monotonic()
            if wait > 0 and not self._stopping:
                # Let more pushes join this batch, at most one batch per interval.
                time.sleep(wait)
            with self._cond:
                batch = self._take()
            if batch:
                self._deliver(batch)

    def _take(self) -> list[str]:
        batch: list[str] = []
        size = 0
        while self._items and len(batch) < self.max_items:
            item = self._items[0]
            if batch and size + len(item) > self.max_batch_bytes:
                break
            batch.append(self._items.popleft())
            size += len(item) + 1
        return batch

    def _deliver(self, batch: list[str]) -> None:
        self._last_flush = time.monotonic()
        try:
            self._sink(push_script(batch))
        except Exception as exc:
            self.stats.failures += 1
            log.warning("could not push %d events to the window: %s", len(batch), exc)
            return
        self.stats.scripts += 1
        self.stats.items += len(batch)
        if self.on_delivered is not None:
            self.on_delivered()
