"""Bad input from outside, answered: what the gateway does with frames, packets and requests
that a broken or hostile client sends (issue 11's findings, each reproduced first)."""

from __future__ import annotations

from pathlib import Path

from tests.test_gateway_support import (
    connect_client,
    connect_device,
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
