"""`session_deleted` on the surfaces: through the real gateway the owner's devices and the guest
that took part in the deleted session hear of it, another guest does not (its list never showed
it); the desktop window's bridge pushes it to the page, asked through the bridge itself."""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from gateway.protocol import StreamPayload
from hub.conversations import NewSession
from hub.events import SessionDeleted
from hub.requests import Caller, RequestHost, dispatch
from hub.scopes import ConversationConfig
from tests.test_desktop_bridge import has_event, make_rig
from tests.test_gateway_support import (
    Device,
    connect_client,
    connect_device,
    eventually,
    running_stack,
    stream_of,
)
from tests.test_gateway_visibility import _pair_guest


async def _until(device: Device, kind: str, session_key: str) -> list[StreamPayload]:
    """Stream frames the device receives up to an event `kind` of `session_key`."""
    seen: list[StreamPayload] = []
    while True:
        payload = stream_of(await device.next_frame(lambda f: f["action"] == "stream"))
        seen.append(payload)
        if payload.event.get("type") == kind and payload.session_key == session_key:
            return seen


async def _own_session(guest: Device) -> str:
    opened = await guest.request("sessions.new", {"agentId": "main"})
    assert opened.ok, opened.error
    return NewSession.model_validate(opened.payload).session_key


async def test_session_deleted_reaches_who_could_see_it(data_dir: Path) -> None:
    alice_id, alice_token = _pair_guest(data_dir)
    bob_id, bob_token = _pair_guest(data_dir)
    config = ConversationConfig(guest_devices=frozenset({alice_id, bob_id}))
    async with running_stack(data_dir, conversations=config) as stack:
        owner = await connect_client(stack.url, stack.hub, "owner tab")
        alice = await connect_device(
            stack.url, {"role": "client", "deviceId": alice_id, "token": alice_token}
        )
        bob = await connect_device(
            stack.url, {"role": "client", "deviceId": bob_id, "token": bob_token}
        )
        await eventually(lambda: {owner.device_id, alice_id, bob_id} <= stack.link.clients)
        alices, bobs = await _own_session(alice), await _own_session(bob)
        message: dict[str, JsonValue] = {"agentId": "main", "content": "hi", "sessionKey": alices}
        await alice.send("hub", "message", message)
        await _until(alice, "agent_end", alices)
        await _until(owner, "agent_end", alices)

        host = RequestHost(access=stack.hub.access, health=stack.hub.health, hub=stack.hub)
        await dispatch(
            host,
            Caller(surface="control", owner=True),
            "sessions.delete",
            {"agentId": "main", "sessionKey": alices},
        )
        heard = (await _until(alice, "session_deleted", alices))[-1]
        assert (heard.event["agentId"], heard.event["sessionKey"]) == ("main", alices)
        await _until(owner, "session_deleted", alices)
        # Bob's frames keep their order: a deletion sent to him would come before this run's.
        message = {"agentId": "main", "content": "bob here", "sessionKey": bobs}
        await bob.send("hub", "message", message)
        bobs_frames = await _until(bob, "agent_end", bobs)
        assert {p.session_key for p in bobs_frames} == {bobs}
        for device in (owner, alice, bob):
            await device.close()


def test_the_desktop_window_hears_a_deletion(data_dir: Path) -> None:
    with make_rig(data_dir) as rig:
        assert rig.call("subscribe", "main").ok
        created = rig.call("request", "sessions.new", {"agentId": "main"})
        assert created.ok and isinstance(created.payload, dict)
        key = created.payload["sessionKey"]
        deleted = rig.call("request", "sessions.delete", {"agentId": "main", "sessionKey": key})
        assert deleted.ok, deleted.error
        rig.sink.wait_for(has_event(SessionDeleted))
        (event,) = [e for e in rig.sink.events() if isinstance(e, SessionDeleted)]
        assert (event.agent_id, event.session_key) == ("main", key)
        refused = rig.refused("request", "sessions.delete", {"agentId": "main", "sessionKey": key})
        assert refused.code == "unknown_session"
