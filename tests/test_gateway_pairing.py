"""Pairing over the socket: invite codes, requests the owner approves or denies."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import socketio
from pydantic import JsonValue

from app import logs
from gateway.protocol import PairResult
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    connect_device,
    is_stream,
    running_stack,
    stream_of,
)


async def test_an_invite_code_pairs_once_and_the_token_connects(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        code = stack.hub.access.create_invite().code
        pairing = await connect_device(stack.url, {"role": "pair"})
        result = PairResult.model_validate(
            await pairing.client.call("pair", {"code": code.lower(), "label": "Firefox"})
        )
        assert result.ok
        assert result.device_id is not None
        assert result.token is not None
        again = PairResult.model_validate(await pairing.client.call("pair", {"code": code}))
        assert not again.ok
        assert again.error is not None
        assert again.error.code == "invalid_code"
        await pairing.close()
        client = await connect_device(
            stack.url, {"role": "client", "deviceId": result.device_id, "token": result.token}
        )
        await client.message("paired and talking")
        end = stream_of(await client.next_frame(is_stream("message_end")))
        assert end.event["text"] == "paired and talking"
        assert [d.label for d in stack.hub.access.devices()] == ["Firefox"]
        await client.close()


async def test_guessing_codes_is_rate_limited(data_dir: Path) -> None:
    async with running_stack(data_dir, pair_attempts_per_minute=3) as stack:
        pairing = await connect_device(stack.url, None)
        codes = []
        for _ in range(5):
            answer = PairResult.model_validate(
                await pairing.client.call("pair", {"code": "AAAAAAAA"})
            )
            assert answer.error is not None
            codes.append(answer.error.code)
        assert codes == ["invalid_code"] * 3 + ["RATE_LIMITED"] * 2
        await pairing.close()


async def test_a_request_waits_for_the_owner_and_receives_its_token(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        pairing = await connect_device(stack.url, None)
        paired: asyncio.Queue[JsonValue] = asyncio.Queue()
        pairing.client.on("paired", paired.put_nowait)
        asked = PairResult.model_validate(
            await pairing.client.call("pair_request", {"label": "phone"})
        )
        assert asked.ok
        assert asked.request_code is not None
        assert asked.token is None
        pending = stack.hub.access.pending()
        assert [(p.kind, p.subject, p.code) for p in pending] == [
            ("device", asked.device_id, asked.request_code)
        ]
        stack.hub.access.approve(asked.request_code)
        async with asyncio.timeout(5):
            result = PairResult.model_validate(await paired.get())
        assert result.ok
        assert result.device_id == asked.device_id
        assert asked.device_id is not None
        assert result.token is not None
        assert stack.hub.access.verify_device(asked.device_id, result.token)
        await pairing.close()


async def test_a_denied_request_is_told_so(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        pairing = await connect_device(stack.url, None)
        denied: asyncio.Queue[JsonValue] = asyncio.Queue()
        pairing.client.on("pair_denied", denied.put_nowait)
        asked = PairResult.model_validate(await pairing.client.call("pair_request", {}))
        assert asked.request_code is not None
        stack.hub.access.deny(asked.request_code)
        async with asyncio.timeout(5):
            result = PairResult.model_validate(await denied.get())
        assert not result.ok
        assert stack.hub.access.devices() == []
        await pairing.close()


async def test_registered_devices_cannot_pair_again_and_bad_pair_input_is_refused(
    data_dir: Path,
) -> None:
    async with running_stack(data_dir) as stack:
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "x")
        client = await connect_device(
            stack.url, {"role": "client", "deviceId": issued.device_id, "token": issued.token}
        )
        answer = PairResult.model_validate(await client.client.call("pair", {"code": "X"}))
        assert answer.error is not None
        assert answer.error.code == "NOT_PAIRING"
        await client.close()
        pairing = await connect_device(stack.url, None)
        answer = PairResult.model_validate(await pairing.client.call("pair", {"code": 12}))
        assert answer.error is not None
        assert answer.error.code == "INVALID_MESSAGE"
        await pairing.close()


@pytest.mark.parametrize("limit", ["max_pairing_sockets", "max_pairing_sockets_per_address"])
async def test_too_many_pairing_sockets_are_refused(data_dir: Path, limit: str) -> None:
    options: dict[str, Any] = {limit: 2}
    async with running_stack(data_dir, **options) as stack:
        first = await connect_device(stack.url, None)
        second = await connect_device(stack.url, None)
        with pytest.raises(socketio.exceptions.ConnectionError, match="RATE_LIMITED"):
            await connect_device(stack.url, None)
        await first.close()
        await second.close()


async def test_tokens_and_codes_never_reach_the_logs(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logs.quiet_libraries()  # as every command does, through logs.configure, at any level
    async with running_stack(data_dir) as stack:
        code = stack.hub.access.create_invite().code
        pairing = await connect_device(stack.url, None)
        result = PairResult.model_validate(await pairing.client.call("pair", {"code": code}))
        await pairing.close()
        assert result.token is not None
        assert result.device_id is not None
        client = await connect_device(
            stack.url, {"role": "client", "deviceId": result.device_id, "token": result.token}
        )
        await client.message("hello")
        await client.next_frame(is_stream("message_end"))
        await client.close()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect_device(
                stack.url, {"role": "client", "deviceId": result.device_id, "token": "guess"}
            )
    assert "device web-" in caplog.text  # the log did record the pairing
    for secret in (result.token, code, GATEWAY_TOKEN, "guess"):
        assert secret not in caplog.text
