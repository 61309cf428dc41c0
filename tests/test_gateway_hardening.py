"""Bad input from outside, answered: what the gateway does with frames, packets and requests
that a broken or hostile client sends (issue 11's findings, each reproduced first)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from app import logs
from gateway.config import GatewayConfig
from gateway.pairing import PairingDesk
from gateway.protocol import PairResult
from hub.access import AccessStore
from hub.tasks import TaskFunnel
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    WAIT_SECONDS,
    connect_client,
    connect_device,
    eventually,
    raw_socket,
    reply_is,
    running_stack,
)


async def test_a_binary_attachment_that_is_not_utf8_gets_invalid_message(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.client.emit(
            "send",
            {
                "id": "bin-1",
                "from": client.device_id,
                "to": "hub",
                "action": "message",
                "payload": {"agentId": "main", "content": b"\xff\xfe\x00 not text"},
            },
        )
        error = await client.next_error()
        assert (error.message_id, error.code) == ("bin-1", "INVALID_MESSAGE")
        assert "binary" in error.message
        pairing = await connect_device(stack.url, None)
        answer = await pairing.client.call("pair", {"code": b"\xff\xfe"})
        assert answer["error"]["code"] == "INVALID_MESSAGE"
        await pairing.close()
        await client.message("still answered")
        await client.next_frame(reply_is("still answered"))
        await client.close()


BAD_PACKETS: list[str | bytes] = [
    "42garbage",
    "42[]",
    '42["send","\\ud800"]',
    "42" + "[" * 3000 + "]" * 3000,
    "4",
    "9",
    "42[1,2]",
    b"\xff\xfe",
]


@contextlib.contextmanager
def product_logging(secrets: list[str]) -> Iterator[io.StringIO]:
    """The product's logging (app.logs.configure) into a buffer, undone afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("info", secrets, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


async def bad_http(port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(5):
            await reader.read()
    writer.close()


async def test_bad_client_input_logs_one_line_at_warning_rate_limited_and_redacted(
    data_dir: Path,
) -> None:
    with product_logging([GATEWAY_TOKEN]) as out:
        async with running_stack(data_dir) as stack:
            client = await connect_client(stack.url, stack.hub)
            assert client.device_id is not None
            token_auth = {"role": "client", "deviceId": client.device_id, "token": "x"}
            for auth in (None, {"role": "pair"}):
                async with raw_socket(stack.url, auth) as raw:
                    for _ in range(30):
                        for packet in BAD_PACKETS:
                            await raw.send(packet)
            with contextlib.suppress(AssertionError):
                async with raw_socket(stack.url, token_auth) as raw:
                    await raw.send("42garbage")
            for _ in range(20):
                await bad_http(
                    stack.gateway.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
                )
                await bad_http(stack.gateway.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            logging.getLogger("engineio.server").error("leaked %s", GATEWAY_TOKEN)
            await client.message("still answered")
            await client.next_frame(reply_is("still answered"))
            await client.close()
    text = out.getvalue()
    print(text)
    assert "Traceback" not in text
    assert GATEWAY_TOKEN not in text
    assert logging.getLogger("engineio.server").handlers == []
    library = [
        line
        for line in text.splitlines()
        if line.split(" ")[3].rstrip(":").split(".")[0] in ("engineio", "socketio", "aiohttp")
    ]
    assert library, "the bad input was logged"
    assert all(line.split()[2] in ("DEBUG", "INFO", "WARNING") for line in library), library
    assert len(library) < 40, library  # rate-limited per source, not one line per packet


def test_library_records_are_limited_per_source_and_say_what_was_left_out() -> None:
    now = [0.0]
    policy = logs.LibraryRecords(burst=2, window=60.0, clock=lambda: now[0])

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)

    kept = [policy.filter(record("engineio.server", "bad packet %d", i)) for i in range(10)]
    assert kept == [True, True] + [False] * 8
    assert policy.filter(record("aiohttp.server", "bad request"))  # another source
    assert policy.filter(record("agenthub.gateway", "ours are never limited"))
    now[0] = 61.0
    later = record("engineio.server", "bad packet %d", 11)
    assert policy.filter(later)
    assert later.getMessage() == "bad packet 11 (8 more like this in the last 61 s)"
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        failing = logging.LogRecord(
            "socketio.server", logging.ERROR, __file__, 1, "handler error", (), sys.exc_info()
        )
    assert policy.filter(failing)
    assert (failing.levelname, failing.exc_info) == ("WARNING", None)
    assert failing.getMessage() == "handler error: ValueError: line one line two"


async def test_long_polling_is_refused_and_a_big_post_is_answered_at_once(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack, aiohttp.ClientSession() as http:
        polling = f"{stack.url}/socket.io/?EIO=4&transport=polling"
        async with asyncio.timeout(WAIT_SECONDS), http.get(polling) as response:
            assert response.status == 400
            sid = "none"
            if response.status == 200:  # the handshake: `0{"sid": …}`
                sid = json.loads((await response.text())[1:])["sid"]
        async with (
            asyncio.timeout(WAIT_SECONDS),
            http.post(f"{polling}&sid={sid}", data=b"4" + b"x" * (5 * 1024 * 1024)) as response,
        ):
            assert 400 <= response.status < 500
        # The web client's transport is untouched.
        client = await connect_client(stack.url, stack.hub)
        await client.message("over websocket")
        await client.next_frame(reply_is("over websocket"))
        await client.close()


async def test_pairing_guesses_are_limited_per_address_and_in_all(tmp_path: Path) -> None:
    config = GatewayConfig(
        gateway_token=SecretStr(GATEWAY_TOKEN),
        pair_attempts_per_minute=6,
        pair_attempts_per_minute_total=30,
        max_pairing_sockets_per_address=100,
    )
    tasks = TaskFunnel("test")

    async def emit(event: str, data: object, sid: str) -> None:
        return None

    desk = PairingDesk(
        config, AccessStore(tmp_path / "access.json"), emit, tasks, clock=lambda: 0.0
    )

    async def guess(sid: str, address: str) -> PairResult:
        desk.admit(sid, address)
        try:
            return PairResult.model_validate(await desk.pair(sid, {"code": "AAAAAAAA"}))
        finally:
            desk.leave(sid)

    # A fresh socket for every guess, from one address: 6 guesses of 40 are evaluated.
    same = [await guess(f"s{i}", "203.0.113.7") for i in range(40)]
    codes = [r.error.code for r in same if r.error is not None]
    assert codes == ["invalid_code"] * 6 + ["RATE_LIMITED"] * 34
    locked = same[-1]
    assert locked.retry_after == 10
    assert locked.error is not None
    assert "try again in 10 s" in locked.error.message
    # Many addresses: 30 guesses a minute in all, whoever sends them.
    spread = [await guess(f"a{i}", f"198.51.100.{i}") for i in range(100)]
    codes = [r.error.code for r in spread if r.error is not None]
    assert codes == ["invalid_code"] * 24 + ["RATE_LIMITED"] * 76
    assert spread[-1].error is not None
    assert "try again in 2 s" in spread[-1].error.message
    await tasks.close()


async def test_fresh_sockets_do_not_buy_fresh_guesses(data_dir: Path) -> None:
    async with running_stack(data_dir, pair_attempts_per_minute=1) as stack:
        codes = []
        for _ in range(4):
            pairing = await connect_device(stack.url, None)
            for _ in range(2):
                answer = PairResult.model_validate(
                    await pairing.client.call("pair", {"code": "AAAAAAAA"})
                )
                assert answer.error is not None
                codes.append(answer.error.code)
            await pairing.close()
        assert codes == ["invalid_code"] + ["RATE_LIMITED"] * 7


async def handshake_status(url: str, headers: dict[str, str]) -> int:
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(ws_url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_a_loopback_gateway_refuses_foreign_hosts_and_origins(data_dir: Path) -> None:
    async with running_stack(data_dir, public_url="https://chat.example.com") as stack:
        port = stack.gateway.port
        rebinding = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        assert await handshake_status(stack.url, rebinding) == 421
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{stack.url}/", headers={"Host": "evil.example"}) as response:
                assert response.status == 421
                assert "evil" not in await response.text()
            async with http.get(f"{stack.url}/healthz") as response:
                assert response.status == 200
        foreign_origin = {"Origin": "http://evil.example"}
        assert await handshake_status(stack.url, foreign_origin) == 400
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            assert await handshake_status(stack.url, {"Origin": origin}) == 101, origin
        # Behind a proxy for the public URL: its host and origin are the gateway's own.
        proxied = {"Host": "chat.example.com", "Origin": "https://chat.example.com"}
        assert await handshake_status(stack.url, proxied) == 101
        assert await handshake_status(stack.url, {"Origin": "https://chat.example.com:444"}) == 400


def test_invite_codes_are_stored_hashed_and_old_plain_ones_still_work(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    store = AccessStore(path)
    invite = store.create_invite()
    assert invite.code not in path.read_text()
    assert store.invites()[0].expires_at == invite.expires_at
    assert store.redeem_invite(invite.code.lower(), "x").device_id.startswith("web-")
    # A file written before codes were hashed: its plain code redeems, and is hashed on save.
    legacy = json.loads(path.read_text())
    legacy["invites"] = [{"code": "ABCD2345", "expiresAt": invite.expires_at}]
    path.write_text(json.dumps(legacy))
    old = AccessStore(path)
    assert len(old.invites()) == 1
    old.create_invite()
    assert "ABCD2345" not in path.read_text()
    assert old.redeem_invite("abcd-2345", "y").device_id.startswith("web-")


async def test_the_hub_link_reports_its_own_state_once(data_dir: Path) -> None:
    """An orderly stop logs the link going down at INFO, a gateway that goes away at WARNING;
    the client libraries' own lines about it (a warning at every orderly stop) stay out."""
    with product_logging([]) as out:
        async with running_stack(data_dir):
            pass  # the link stops first, as at a shutdown
        async with running_stack(data_dir) as stack:
            await stack.gateway.stop()
            await eventually(lambda: not stack.link.linked)
    lines = out.getvalue().splitlines()
    print("\n".join(lines))
    assert not [line for line in lines if ".client: " in line and "io.client" in line]
    down = [line.split()[2:] for line in lines if "gateway link down" in line]
    assert down[0][0] == "INFO" and down[0][-2:] == ["client", "disconnect"]
    assert down[1][0] == "WARNING"
