"""Attachments over the gateway wire: a web `message` frame with an image reaches the model
(the real openai client through pydantic-ai, against the local stand-in), history names it and
`attachments.get` serves it to a device that may read the session; bad attachments (bad
base64, too many, too big, unknown type, audio with no transcriber) get a clear error."""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import JsonValue

from hub.providers import ModelConfig, build_model
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_gateway_support import Device, connect_client, is_stream, running_stack

PNG = b"\x89PNG\r\n\x1a\n a small cat picture" + bytes(range(200))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attachment(name: str, media_type: str, data: bytes | str) -> dict[str, JsonValue]:
    encoded = data if isinstance(data, str) else b64(data)
    return {"name": name, "mediaType": media_type, "data": encoded}


async def answer_to(client: Device, frame_id: str) -> dict[str, JsonValue]:
    frame = await client.next_frame(
        lambda f: (
            f["action"] == "response"
            and isinstance(f["payload"], dict)
            and f["payload"].get("requestId") == frame_id
        )
    )
    payload = frame["payload"]
    assert isinstance(payload, dict)
    return payload


async def send_with(client: Device, content: str, *files: dict[str, JsonValue]) -> str:
    return await client.send(
        "hub", "message", {"agentId": "main", "content": content, "attachments": list(files)}
    )


async def test_a_web_image_reaches_the_model_and_history_can_show_it(data_dir: Path) -> None:
    async with FakeOpenAI(default=Reply(chunks=("A cat", "."))) as openai:
        model = build_model(ModelConfig(spec="openai:gpt-4o-mini", openai_base_url=openai.base_url))
        async with running_stack(data_dir, model_factory=lambda: model) as stack:
            client = await connect_client(stack.url, stack.hub)
            sent = await send_with(client, "what is it?", attachment("cat.png", "image/png", PNG))
            assert (await answer_to(client, sent))["ok"] is True
            await client.next_frame(is_stream("agent_end"))
            user = [m for m in openai.requests[-1].messages if m["role"] == "user"][-1]
            assert user["content"] == [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(PNG)}},
            ]
            history = await client.history()
            entry = history.model_dump(mode="json")["entries"][0]
            assert entry["text"] == "what is it?"
            (ref,) = entry["attachments"]
            assert (ref["name"], ref["mediaType"], ref["size"]) == (
                "cat.png",
                "image/png",
                len(PNG),
            )
            got = await client.request(
                "attachments.get", {"agentId": "main", "attachmentId": ref["id"]}
            )
            assert got.ok and got.payload == {
                "id": ref["id"],
                "name": "cat.png",
                "mediaType": "image/png",
                "data": b64(PNG),
            }
            stranger: list[dict[str, JsonValue]] = [
                {"agentId": "main", "attachmentId": "0" * 32 + ".png"},
                {"agentId": "main", "attachmentId": str(ref["id"]), "sessionKey": "web:other"},
            ]
            for params in stranger:
                missing = await client.request("attachments.get", params)
                assert missing.error is not None
                assert missing.error.code in ("unknown_attachment", "unknown_session")
            await client.close()


async def test_bad_attachments_get_a_clear_error(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        bad = await send_with(client, "x", attachment("a.png", "image/png", "not base64!"))
        error = await client.next_error()
        assert (error.message_id, error.code) == (bad, "INVALID_MESSAGE")
        assert "attachments.0.data" in error.message and "not valid base64" in error.message
        many = await send_with(client, "x", *[attachment("a.txt", "text/plain", b"hi")] * 9)
        error = await client.next_error()
        assert (error.message_id, error.code) == (many, "INVALID_MESSAGE")
        assert "attachments" in error.message
        odd = await send_with(client, "x", attachment("a.png", "Image/PNG", PNG))
        error = await client.next_error()
        assert (error.message_id, error.code) == (odd, "INVALID_MESSAGE")
        assert "mediaType" in error.message

        exe = await send_with(client, "", attachment("tool.exe", "application/x-msdownload", b"MZ"))
        refused = await answer_to(client, exe)
        assert refused["ok"] is False and refused["error"] == {
            "code": "media_refused",
            "message": "I can only read text files (txt, md, csv, json, code), PDFs, images "
            "(JPEG, PNG, GIF, WebP) and audio, not tool.exe (application/x-msdownload).",
        }
        big = await send_with(
            client, "", attachment("huge.png", "image/png", b"\x89PNG" + b"x" * 5_300_000)
        )
        refused = await answer_to(client, big)
        error_body = refused["error"]
        assert isinstance(error_body, dict)
        assert error_body["code"] == "media_refused"
        assert str(error_body["message"]).startswith("huge.png is larger than 5 MB")
        voice = await send_with(client, "", attachment("memo.webm", "audio/webm", b"\x1aE"))
        refused = await answer_to(client, voice)
        error_body = refused["error"]
        assert isinstance(error_body, dict)
        assert error_body["code"] == "media_refused"
        assert "can't listen to voice notes" in str(error_body["message"])
        assert stack.hub.default_agent.last_run is None
        assert not (data_dir / "media").exists()
        await client.close()


async def test_a_frame_over_the_limit_is_too_large(data_dir: Path) -> None:
    async with running_stack(data_dir, max_frame_bytes=64 * 1024) as stack:
        client = await connect_client(stack.url, stack.hub)
        sent = await send_with(client, "", attachment("p.png", "image/png", b"x" * 100_000))
        error = await client.next_error()
        assert (error.message_id, error.code) == (sent, "TOO_LARGE")
        assert "larger than 65536 bytes" in error.message
        await client.close()
