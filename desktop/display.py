"""Can this machine open the window? Checked before anything starts, so a headless server or a
missing library gets a sentence saying what to do, never a Qt abort.

Qt aborts the whole process (SIGABRT) when its platform plugin cannot start, so the check runs
a tiny Qt application in a child process first (about 0.2 s) and reads what Qt said.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

QT_APT_PACKAGES = (
    "libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 "
    "libegl1 libgl1 libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libasound2"
)
SERVER_HINT = "On a server, run `agenthub serve` and use the web client instead."

_PROBE = (
    "import sys\n"
    "import PyQt6.QtWebEngineWidgets\n"
    "from PyQt6.QtWidgets import QApplication\n"
    "app = QApplication(sys.argv[:1])\n"
    "print(app.platformName())\n"
)


class DisplayUnavailable(Exception):
    """The window cannot open here; the message says what to install or set."""


def check_display(env: Mapping[str, str] | None = None, *, timeout: float = 30.0) -> str:
    """The Qt platform that will run the window; raises `DisplayUnavailable` otherwise."""
    env = dict(os.environ if env is None else env)
    platform = env.get("QT_QPA_PLATFORM", "")
    if (
        sys.platform.startswith("linux")
        and not env.get("DISPLAY")
        and not env.get("WAYLAND_DISPLAY")
        and not platform.startswith(("offscreen", "vnc", "eglfs", "linuxfb"))
    ):
        raise DisplayUnavailable(
            "no display: `agenthub desktop` needs a graphical session and neither DISPLAY nor "
            "WAYLAND_DISPLAY is set. Run it from your desktop session, set DISPLAY (e.g. "
            f"DISPLAY=:0), or start it under a virtual display: `xvfb-run agenthub desktop`. "
            f"{SERVER_HINT}"
        )
    _check_imports()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DisplayUnavailable(
            f"Qt did not start within {timeout:.0f}s (is the display {env.get('DISPLAY', '')!r} "
            "responding?)"
        ) from None
    if probe.returncode == 0:
        return probe.stdout.strip() or "unknown"
    raise DisplayUnavailable(_explain(probe.stderr, env))


def _check_imports() -> None:
    try:
        import PyQt6.QtWebEngineWidgets  # noqa: F401
        import webview  # noqa: F401
    except ModuleNotFoundError as exc:
        raise DisplayUnavailable(
            f"the desktop extra is not installed ({exc.name} is missing): "
            "pip install 'agenthub[desktop]' (pywebview with Qt)"
        ) from None
    except ImportError as exc:
        raise DisplayUnavailable(
            f"Qt cannot load a system library ({exc}). On Debian/Ubuntu: "
            f"apt install {QT_APT_PACKAGES} (or `make setup-system`)"
        ) from None


def _explain(stderr: str, env: Mapping[str, str]) -> str:
    said = " | ".join(line.strip() for line in stderr.strip().splitlines()[-4:] if line.strip())
    lower = stderr.lower()
    if "could not connect to display" in lower:
        return (
            f"cannot open the display {env.get('DISPLAY', '')!r}: is the X server running and "
            f"may this user connect to it (xhost / XAUTHORITY)? {SERVER_HINT} (Qt: {said})"
        )
    if "platform plugin" in lower or "xcb" in lower:
        return (
            "Qt cannot start its display plugin: a system library is missing. On Debian/Ubuntu: "
            f"apt install {QT_APT_PACKAGES} (or `make setup-system`). (Qt: {said})"
        )
    return f"Qt could not start: {said or 'it exited without saying why'}"
