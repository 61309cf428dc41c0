"""The control socket in-process: mode 0600, envelopes, every method, bad requests."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app import ctl
from app.control_handlers import ProcessContext, process_methods
from app.control_protocol import CtlResponse
from app.control_server import ControlServer, HubAlreadyRunningError
from hub.access import AccessStore
from hub.echo import EchoModel
from hub.health import HealthRegistry
from hub.hub import Hub
from hub.origin import Origin
from hub.requests import ConnectedDevice, RequestHost


async def connected() -> list[ConnectedDevice]:
    return [ConnectedDevice(device_id="web-1", kind="client")]


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[tuple[Hub, ControlServer, asyncio.Event]]:
    hub = Hub(data_dir, EchoModel)
    stop = asyncio.Event()
    host = RequestHost(
        access=hub.access,
        health=hub.health,
        hub=hub,
        connected_devices=connected,
        invite_url=lambda code: f"http://127.0.0.1:1/#pair={code}",
    )
    process = process_methods(ProcessContext(mode="serve", request_shutdown=stop.set))
    server = ControlServer(data_dir / "ctl.sock", host, process)
    await server.start()
    yield hub, server, stop
    await server.stop()
    await hub.close()


async def ask(server: ControlServer, method: str, **params: object) -> CtlResponse:
    return await asyncio.to_thread(ctl.call, server.path, method, json.loads(json.dumps(params)))


def rows(response: CtlResponse, key: str) -> list[dict[str, object]]:
    """The list under `key` in a result, as plain dicts (the JSON the client got)."""
    assert response.ok, response.error
    result = json.loads(json.dumps(response.result))
    assert isinstance(result, dict) and isinstance(result[key], list)
    rows: list[dict[str, object]] = result[key]
    return rows


def bare_host(data_dir: Path) -> RequestHost:
    """A process without agents (like `agenthub gateway`)."""
    return RequestHost(access=AccessStore(data_dir / "access.json"), health=HealthRegistry())


async def raw(server: ControlServer, line: bytes) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(line)
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    result: dict[str, object] = json.loads(answer)
    return result


async def test_socket_is_private(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    _, server, _ = served
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


async def test_status_reports_real_state(
    served: tuple[Hub, ControlServer, asyncio.Event],
) -> None:
    _, server, _ = served
    response = await ask(server, "process.status")
    assert response.ok
    assert isinstance(response.result, dict)
    assert response.result["mode"] == "serve"
    assert response.result["model"] == "echo"
    assert response.result["devices"] == [
        {"deviceId": "web-1", "kind": "client", "label": "", "connectedSince": None}
    ]
    text = ctl.render("process.status", response.result)
    assert "main" in text and "idle" in text and "devices connected: 1" in text


async def test_history_sessions_agents(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    hub, server, _ = served
    agent = hub.default_agent
    agent.write("first", Origin(surface="desktop"))
    agent.write("second", Origin(surface="desktop"))
    await agent.wait_idle()
    history = await ask(server, "history", agentId="main", limit=2)
    assert [e["text"] for e in rows(history, "entries")] == ["second", "second"]
    first_seq = agent.history()[0].seq
    after = await ask(server, "history", agentId="main", after=first_seq)
    assert len(rows(after, "entries")) == 3
    assert "[" in ctl.render("history", history.result)
    sessions = await ask(server, "process.sessions")
    [main] = rows(sessions, "sessions")
    assert (main["agentId"], main["sessionKey"], main["messages"]) == ("main", "main", 4)
    assert main["title"] == "first"
    assert "main/main" in ctl.render("process.sessions", sessions.result)
    assert rows(await ask(server, "process.sessions", search="nothing like it"), "sessions") == []
    agents = await ask(server, "agents.list")
    assert rows(agents, "agents")[0]["agentId"] == "main"
    unknown = await ask(server, "history", agentId="nobody")
    assert not unknown.ok and unknown.error is not None and unknown.error.code == "unknown_agent"


async def test_pairing_round_trip(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    hub, server, _ = served
    new = await ask(server, "pair.new")
    assert new.ok and isinstance(new.result, dict)
    assert "pairing code:" in ctl.render("pair.new", new.result)
    request = hub.access.request("channel", "telegram:42", "Ada")
    listing = await ask(server, "pair.list")
    assert request.code in ctl.render("pair.list", listing.result)
    approved = await ask(server, "pair.approve", code=request.code.lower())
    assert approved.ok
    assert hub.access.is_channel_user_approved("telegram", "42")
    assert not hub.access.is_channel_owner("telegram", "42")
    assert ctl.render("pair.approve", approved.result).endswith("(Ada) as a guest")
    owner_request = hub.access.request("channel", "telegram:7", "Me")
    as_owner = await ask(server, "pair.approve", code=owner_request.code, owner=True)
    assert hub.access.is_channel_owner("telegram", "7")
    assert ctl.render("pair.approve", as_owner.result).endswith("as the owner (main)")
    again = await ask(server, "pair.approve", code=request.code)
    assert not again.ok and again.error is not None and again.error.code == "invalid_code"
    missing = await ask(server, "pair.deny")
    assert missing.error is not None and missing.error.code == "invalid_params"
    assert "code" in missing.error.message


async def test_devices_list_and_revoke(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    hub, server, _ = served
    issued = hub.access.redeem_invite(hub.access.create_invite().code, "laptop")
    tablet = hub.access.redeem_invite(hub.access.create_invite().code, "tablet")
    hub.conversation_config = hub.conversation_config.model_copy(
        update={"guest_devices": frozenset({tablet.device_id})}
    )
    listing = await ask(server, "devices.list")
    listed = {row["deviceId"]: row for row in rows(listing, "devices")}
    assert (listed[issued.device_id]["guest"], listed[tablet.device_id]["guest"]) == (False, True)
    assert issued.token not in json.dumps(listing.result)
    assert ctl.render("devices.list", listing.result).splitlines()[1].endswith("tablet  (guest)")
    revoked = await ask(server, "devices.revoke", deviceId=issued.device_id)
    assert revoked.ok
    assert not hub.access.verify_device(issued.device_id, issued.token)
    unknown = await ask(server, "devices.revoke", deviceId="nope")
    assert unknown.error is not None and unknown.error.code == "unknown_device"


async def test_shutdown_request(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    _, server, stop = served
    assert (await ask(server, "process.shutdown")).ok
    assert stop.is_set()


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json\n", "invalid_request"),
        (b'{"id": "1", "method": "explode"}\n', "unknown_method"),
        (b'{"id": "1", "method": "history", "params": {"limit": -3}}\n', "invalid_params"),
        (b'{"id": "1", "method": "process.sessions", "params": {"x": 1}}\n', "invalid_params"),
    ],
)
async def test_bad_requests_get_clear_errors(
    served: tuple[Hub, ControlServer, asyncio.Event], line: bytes, code: str
) -> None:
    _, server, _ = served
    answer = await raw(server, line)
    assert answer["ok"] is False
    assert isinstance(answer["error"], dict) and answer["error"]["code"] == code
    # The server keeps serving after a bad request.
    assert (await ask(server, "agents.list")).ok


async def test_oversized_request_line(served: tuple[Hub, ControlServer, asyncio.Event]) -> None:
    _, server, _ = served
    answer = await raw(server, b'{"id": "' + b"x" * (2 << 20) + b'"}\n')
    assert isinstance(answer["error"], dict) and answer["error"]["code"] == "too_large"


async def test_second_server_refused(
    served: tuple[Hub, ControlServer, asyncio.Event], data_dir: Path
) -> None:
    _, server, _ = served
    with pytest.raises(HubAlreadyRunningError):
        await ControlServer(server.path, bare_host(data_dir), {}).start()


async def test_stale_socket_is_replaced(data_dir: Path) -> None:
    import socket as pysocket

    path = data_dir / "ctl.sock"
    stale = pysocket.socket(pysocket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    server = ControlServer(
        path, RequestHost(access=AccessStore(data_dir / "a.json"), health=HealthRegistry()), {}
    )
    await server.start()
    answer = await raw(server, b'{"id": "1", "method": "agents.list"}\n')
    assert isinstance(answer["error"], dict) and answer["error"]["code"] == "unavailable"
    await server.stop()
    assert not path.exists()


def test_ctl_without_hub(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = ctl.run(data_dir / "ctl.sock", "process.status", {}, as_json=False)
    assert status == 1
    assert "no agenthub is running" in capsys.readouterr().err


def test_chat_users_approved_before_the_owner_choice_existed_stay_owners(data_dir: Path) -> None:
    path = data_dir / "access.json"
    store = AccessStore(path)
    asked = store.request("channel", "telegram:5", "Solo")
    store.approve(asked.code)
    assert not store.is_channel_owner("telegram", "5")
    # A file written before `owner` existed: its one approved user was the single user.
    state = json.loads(path.read_text())
    for user in state["channelUsers"]:
        del user["owner"]
    path.write_text(json.dumps(state))
    assert AccessStore(path).is_channel_owner("telegram", "5")
