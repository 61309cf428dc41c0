"""Python -> JS pushes, batched: many events ride one script evaluation.

Evaluating a script in the page is a round trip through the GUI thread (about a millisecond
in Qt), so one per token would eat the window's time. The batcher collects pushes from the
hub's loop and a dedicated thread hands them to the page:
- leading-edge throttle: a push after a quiet spell goes at once; while pushes keep coming,
  at most one script per `interval` (≈ one animation frame) carries all that arrived;
- a push may name what it supersedes (`key`: the message a full-text `message_update` or
  `message_end` belongs to): a queued push with the same key is dropped, so a page that fell
  behind renders each message once per batch, with its latest text;
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
    superseded: int = 0
    failures: int = 0


@dataclass
class _Queued:
    text: str | None
    key: str | None


class PushBatcher:
    """Collects JSON pushes from any thread; one thread delivers them to `sink` in batches.

    `max_items=1`, `interval=0` and `coalesce=False` give one script per push (the naive
    baseline the benchmark compares with)."""

    def __init__(
        self,
        sink: Sink,
        *,
        interval: float = 0.016,
        max_items: int = 10_000,
        max_batch_bytes: int = 1 << 20,
        coalesce: bool = True,
    ) -> None:
        self._sink = sink
        self.interval = interval
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self.coalesce = coalesce
        self.stats = BatchStats()
        self._items: deque[_Queued] = deque()
        self._by_key: dict[str, _Queued] = {}
        self._live = 0
        self._cond = threading.Condition()
        self._open = False
        self._stopping = False
        self._last_flush = 0.0
        # Told (on the batcher's thread) after each script, so producers can wait for room.
        self.on_delivered: Callable[[], object] | None = None
        self._thread = threading.Thread(target=self._run, name="agenthub-desktop-push", daemon=True)

    @property
    def pending(self) -> int:
        return self._live

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
            self._by_key.clear()
            self._live = 0

    def push(self, item: str, key: str | None = None) -> None:
        """Queue one JSON-serialised push (thread-safe); it replaces a queued push of `key`."""
        with self._cond:
            if not self._open:
                return
            entry = _Queued(item, key)
            if key is not None and self.coalesce:
                older = self._by_key.get(key)
                if older is not None and older.text is not None:
                    older.text = None
                    self._live -= 1
                    self.stats.superseded += 1
                self._by_key[key] = entry
            self._items.append(entry)
            self._live += 1
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
                while not (self._stopping or (self._open and self._live)):
                    self._cond.wait()
                if not self._live:
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
            entry = self._items[0]
            text = entry.text
            if text is None:  # superseded by a later push
                self._items.popleft()
                continue
            if batch and size + len(text) > self.max_batch_bytes:
                break
            self._items.popleft()
            self._live -= 1
            if entry.key is not None and self._by_key.get(entry.key) is entry:
                del self._by_key[entry.key]
            batch.append(text)
            size += len(text) + 1
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
