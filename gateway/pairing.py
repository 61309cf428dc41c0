"""The pairing desk: sockets that presented no credentials, and the only things they may do.

A pairing socket may redeem an owner's invite code (`pair`) or ask the owner for access
(`pair_request`) and wait for `paired` / `pair_denied`. How many such sockets may be open at
once, in all and per address, is limited here, and so are attempts: per client address (a
fresh socket buys no fresh guesses) and from all addresses together (many addresses buy no
more either). A refused attempt says when the next one will be evaluated.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue, ValidationError

from gateway.admission import refuse
from gateway.config import GatewayConfig
from gateway.protocol import PairRequest, PairResult, PairWithCode, ResponseError
from gateway.ratelimit import TokenBucket
from hub.access import AccessError, AccessStore, Decision
from hub.errors import describe_validation
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.gateway")

Emit = Callable[[str, object, str], Coroutine[Any, Any, None]]


MAX_TRACKED_ADDRESSES = 10_000


@dataclass(slots=True)
class _Pairing:
    address: str
    waiting_for: str | None = None


def pair_error(code: str, message: str, retry_after: int | None = None) -> JsonValue:
    error = ResponseError(code=code, message=message)
    return PairResult(ok=False, error=error, retry_after=retry_after).model_dump()


class PairingDesk:
    """Pairing sockets of this node. `emit(event, data, sid)` sends to one socket."""

    def __init__(
        self,
        config: GatewayConfig,
        access: AccessStore,
        emit: Emit,
        tasks: TaskFunnel,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.access = access
        self._emit = emit
        self._tasks = tasks
        self._clock = clock
        self._sockets: dict[str, _Pairing] = {}
        self._waiting: dict[str, str] = {}
        self._per_address: dict[str, TokenBucket] = {}
        total = config.pair_attempts_per_minute_total
        self._total = TokenBucket(total / 60.0, total, clock=clock)

    def __len__(self) -> int:
        return len(self._sockets)

    def sids(self) -> list[str]:
        return list(self._sockets)

    def admit(self, sid: str, address: str) -> None:
        """Take a new pairing socket, or refuse it (RATE_LIMITED) past the socket limits."""
        same_address = sum(1 for p in self._sockets.values() if p.address == address)
        if (
            len(self._sockets) >= self.config.max_pairing_sockets
            or same_address >= self.config.max_pairing_sockets_per_address
        ):
            refuse("RATE_LIMITED", "too many devices are pairing; try again later")
        self._sockets[sid] = _Pairing(address)

    def leave(self, sid: str) -> None:
        pairing = self._sockets.pop(sid, None)
        if pairing is not None and pairing.waiting_for is not None:
            self._waiting.pop(pairing.waiting_for, None)

    async def pair(self, sid: str, data: object = None) -> JsonValue:
        """`pair {code, label?}`: redeem an invite code."""
        state = self._sockets.get(sid)
        refusal = self._refusal(state)
        if refusal is not None:
            return refusal
        try:
            wanted = PairWithCode.model_validate(data)
        except ValidationError as exc:
            return pair_error("INVALID_MESSAGE", describe_validation(exc))
        try:
            issued = self.access.redeem_invite(wanted.code, wanted.label or "browser")
        except AccessError as exc:
            log.info("pairing code refused (%s)", exc.code)
            return pair_error(exc.code, exc.message)
        log.info("device %s paired with an invite code", issued.device_id)
        return PairResult(ok=True, device_id=issued.device_id, token=issued.token).model_dump()

    async def pair_request(self, sid: str, data: object = None) -> JsonValue:
        """`pair_request {label?}`: ask the owner; the answer comes as `paired`/`pair_denied`."""
        state = self._sockets.get(sid)
        refusal = self._refusal(state)
        if refusal is not None:
            return refusal
        assert state is not None
        try:
            wanted = PairRequest.model_validate(data if data is not None else {})
        except ValidationError as exc:
            return pair_error("INVALID_MESSAGE", describe_validation(exc))
        device_id = state.waiting_for or f"web-{secrets.token_hex(4)}"
        try:
            pending = self.access.request("device", device_id, wanted.label or "browser")
        except AccessError as exc:
            return pair_error(exc.code, exc.message)
        state.waiting_for = device_id
        self._waiting[device_id] = sid
        return PairResult(ok=True, device_id=device_id, request_code=pending.code).model_dump()

    def _refusal(self, state: _Pairing | None) -> JsonValue:
        if state is None:
            return pair_error("NOT_PAIRING", "this socket is already registered")
        address = self._address_bucket(state.address)
        for bucket, whose in ((address, "from this address"), (self._total, "right now")):
            if not bucket.take():
                wait = max(1, math.ceil(bucket.retry_after()))
                return pair_error(
                    "RATE_LIMITED",
                    f"too many pairing attempts {whose}; try again in {wait} s",
                    retry_after=wait,
                )
        return None

    def _address_bucket(self, address: str) -> TokenBucket:
        bucket = self._per_address.get(address)
        if bucket is None:
            if len(self._per_address) >= MAX_TRACKED_ADDRESSES:
                # Addresses whose budget refilled completely carry no memory worth keeping.
                self._per_address = {a: b for a, b in self._per_address.items() if not b.full()}
            per_minute = self.config.pair_attempts_per_minute
            bucket = TokenBucket(per_minute / 60.0, per_minute, clock=self._clock)
            self._per_address[address] = bucket
        return bucket

    def decided(self, decision: Decision) -> None:
        """The owner approved or denied a request: tell the socket waiting on it."""
        if decision.request.kind != "device":
            return
        sid = self._waiting.pop(decision.request.subject, None)
        if sid is None:
            return
        if decision.approved and decision.issued is not None:
            result = PairResult(
                ok=True, device_id=decision.issued.device_id, token=decision.issued.token
            )
            self._tasks.spawn(self._emit("paired", result.model_dump(), sid))
        else:
            result = PairResult(
                ok=False, error=ResponseError(code="DENIED", message="the owner denied this device")
            )
            self._tasks.spawn(self._emit("pair_denied", result.model_dump(), sid))
