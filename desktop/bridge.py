"""The IPC bridge between the window's page and the hub running in this process.

`DesktopApi` is the `js_api` object pywebview exposes as `window.pywebview.api`. pywebview
calls it on a fresh thread per call; every call is handed to the hub's asyncio loop with
`run_coroutine_threadsafe` (the loop's objects are only ever touched on the loop's thread) and
answers a `BridgeReply`. Failures are answers too (`ok: false` with a stable code), never a
traceback in the page.

The path of a desktop message, as in the reference design: `send` clears lastRoute (the reply
stays in the window) and writes with a desktop origin; `subscribe` feeds the agent's events,
filtered by the desktop row of the one filter table (`hub.filters.forward`), to the
`PushBatcher`, which hands them to the page in batches. Pending pairing requests are pushed
whenever they change: at once on a decision (`AccessStore.listen`), and by polling for new or
expired requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import webbrowser
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, JsonValue, ValidationError

from desktop.batcher import PushBatcher
from desktop.protocol import (
    BridgeError,
    BridgeReply,
    PairingPush,
    SendAnswer,
    SendParams,
    StreamPush,
    SubscribeAnswer,
)
from hub.access import Decision, DeviceRecord
from hub.errors import CodedError, describe_validation
from hub.events import AgentEvent, MessageEnd, MessageUpdate, ReadGap
from hub.filters import forward
from hub.health import Probe
from hub.hub import Hub
from hub.origin import Origin
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.agents import AgentParams

log = logging.getLogger("agenthub.desktop")

Reply = dict[str, JsonValue]
M = TypeVar("M", bound=BaseModel)

EXTERNAL_SCHEMES = ("http", "https", "mailto")
# The window runs in the owner's own session on this machine.
DESKTOP_CALLER = Caller(surface="desktop", owner=True)


class DesktopBridge:
    """The hub side of the window. Construct, `start()` and `stop()` on the hub's loop."""

    def __init__(
        self,
        hub: Hub,
        requests: RequestHost,
        batcher: PushBatcher,
        *,
        pairing_poll: float = 1.0,
        max_pending_pushes: int = 2048,
    ) -> None:
        self.hub = hub
        self.requests = requests
        self.batcher = batcher
        self.pairing_poll = pairing_poll
        self.max_pending_pushes = max_pending_pushes
        self._subscriptions: dict[str, Callable[[], None]] = {}
        self._pairing_changed = asyncio.Event()
        self._room = asyncio.Event()
        self._unlisten: Callable[[], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return "desktop"

    def probes(self) -> dict[str, Probe]:
        return {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the desktop bridge has not started")
        return self._loop

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.batcher.on_delivered = self._wake_producers
        self._unlisten = self.hub.access.listen(self._on_access_change)
        self._watcher = self._loop.create_task(self._watch_pairing(), name="desktop:pairing")

    async def stop(self) -> None:
        for unsubscribe in self._subscriptions.values():
            unsubscribe()
        self._subscriptions.clear()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    # -- calls (on the loop) ----------------------------------------------------------------

    async def send(self, params: SendParams) -> SendAnswer:
        submitted = await self.hub.submit_heard(
            params.agent_id,
            params.text,
            Origin(surface="desktop"),
            session_key=params.session_key,
            mode=params.mode,
            attachments=params.attachments or (),
        )
        return SendAnswer(run_id=submitted.run_id)

    async def subscribe(self, params: AgentParams) -> SubscribeAnswer:
        agent = self.hub.agent(params.agent_id)
        if agent.agent_id not in self._subscriptions:
            self._subscriptions[agent.agent_id] = agent.subscribe(
                self._on_event, on_gap=self._on_gap, name="desktop"
            )
        self.batcher.open()
        return SubscribeAnswer(agent_id=agent.agent_id, last_seq=agent.last_seq, busy=agent.busy)

    async def unsubscribe(self, params: AgentParams) -> SubscribeAnswer:
        agent = self.hub.agent(params.agent_id)
        unsubscribe = self._subscriptions.pop(agent.agent_id, None)
        if unsubscribe is not None:
            unsubscribe()
        return SubscribeAnswer(agent_id=agent.agent_id, last_seq=agent.last_seq, busy=agent.busy)

    async def request(self, method: str, params: dict[str, JsonValue]) -> BaseModel:
        """A request from the page, through the one request table (the owner's window)."""
        return await dispatch(self.requests, DESKTOP_CALLER, method, params)

    # -- pushes -----------------------------------------------------------------------------

    async def _on_event(self, event: AgentEvent) -> None:
        if not forward("desktop", event):
            return
        # The page is behind: hold this subscriber back, so the agent's bounded channel
        # coalesces updates (and, past that, reports a gap) instead of memory growing here.
        while self.batcher.pending >= self.max_pending_pushes:
            self._room.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._room.wait()
        push = StreamPush(agent_id=event.agent_id, stream_id=event.run_id, event=event)
        # Updates carry the full text: a newer one (or the end) makes a queued one redundant.
        key = (
            f"{event.agent_id}/{event.message_id}"
            if isinstance(event, MessageUpdate | MessageEnd)
            else None
        )
        self.batcher.push(push.model_dump_json(), key)

    def _on_gap(self, gap: ReadGap) -> None:
        push = StreamPush(agent_id=gap.agent_id, stream_id="read_gap", event=gap)
        self.batcher.push(push.model_dump_json())

    def _on_access_change(self, what: str, payload: Decision | DeviceRecord) -> None:
        # Listeners may be told from another thread; the event belongs to the loop.
        self._on_loop(self._pairing_changed.set)

    def _wake_producers(self) -> None:
        """The batcher delivered a script (on its thread): a held-back subscriber may go on."""
        self._on_loop(self._room.set)

    def _on_loop(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody waits
            self.loop.call_soon_threadsafe(callback)

    async def _watch_pairing(self) -> None:
        shown: list[str] | None = None
        while True:
            pending = self.hub.access.pending()
            codes = [p.code for p in pending]
            if codes != shown:
                shown = codes
                self.batcher.push(PairingPush(pending=pending).model_dump_json())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.pairing_poll):
                    await self._pairing_changed.wait()
            self._pairing_changed.clear()


class PageGate:
    """Whether the page in the window is our own UI. The window's navigation guard sets it
    on every page load, before pywebview injects the API. Pushes stop at every load until the
    new page subscribes; a foreign page can call nothing (every call is refused)."""

    def __init__(self, batcher: PushBatcher) -> None:
        self._batcher = batcher
        self.trusted = True

    def set(self, trusted: bool) -> None:
        self.trusted = trusted
        self._batcher.close()


class DesktopApi:
    """`window.pywebview.api`: called on pywebview's threads, answered from the hub's loop.

    Only public methods are exposed to the page (pywebview walks public attributes), so all
    state is private."""

    def __init__(
        self, bridge: DesktopBridge, gate: PageGate, *, call_timeout: float = 10.0
    ) -> None:
        self._bridge = bridge
        self._gate = gate
        self._timeout = call_timeout

    # -- exposed ----------------------------------------------------------------------------

    def send(self, agent_id: str = "", text: str = "", options: object = None) -> Reply:
        """`options`: {sessionKey?, mode?, attachments?} (see `SendParams`)."""
        extra = options if isinstance(options, dict) else {}
        params = {**extra, "agentId": agent_id, "text": text}
        return self._call(SendParams, params, self._bridge.send)

    def subscribe(self, agent_id: str = "") -> Reply:
        return self._call(AgentParams, {"agentId": agent_id}, self._bridge.subscribe)

    def unsubscribe(self, agent_id: str = "") -> Reply:
        return self._call(AgentParams, {"agentId": agent_id}, self._bridge.unsubscribe)

    def request(self, method: str = "", params: object = None) -> Reply:
        """Any method of the hub's request table (`hub.requests`)."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error("invalid_params", "params must be an object")
        return self._run(lambda: self._bridge.request(method, params))

    def open_link(self, url: str = "") -> Reply:
        """Open a link from the chat in the system browser (never inside the window)."""
        if not self._gate.trusted:
            return _error("forbidden", "this page may not use the hub")
        if not isinstance(url, str) or urlsplit(url).scheme.lower() not in EXTERNAL_SCHEMES:
            return _error("invalid_params", "only http, https and mailto links open outside")
        webbrowser.open(url, new=2)
        return _ok(None)

    # -- plumbing ---------------------------------------------------------------------------

    def _call(
        self,
        model: type[M],
        raw: dict[str, object],
        handler: Callable[[M], Awaitable[BaseModel]],
    ) -> Reply:
        try:
            params = model.model_validate(raw)
        except ValidationError as exc:
            return _error("invalid_params", describe_validation(exc))
        return self._run(lambda: handler(params))

    def _run(self, work: Callable[[], Awaitable[BaseModel]]) -> Reply:
        if not self._gate.trusted:
            return _error("forbidden", "this page may not use the hub")

        async def on_loop() -> BaseModel:
            return await work()

        coroutine: Coroutine[Any, Any, BaseModel] = on_loop()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._bridge.loop)
        except RuntimeError:
            coroutine.close()
            return _error("stopped", "the hub is shutting down")
        try:
            answer = future.result(self._timeout)
        except FutureTimeout:
            future.cancel()
            return _error("timeout", f"the hub did not answer within {self._timeout:.0f}s")
        except CodedError as exc:
            return _error(exc.code, exc.message)
        except Exception as exc:
            log.exception("desktop bridge call failed")
            return _error("internal", f"the hub failed to answer ({type(exc).__name__})")
        return _ok(answer.model_dump(mode="json"))


def _ok(payload: JsonValue) -> Reply:
    return BridgeReply(ok=True, payload=payload).model_dump(mode="json")


def _error(code: str, message: str) -> Reply:
    reply = BridgeReply(ok=False, error=BridgeError(code=code, message=message))
    return reply.model_dump(mode="json")
