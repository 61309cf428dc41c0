"""Sessions over the gateway wire: a `message` frame names its session (and mode), the run
happens there, and every `stream` frame says which session it belongs to."""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from hub.requests.agents import HistoryAnswer
from tests.test_gateway_support import (
    connect_client,
    connect_device,
    is_stream,
    running_stack,
    stream_of,
)


async def test_a_message_goes_to_the_session_it_names(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.send(
            "hub",
            "message",
            {
                "agentId": "main",
                "content": "a side note",
                "sessionKey": "web:notes",
                "mode": "queue",
            },
        )
        end = stream_of(await client.next_frame(is_stream("message_end")))
        assert end.session_key == "web:notes" and end.event["sessionKey"] == "web:notes"
        await client.message("back in main")
        main_end = stream_of(await client.next_frame(is_stream("message_end")))
        assert main_end.session_key == "main"
        notes = await client.request(
            "history", {"agentId": "main", "limit": 10, "sessionKey": "web:notes"}
        )
        texts = [
            e["text"] for e in HistoryAnswer.model_validate(notes.payload).model_dump()["entries"]
        ]
        assert texts == ["a side note", "a side note"]
        bad = await client.send("hub", "message", {"agentId": "main", "content": "x", "mode": "?"})
        refused = await client.next_error()
        assert refused.message_id == bad and refused.code == "INVALID_MESSAGE"
        await client.close()


async def test_an_api_token_talks_but_cannot_administer_the_hub(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        issued = stack.hub.access.issue_token("a script")
        program = await connect_device(
            stack.url,
            {"role": "client", "deviceId": issued.device_id, "token": issued.token},
        )
        try:
            for method in ("devices.list", "pair.new", "devices.revoke"):
                params: dict[str, JsonValue] = (
                    {"deviceId": issued.device_id} if method == "devices.revoke" else {}
                )
                refused = await program.request(method, params)
                assert refused.error is not None and refused.error.code == "forbidden"
            assert (await program.request("agents.list", {})).ok
            assert stack.hub.access.verify_device(issued.device_id, issued.token)
        finally:
            await program.close()
