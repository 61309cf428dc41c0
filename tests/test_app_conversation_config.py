"""Conversation settings: owners, dm_scope, identity links and the concurrency bound reach the
hub's session rules; an allow list decides the owner when none is configured; pairing as the
owner or as a guest decides where a chat user's messages go."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.doctor import check_guest_devices
from app.hub_setup import conversation_config
from hub.access import AccessStore
from hub.echo import EchoModel
from hub.events import MAIN_SESSION
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    for name in (
        "AGENTHUB_OWNERS",
        "AGENTHUB_DM_SCOPE",
        "AGENTHUB_GUEST_DEVICES",
        "TELEGRAM_ALLOWED_USERS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))


def test_environment_and_toml_reach_the_rules(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    (data_dir / "config.toml").write_text(
        'dm_scope = "per-peer"\nmax_concurrent_runs = 9\n'
        '[identity_links]\nada = ["telegram:111", "web:web-1"]\n'
    )
    monkeypatch.setenv("AGENTHUB_OWNERS", "telegram:111, telegram:222")
    config = conversation_config(load_settings())
    assert config.owners == frozenset({"telegram:111", "telegram:222"})
    assert (config.scope, config.max_concurrent_runs) == ("per-peer", 9)
    assert config.person("web:web-1") == "ada"


def test_guest_devices_from_toml_or_environment(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    (data_dir / "config.toml").write_text('guest_devices = ["web-aaaa0001"]\n')
    assert conversation_config(load_settings()).guest_devices == {"web-aaaa0001"}
    monkeypatch.setenv("AGENTHUB_GUEST_DEVICES", "web-aaaa0001, web-bbbb0002")
    assert conversation_config(load_settings()).guest_devices == {"web-aaaa0001", "web-bbbb0002"}


def test_doctor_names_guest_devices_that_are_not_paired(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    assert check_guest_devices(load_settings()) is None
    access = AccessStore(data_dir / "access.json")
    paired = access.redeem_invite(access.create_invite().code, "tablet").device_id
    monkeypatch.setenv("AGENTHUB_GUEST_DEVICES", f"{paired},web-typo0000")
    check = check_guest_devices(load_settings())
    assert check is not None and not check.ok
    assert check.detail == "not paired devices: web-typo0000"
    assert "agenthub ctl devices" in check.fix
    monkeypatch.setenv("AGENTHUB_GUEST_DEVICES", paired)
    check = check_guest_devices(load_settings())
    assert check is not None and check.ok


def test_identity_link_loops_are_a_clear_configuration_error(data_dir: Path) -> None:
    (data_dir / "config.toml").write_text(
        '[identity_links]\nada = ["telegram:111"]\nbob = ["telegram:111"]\n'
    )
    with pytest.raises(ConfigError, match=r"^identity_links: .*telegram:111"):
        conversation_config(load_settings())


def test_unknown_surfaces_in_owners_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHUB_OWNERS", "fax:123")
    with pytest.raises(ConfigError, match=r"^AGENTHUB_OWNERS: .*unknown surface"):
        conversation_config(load_settings())


def test_an_allow_list_decides_the_owner_when_none_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert conversation_config(load_settings()).scope == "main"  # single user, as before
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "111")
    alone = conversation_config(load_settings())
    assert alone.owners == frozenset({"telegram:111"}) and alone.scope == "per-channel-peer"
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "111,222")
    several = conversation_config(load_settings())
    assert several.owners == frozenset() and several.scope == "per-channel-peer"


def dm(user: str) -> Origin:
    return Origin(
        surface="channel",
        route=ChannelRoute(channel="telegram", chat_id=user, user_id=user, chat_kind="private"),
    )


async def test_pairing_as_owner_or_guest_decides_the_session(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    try:
        assert hub.session_key_for(dm("7")) == MAIN_SESSION  # nobody approved: single user
        hub.access.approve(hub.access.request("channel", "telegram:7", "Me").code, owner=True)
        hub.access.approve(hub.access.request("channel", "telegram:8", "Guest").code)
        assert hub.session_key_for(dm("7")) == MAIN_SESSION
        guest = hub.session_key_for(dm("8"))
        assert guest != MAIN_SESSION and "8" in guest
    finally:
        await hub.close()
