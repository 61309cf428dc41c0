"""Sessions over the gateway wire: a `message` frame names its session (and mode), the run
happens there, and every `stream` frame says which session it belongs to."""

from __future__ import annotations

from pathlib import Path

from hub.requests.agents import HistoryAnswer
from tests.test_gateway_support import connect_client, is_stream, running_stack, stream_of


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
