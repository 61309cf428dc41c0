"""Fuzzing the gateway from outside: Socket.IO `send` frames from paired and unpaired sockets,
raw Engine.IO packets, and raw HTTP requests, all malformed in ways a broken or hostile client
might choose. Afterwards: no traceback and no ERROR in the product's log, no hang (every step
is bounded), the process's RSS within 16 MiB of what it was after a warm-up, and a legitimate
message still answered.

Bounded to about 10 s of fuzzing (plus a 2.5 s warm-up; some 40k frames) by default;
`AGENTHUB_FUZZ_SECONDS=600` runs longer, `AGENTHUB_FUZZ_SEED` replays one sequence,
`AGENTHUB_FUZZ_LOG=FILE` keeps the product log. The figures are printed at the end: frames,
RSS at start and end, and the turns the fuzz made (a valid fuzzed `message` is a real turn).
What grows is the conversation: the turns' entries stay in the loaded session's memory
(hub/sessions.py), some 6 KiB of RSS per stored entry with the allocator's slack, about
0.15 KiB per fuzzed frame at this mix; with turns refused the same fuzz grows by 0.025 KiB
per frame (1.3 MiB after 55k frames), and the gateway keeps no object of a fuzzed frame
(tracemalloc), so a run of more than about 100k frames is bounded by its conversation, not
by the gateway. The paired device's frames are consumed as they come (a test's queue is
this process's memory too).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from app import logs
from hub.echo import EchoModel
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    RawSocket,
    Stack,
    connect_client,
    eventually,
    raw_socket,
    reply_is,
    running_stack,
)

SECONDS = float(os.environ.get("AGENTHUB_FUZZ_SECONDS", "10"))
SEED = int(os.environ.get("AGENTHUB_FUZZ_SEED", str(time.time_ns() % 1_000_000)))
RSS_SLACK = 16 * 1024 * 1024
STEP_SECONDS = 10.0  # no single step may take longer: that would be a hang


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- what the fuzzer sends ----------------------------------------------------------------------

ODD_STRINGS = [
    "",
    " ",
    "hub",
    "*",
    "main",
    "\u0000",
    "\U0001f600" * 3,
    "é" * 300,
    "x" * 5000,
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "%s%s%n",
    "\u202e\u200b",
    "web-" + "0" * 64,
]


def odd_value(rng: random.Random, depth: int = 0) -> object:
    """A JSON value of any type, often an odd one."""
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**64), 10**30])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, -1e-308])
    if kind in (4, 5):
        return rng.choice(ODD_STRINGS)
    if kind in (6, 7):
        return [odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["id", "from", "to", "action", "payload", "agentId", "content", "requestId"]
    keys += ["method", "params", "limit", "before", "streamId", "seq", "event", "code", "label"]
    return {rng.choice(keys): odd_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def odd_frame(rng: random.Random, device_id: str | None) -> object:
    """A `send` frame: mostly a valid one with one or two parts made odd."""
    if rng.random() < 0.1:
        return odd_value(rng)
    action = rng.choice(["message", "request", "stream", "response", "dance", None])
    payloads: dict[str | None, object] = {
        # Short texts: a message that is valid is a real turn, kept in the session, and the
        # conversation's own growth is not what the RSS bound is about.
        "message": {"agentId": "main", "content": rng.choice(ODD_STRINGS)[:40] or "hi"},
        "request": {
            "requestId": "r1",
            "method": rng.choice(["history", "agents.list", "status", "abort", "sessions.list"]),
            "params": {"agentId": rng.choice(["main", "nobody", 7]), "limit": odd_value(rng)},
        },
        "stream": {"agentId": "main", "streamId": "s", "seq": 0, "event": {}},
        "response": {"requestId": "r1", "ok": True, "payload": None},
    }
    frame: dict[str, object] = {
        "id": f"fz-{rng.randrange(10**9)}",
        "from": device_id or "nobody",
        "to": rng.choice(["hub", "hub", "*", "web-unknown", device_id or "x"]),
        "action": action,
        "payload": payloads.get(action, odd_value(rng)),
    }
    for _ in range(rng.randrange(3)):
        target: dict[str, object] = frame
        payload = frame.get("payload")
        if isinstance(payload, dict) and rng.random() < 0.5:
            target = payload
        key = rng.choice([*target, "extra"])
        if rng.random() < 0.3:
            target.pop(key, None)
        else:
            target[key] = odd_value(rng)
    return frame


def engineio_packet(rng: random.Random, device_id: str | None) -> str | bytes:
    """A raw Engine.IO packet (a websocket message), mostly not a well-formed one."""
    # Kinds 0, 1, 5 and 7 may change the socket's state (see changes_state): keep them rarer.
    choice = rng.choice([0, 1, 5, 7] + [2, 3, 4, 6, 8, 9, 10, 11] * 10)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if choice == 1:
        return rng.choice("0123456789") + rng.choice(ODD_STRINGS)
    if choice == 2:
        return "42" + "[" * rng.randrange(100, 5000)
    if choice == 3:
        return '42["send",' + json.dumps(odd_frame(rng, device_id))  # unterminated
    if choice == 4:
        return "42" + json.dumps(["send", odd_frame(rng, device_id)])[:-1] + ',"\\ud800"]'
    if choice == 5:
        return rng.choice(["40", "41", "43", "44", "45", "46", "49"]) + json.dumps(odd_value(rng))
    if choice == 6:
        return "421" + json.dumps([rng.choice(["pair", "pair_request"]), odd_value(rng)])
    if choice == 7:
        return "451-" + json.dumps(["send", {"_placeholder": True, "num": rng.randrange(-1, 3)}])
    if choice == 8:
        return "42" + json.dumps([odd_value(rng), odd_value(rng)])
    return "42" + json.dumps(["send", odd_frame(rng, device_id)])


def http_request(rng: random.Random, port: int) -> bytes:
    """One raw HTTP request, often malformed."""
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW", "G\x00T"])
    path = rng.choice(
        [
            "/",
            "/healthz",
            "/status",
            "/socket.io/?EIO=4&transport=polling",
            "/socket.io/?EIO=3&transport=websocket",
            "/socket.io/?EIO=4&transport=websocket&sid=" + "A" * 40,
            "/../../etc/passwd",
            "/%00",
            "/" + "a" * 9000,
            "/app.js?" + "x=1&" * 500,
        ]
    )
    host = rng.choice([f"127.0.0.1:{port}", "evil.example", "", "127.0.0.1:1"])
    headers = [f"Host: {host}"]
    for _ in range(rng.randrange(4)):
        headers.append(
            rng.choice(
                [
                    "Content-Length: -1",
                    "Content-Length: 99999999999",
                    "Transfer-Encoding: chunked",
                    "Upgrade: websocket",
                    "Connection: Upgrade",
                    "Origin: http://evil.example",
                    "X: " + "y" * 9000,
                    "Bad Header",
                    "Sec-WebSocket-Version: 99",
                ]
            )
        )
    body = rng.choice(
        [b"", b"0\r\n\r\n", b"zz\r\nxx\r\n", bytes(rng.randrange(256) for _ in range(64))]
    )
    version = rng.choice(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 extra", ""])
    head = f"{method} {path} {version}\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("utf-8", "surrogatepass") + body


# -- running it ---------------------------------------------------------------------------------


@dataclass
class Figures:
    frames: int = 0
    packets: int = 0
    http: int = 0
    reconnects: int = 0
    probes: int = 0
    hangs: int = 0
    refused: int = 0
    closed: int = 0


@contextlib.contextmanager
def product_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("info", [GATEWAY_TOKEN], stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


async def fuzz_sockets(
    url: str,
    auth: dict[str, str] | None,
    device_id: str | None,
    rng: random.Random,
    until: Callable[[], bool],
    figures: Figures,
) -> None:
    """Frames and packets over one socket at a time; a socket the server closed is replaced."""
    while not until():
        try:
            async with raw_socket(url, auth) as raw:
                await _fuzz_one(raw, device_id, rng, until, figures, connected=auth is not None)
        except (AssertionError, aiohttp.ClientError, ConnectionError):
            figures.refused += 1  # the server refused or closed it: that is an answer too
        figures.reconnects += 1


PROBE = '424242["pair",{}]'  # answered (acknowledged) on any connected socket


def changes_state(packet: str | bytes) -> bool:
    """Whether the packet legitimately changes what the socket does next (close, upgrade,
    namespace connect/disconnect, or a binary packet that takes the next messages as its
    attachments): after one, a probe need not be answered, so the socket is replaced."""
    if isinstance(packet, bytes):
        return True
    return packet[:1] in ("0", "1", "5") or packet[:2] in ("40", "41", "44", "45", "46")


async def _fuzz_one(
    raw: RawSocket,
    device_id: str | None,
    rng: random.Random,
    until: Callable[[], bool],
    figures: Figures,
    *,
    connected: bool,
) -> None:
    """Batches of 10 odd frames and packets; after each, a probe that must be answered
    within STEP_SECONDS while the socket stays open (no answer: a hang)."""
    answered = asyncio.Event()

    async def drain() -> None:
        while (text := await raw.next_text()) != "":
            if text.startswith("434242"):
                answered.set()

    reader = asyncio.get_running_loop().create_task(drain())
    try:
        while not until() and not reader.done():
            leaving = False
            for _ in range(10):
                if rng.random() < 0.6:
                    await raw.send("42" + json.dumps(["send", odd_frame(rng, device_id)]))
                    figures.frames += 1
                else:
                    packet = engineio_packet(rng, device_id)
                    leaving |= changes_state(packet)
                    await raw.send(packet)
                    figures.packets += 1
            if leaving or not connected:
                await asyncio.sleep(0.005)
                if leaving:
                    return
                continue
            answered.clear()
            await raw.send(PROBE)
            waiter = asyncio.get_running_loop().create_task(answered.wait())
            await asyncio.wait(
                {waiter, reader}, timeout=STEP_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if not answered.is_set() and not reader.done():
                figures.hangs += 1
                return
            figures.probes += 1
    finally:
        if reader.done():
            figures.closed += 1
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def fuzz_http(
    port: int, rng: random.Random, until: Callable[[], bool], figures: Figures
) -> None:
    while not until():
        async with asyncio.timeout(STEP_SECONDS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(http_request(rng, port))
                await writer.drain()
                with contextlib.suppress(ConnectionError):
                    await reader.read(65536)
            finally:
                writer.close()
        figures.http += 1
        await asyncio.sleep(0.005)  # share the loop with the socket fuzzers (one process)


async def sockets_freed(stack: Stack) -> None:
    """Wait until Engine.IO holds no socket but the hub link's and the paired device's."""
    await eventually(lambda: len(stack.gateway.sio.eio.sockets) == 2)


@pytest.mark.timeout(int(SECONDS * 3) + 120)  # a longer opt-in run is not a hang
async def test_fuzzing_the_gateway_leaves_it_clean_bounded_and_answering(data_dir: Path) -> None:
    rng = random.Random(SEED)
    print(f"fuzz seed {SEED} (AGENTHUB_FUZZ_SEED repeats this run)")  # shown if it fails
    figures = Figures()
    with product_log() as out:
        async with running_stack(
            data_dir,
            model_factory=lambda: EchoModel(pieces=2, delay=0.0),
            client_rate=1000.0,
            client_burst=1000,
            max_pairing_sockets_per_address=100,
            # Engine.IO keeps a closed socket until its ping task wakes (ping_interval) and its
            # sweep (one pass per ping_timeout) comes by: short ones let the memory of the
            # thousands of fuzzing sockets go before measuring. A socket that leaves a ping
            # unanswered for ping_timeout is dropped, though: one as long as a step may take
            # keeps the paired device and the hub link through this process's loop stalling
            # on a loaded box (a full collection, a burst of frames).
            ping_interval=1.0,
            ping_timeout=STEP_SECONDS,
        ) as stack:
            paired = await connect_client(stack.url, stack.hub, "fuzz")
            assert paired.device_id is not None
            delivered = [0]

            async def consume() -> None:
                while True:
                    await paired.received.get()
                    delivered[0] += 1

            consumer = asyncio.get_running_loop().create_task(consume())
            issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "raw")
            client_auth = {"role": "client", "deviceId": issued.device_id, "token": issued.token}
            stop_at = [time.monotonic() + min(5.0, SECONDS / 4)]

            def until() -> bool:
                return time.monotonic() >= stop_at[0]

            async def round_() -> None:
                async with asyncio.timeout(max(60.0, SECONDS * 3)):
                    await asyncio.gather(
                        fuzz_sockets(stack.url, client_auth, issued.device_id, rng, until, figures),
                        fuzz_sockets(stack.url, {"role": "pair"}, None, rng, until, figures),
                        fuzz_sockets(stack.url, None, None, rng, until, figures),
                        fuzz_http(stack.gateway.port, rng, until, figures),
                    )

            await round_()  # warm-up: what the process allocates once is not a leak
            await sockets_freed(stack)
            gc.collect()
            main = stack.hub.agent("main").sessions
            entries_before = len(main.current("main").entries)
            start_rss = rss_bytes()
            stop_at[0] = time.monotonic() + SECONDS
            await round_()
            # Every fuzzing socket is gone from the gateway's books: the hub and `paired` remain.
            await eventually(lambda: len(stack.gateway.table) == 2)
            await eventually(lambda: len(stack.gateway.pairing) == 0)
            await sockets_freed(stack)
            gc.collect()
            end_rss = rss_bytes()
            entries = len(main.current("main").entries) - entries_before
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await paired.message("still answered after the fuzz")
            await paired.next_frame(reply_is("still answered after the fuzz"))
            await paired.close()
    text = out.getvalue()
    if os.environ.get("AGENTHUB_FUZZ_LOG"):
        await asyncio.to_thread(Path(os.environ["AGENTHUB_FUZZ_LOG"]).write_text, text)
    print(
        f"fuzz seed {SEED}: {figures.frames} frames, {figures.packets} raw packets,"
        f" {figures.http} HTTP requests, {figures.reconnects} sockets,"
        f" ({figures.refused} refused, {figures.closed} closed by the gateway),"
        f" {figures.probes} probes answered, {figures.hangs} hangs;"
        f" RSS {start_rss / 2**20:.1f} -> {end_rss / 2**20:.1f} MiB"
        f" ({(end_rss - start_rss) / 2**20:+.1f} MiB,"
        f" {(end_rss - start_rss) / 1024 / max(1, figures.frames):.3f} KiB per frame);"
        f" {entries} session entries from fuzzed turns; {delivered[0]} frames to the paired"
        f" device; {len(text.splitlines())} log lines"
    )
    assert "Traceback" not in text
    assert not [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert figures.hangs == 0
    assert end_rss - start_rss < RSS_SLACK
    assert figures.frames > 0 and figures.packets > 0 and figures.http > 0
