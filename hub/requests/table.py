"""The one request table: method name -> (params model, handler, answer model).

Every surface that lets a client ask the hub something (gateway requests, the desktop bridge's
`request(method, params)`, the control socket) calls `dispatch`, and maps a `CodedError` to its
own reply shape. A request is added in one place: a `@request(...)` handler in one of this
package's modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import JsonValue, StringConstraints, ValidationError

from hub.access import AccessStore
from hub.errors import CodedError, InvalidParamsError, describe_validation
from hub.events import AgentEvent
from hub.health import HealthRegistry
from hub.hub import Hub
from hub.wire import WireModel

P = TypeVar("P", bound=WireModel)
A = TypeVar("A", bound=WireModel)

CallerSurface = Literal["desktop", "web", "control", "channel"]
# The bounds of the ids requests name (the hub checks the rest of their rules).
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SessionKey = Annotated[str, StringConstraints(min_length=1, max_length=160)]

RunEvents = Callable[[AgentEvent], None]
# Set by `dispatch` for a transport that can send interim lines: a request that waits for a
# run (`messages.send` with `wait`) hands it each event of that run as it happens.
_run_events: ContextVar[RunEvents | None] = ContextVar("run_events", default=None)


def run_events() -> RunEvents | None:
    """Where the request being answered may send the events of the run it waits for."""
    return _run_events.get()


class Caller(WireModel):
    """Who asks: the surface, the device (web) and whether it is the hub's owner. `program`:
    a client with an API token (`ctl tokens new`): it talks in the owner's conversations but
    may not administer the hub (owner-only requests refuse it). `identity`: a chat user's
    `<channel>:<userId>` (a chat command asking), whose sessions it may see."""

    surface: CallerSurface
    device_id: str | None = None
    identity: str | None = None
    owner: bool = False
    program: bool = False


class NoParams(WireModel):
    pass


class ConnectedDevice(WireModel):
    device_id: str
    kind: Literal["hub", "client"]
    label: str = ""
    connected_since: float | None = None


async def _no_devices() -> list[ConnectedDevice]:
    return []


def _no_url(code: str) -> str | None:
    return None


@dataclass
class RequestHost:
    """What requests act on. `hub` is None in a gateway-only process (agent requests then
    answer `unavailable`); the two hooks come from the composition root."""

    access: AccessStore
    health: HealthRegistry
    hub: Hub | None = None
    connected_devices: Callable[[], Awaitable[list[ConnectedDevice]]] = _no_devices
    invite_url: Callable[[str], str | None] = _no_url
    mode: str = "serve"

    def need_hub(self) -> Hub:
        if self.hub is None:
            raise CodedError(f"no agents run in this process ({self.mode})", "unavailable")
        return self.hub


Handler = Callable[[RequestHost, Caller, P], Awaitable[A]]


@dataclass(frozen=True)
class Request(Generic[P, A]):
    name: str
    params: type[P]
    answer: type[A]
    handler: Handler[P, A]
    owner_only: bool


REQUESTS: dict[str, Request[Any, Any]] = {}


def request(
    name: str, params: type[P], answer: type[A], *, owner_only: bool = False
) -> Callable[[Handler[P, A]], Handler[P, A]]:
    """Register the decorated handler as method `name` of the table."""

    def register(handler: Handler[P, A]) -> Handler[P, A]:
        if name in REQUESTS:
            raise ValueError(f"request {name!r} is defined twice")
        REQUESTS[name] = Request(name, params, answer, handler, owner_only)
        return handler

    return register


async def dispatch(
    host: RequestHost,
    caller: Caller,
    method: str,
    params: Mapping[str, JsonValue] | None,
    *,
    on_run_event: RunEvents | None = None,
) -> WireModel:
    """Validate `params`, check the caller may ask, run the handler and return its answer.
    `on_run_event` gets the events of a run the request waits for, before the answer.
    Raises `CodedError` (unknown_method, forbidden, invalid_params, or the handler's own)."""
    entry = REQUESTS.get(method)
    if entry is None:
        raise CodedError(f"unknown method {method!r}", "unknown_method")
    if entry.owner_only and (not caller.owner or caller.program):
        raise CodedError(f"{method} is for the hub's owner only", "forbidden")
    try:
        parsed = entry.params.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise InvalidParamsError(describe_validation(exc)) from None
    token = _run_events.set(on_run_event)
    try:
        answer: WireModel = await entry.handler(host, caller, parsed)
    finally:
        _run_events.reset(token)
    return answer
