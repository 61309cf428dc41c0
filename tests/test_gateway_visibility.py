"""Stream visibility: a guest device (the conversation config's `guest_devices`) receives only
the events of sessions it may see; the owner's devices see every session. Frames from the hub
per event stay independent of the number of devices."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, JsonValue

from gateway.audience import CLIENTS_ROOM, GUESTS_ROOM
from gateway.protocol import StreamFrame, StreamPayload
from hub.access import AccessStore
from hub.conversations import NewSession
from hub.events import MAIN_SESSION
from hub.scopes import ConversationConfig
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    Device,
    connect_client,
    connect_device,
    eventually,
    running_stack,
    stream_of,
)


def _pair_guest(data_dir: Path) -> tuple[str, str]:
    """Pair a device before the hub starts, so its config can name it a guest."""
    data_dir.mkdir(parents=True, exist_ok=True)
    access = AccessStore(data_dir / "access.json")
    issued = access.redeem_invite(access.create_invite().code, "guest tab")
    return issued.device_id, issued.token


async def _frames_until_end(device: Device, session_key: str) -> list[StreamPayload]:
    """Every stream frame the device receives up to the `agent_end` of a run in `session_key`."""
    seen: list[StreamPayload] = []
    while True:
        payload = stream_of(await device.next_frame(lambda f: f["action"] == "stream"))
        seen.append(payload)
        if payload.event.get("type") == "agent_end" and payload.session_key == session_key:
            return seen


async def test_a_guest_sees_only_its_own_sessions_and_the_owner_sees_all(data_dir: Path) -> None:
    guest_id, guest_token = _pair_guest(data_dir)
    config = ConversationConfig(guest_devices=frozenset({guest_id}))
    async with running_stack(data_dir, conversations=config) as stack:
        owner = await connect_client(stack.url, stack.hub, "owner tab")
        guest = await connect_device(
            stack.url, {"role": "client", "deviceId": guest_id, "token": guest_token}
        )
        await eventually(lambda: {owner.device_id, guest_id} <= stack.link.clients)
        sent: list[BaseModel] = []
        emit = stack.link.connection.emit

        async def counting(frame: BaseModel, *, answer: bool = False) -> bool:
            sent.append(frame)
            return await emit(frame, answer=answer)

        stack.link.connection.emit = counting  # type: ignore[method-assign]

        # The guest opens a session of its own (before any run: a request discards frames).
        opened = await guest.request("sessions.new", {"agentId": "main"})
        assert opened.ok, opened.error
        key = NewSession.model_validate(opened.payload).session_key
        content: dict[str, JsonValue] = {"agentId": "main", "content": "the guest's question"}
        content["sessionKey"] = key

        for round_ in range(2):
            # The owner talks in main: the owner's tab follows it, the guest gets none of it.
            sent.clear()
            plans = f"the owner's secret plans {round_}"
            await owner.message(plans)
            owner_main = await _frames_until_end(owner, MAIN_SESSION)
            assert any(p.event.get("text") == plans for p in owner_main)
            main_frames = [f for f in sent if isinstance(f, StreamFrame)]
            assert {f.to for f in main_frames} == {"*"}  # one frame per event, for the owner's

            # The guest talks in its session. Frames keep their order per socket, so anything
            # of main sent to the guest would come before the end of this run.
            sent.clear()
            await guest.send("hub", "message", content)
            theirs = await _frames_until_end(guest, key)
            assert {p.session_key for p in theirs} == {key}
            assert any(p.event.get("text") == "the guest's question" for p in theirs)
            followed = await _frames_until_end(owner, key)  # the owner sees it too
            assert [(p.stream_id, p.seq) for p in followed] == [
                (p.stream_id, p.seq) for p in theirs
            ]
            frames = [f for f in sent if isinstance(f, StreamFrame)]
            assert {f.to for f in frames} == {"*", guest_id}
            # One frame for the owner's devices and one for the guest, per event.
            assert len(frames) == 2 * len({(f.payload.stream_id, f.payload.seq) for f in frames})
        history = await guest.request("history", {"agentId": "main", "limit": 10})
        assert not history.ok and history.error is not None
        assert history.error.code == "forbidden"
        await owner.close()
        await guest.close()


async def test_a_guest_already_connected_leaves_the_owners_room_when_the_hub_says(
    data_dir: Path,
) -> None:
    guest_id, guest_token = _pair_guest(data_dir)
    async with running_stack(data_dir) as stack:
        guest = await connect_device(
            stack.url, {"role": "client", "deviceId": guest_id, "token": guest_token}
        )

        def room(name: str) -> set[str]:
            return set(stack.gateway.sio.manager.rooms["/"].get(name, {}))

        sid = next(iter(stack.gateway.table.device_sids(guest_id)))
        assert sid in room(CLIENTS_ROOM)  # not declared a guest: an owner's device
        hub = await connect_device(
            stack.url, {"role": "hub", "deviceId": "hub-2", "token": GATEWAY_TOKEN}
        )
        answer = await hub.client.call("guests", {"devices": [guest_id]}, timeout=5)
        assert answer == {"ok": True}
        assert sid not in room(CLIENTS_ROOM) and sid in room(GUESTS_ROOM)
        again = await connect_device(
            stack.url, {"role": "client", "deviceId": guest_id, "token": guest_token}
        )
        second = (stack.gateway.table.device_sids(guest_id) - {sid}).pop()
        assert second in room(GUESTS_ROOM) and second not in room(CLIENTS_ROOM)
        # Only hubs declare guests, and only well-formed lists.
        refused = await guest.client.call("guests", {"devices": []}, timeout=5)
        assert refused == {"ok": False, "error": "only a hub declares guests"}
        bad = await hub.client.call("guests", {"devices": ["no spaces"]}, timeout=5)
        assert isinstance(bad, dict) and bad["ok"] is False and "devices" in str(bad["error"])
        for device in (guest, again, hub):
            await device.close()
