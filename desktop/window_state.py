"""The window's size and position, remembered in `<data-dir>/window.json`.

Read at start (a missing, unreadable or implausible file gives the defaults, with a warning,
never a crash) and written atomically when the window closes. A position that lies on no
current screen (a monitor was unplugged) is dropped, so the window never opens out of sight.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from hub.wire import StateModel

log = logging.getLogger("agenthub.desktop")

FILE_NAME = "window.json"
MIN_WIDTH, MIN_HEIGHT = 480, 360
MAX_SIDE = 16_384


class WindowState(StateModel):
    width: Annotated[int, Field(ge=MIN_WIDTH, le=MAX_SIDE)] = 1000
    height: Annotated[int, Field(ge=MIN_HEIGHT, le=MAX_SIDE)] = 720
    x: Annotated[int, Field(ge=-MAX_SIDE, le=MAX_SIDE)] | None = None
    y: Annotated[int, Field(ge=-MAX_SIDE, le=MAX_SIDE)] | None = None


@dataclass(frozen=True)
class ScreenArea:
    x: int
    y: int
    width: int
    height: int

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


def load_state(data_dir: Path) -> WindowState:
    path = data_dir / FILE_NAME
    try:
        return WindowState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return WindowState()
    except (OSError, ValidationError) as exc:
        log.warning("ignoring %s (%s); using the default window size", path, _short(exc))
        return WindowState()


def save_state(data_dir: Path, state: WindowState) -> None:
    path = data_dir / FILE_NAME
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, state.model_dump_json(indent=1).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not remember the window size in %s: %s", path, exc.strerror)


def placed_on(state: WindowState, screens: Sequence[ScreenArea]) -> WindowState:
    """`state` without its position when the window's top-left corner is on no screen."""
    if state.x is None or state.y is None:
        return state.model_copy(update={"x": None, "y": None})
    if any(screen.contains(state.x, state.y) for screen in screens):
        return state
    return state.model_copy(update={"x": None, "y": None})


def clamped(width: int, height: int, x: int | None, y: int | None) -> WindowState:
    """A state from what the window reports, forced into the valid ranges."""

    def bound(value: int, low: int) -> int:
        return max(low, min(MAX_SIDE, value))

    return WindowState(
        width=bound(width, MIN_WIDTH),
        height=bound(height, MIN_HEIGHT),
        x=None if x is None else max(-MAX_SIDE, min(MAX_SIDE, x)),
        y=None if y is None else max(-MAX_SIDE, min(MAX_SIDE, y)),
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'file'}: {first['msg']}"
    return str(exc)
