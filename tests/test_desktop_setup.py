"""What happens around the window: remembered size and position, and a clear message (exit 1)
when no display or Qt library is available."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.desktop_entry import _HubThread
from desktop.display import DisplayUnavailable, check_display
from desktop.window_state import (
    FILE_NAME,
    ScreenArea,
    WindowState,
    clamped,
    load_state,
    placed_on,
    save_state,
)

AGENTHUB = Path(sys.executable).parent / "agenthub"


def test_window_state_round_trips(data_dir: Path) -> None:
    assert load_state(data_dir) == WindowState()
    save_state(data_dir, WindowState(width=900, height=700, x=40, y=30))
    assert load_state(data_dir) == WindowState(width=900, height=700, x=40, y=30)
    assert (data_dir / FILE_NAME).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"width": 5, "height": 700}', b'{"width": "wide"}', b'{"extra": 1}'],
)
def test_a_bad_window_file_gives_the_defaults(data_dir: Path, content: bytes) -> None:
    (data_dir / FILE_NAME).write_bytes(content)
    assert load_state(data_dir) == WindowState()


def test_an_unwritable_data_dir_does_not_fail_the_close(tmp_path: Path) -> None:
    save_state(tmp_path / "missing", WindowState())
    assert not (tmp_path / "missing").exists()


def test_a_position_on_no_screen_is_dropped() -> None:
    screens = [ScreenArea(0, 0, 1920, 1080)]
    on = WindowState(x=100, y=100)
    assert placed_on(on, screens) == on
    off = WindowState(x=2500, y=100)
    assert placed_on(off, screens) == WindowState()
    assert placed_on(off, [*screens, ScreenArea(1920, 0, 1280, 1024)]) == off


def test_reported_geometry_is_clamped() -> None:
    assert clamped(10, 10_000_000, -99_999, 5) == WindowState(
        width=480, height=16_384, x=-16_384, y=5
    )


def _headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    return env


def test_no_display_is_explained() -> None:
    with pytest.raises(DisplayUnavailable, match="DISPLAY") as caught:
        check_display(_headless_env())
    assert "xvfb-run" in str(caught.value)


def test_an_unreachable_display_is_explained() -> None:
    env = {**_headless_env(), "DISPLAY": ":987", "QT_QPA_PLATFORM": "xcb"}
    with pytest.raises(DisplayUnavailable, match="cannot open the display ':987'"):
        check_display(env)


def test_agenthub_desktop_on_a_headless_machine_says_what_to_do(data_dir: Path) -> None:
    done = subprocess.run(
        [str(AGENTHUB), "desktop", "--data-dir", str(data_dir)],
        env=_headless_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "agenthub desktop: no display" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing started: no control socket, no session written.
    assert not (data_dir / "ctl.sock").exists()


def test_a_hub_that_does_not_stop_is_left_behind_with_where_it_hung(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    stopped: list[str] = []

    async def start() -> None:
        pass

    async def hanging_stop() -> None:
        await asyncio.to_thread(release.wait)
        stopped.append("late")

    host = _HubThread(
        start=start, stop=hanging_stop, stop_requested=asyncio.Event(), on_stopping=lambda: None
    )
    host.start()
    try:
        assert host.stop(0.2) is False
        assert "the hub did not stop within 0 s" in caplog.text
        assert "hanging_stop" in capfd.readouterr().err  # where the hub thread was
    finally:
        release.set()
    assert host.stop(30) is True and stopped == ["late"]
