"""The real window: `agenthub desktop` under Xvfb (Qt on xcb), driven from here through Qt
WebEngine's DevTools endpoint (QTWEBENGINE_REMOTE_DEBUGGING), the way a person would use it:
type, click, read the DOM. Pairing goes through the real gateway with a real Socket.IO client;
the agent error comes from the real OpenAI provider refused by a local OpenAI-compatible
server. A screenshot of the screen goes to test-artifacts/desktop-window.png."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from pydantic import JsonValue

from desktop.window_state import WindowState, load_state, save_state
from tests.conftest import free_port, require_binary
from tests.fake_openai import FakeOpenAI, Fault, Reply, ToolCall

pytestmark = pytest.mark.slow

AGENTHUB = Path(sys.executable).parent / "agenthub"
START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private Xvfb display on a free number."""
    xvfb = require_binary("Xvfb", "runs the desktop window in the tests")
    for number in range(90, 190):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        server = subprocess.Popen(
            [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.05)
        if server.poll() is not None:
            continue  # taken meanwhile: try the next number
        try:
            yield f":{number}"
        finally:
            server.terminate()
            server.wait(10)
        return
    pytest.fail("no free X display number for Xvfb")


class Page:
    """One page of the window over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def evaluate(self, expression: str) -> JsonValue:
        call_id = next(self._ids)
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        await self.ws.send_json({"id": call_id, "method": "Runtime.evaluate", "params": params})
        while True:
            message: dict[str, Any] = await self.ws.receive_json()
            if message.get("id") == call_id:
                break
        result = message["result"]
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        value: JsonValue = result["result"].get("value")
        return value

    async def wait_for(self, expression: str, within: float = 20.0) -> JsonValue:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + within
        value = await self.evaluate(expression)
        while not value:
            if time.monotonic() > deadline:
                raise AssertionError(f"still falsy after {within}s: {expression}")
            await asyncio.sleep(0.05)
            value = await self.evaluate(expression)
        return value

    async def type_and_send(self, text: str) -> None:
        await self.evaluate(
            f"(() => {{ const input = document.getElementById('input');"
            f" input.value = {json.dumps(text)};"
            f" input.dispatchEvent(new Event('input'));"
            f" document.getElementById('send').click(); }})()"
        )


class DesktopProcess:
    def __init__(self, proc: asyncio.subprocess.Process, data_dir: Path, log: Path) -> None:
        self.proc = proc
        self.data_dir = data_dir
        self.log = log

    async def exit_status(self) -> int:
        """The exit status; the process bounds its own stop (grace + STOP_MARGIN), and one that
        did not stop cleanly leaves where it hung in its log, shown here."""
        status = await asyncio.wait_for(self.proc.wait(), 90)
        if status != 0:
            print(self.log.read_text(errors="replace")[-20_000:])
        return status


@contextlib.asynccontextmanager
async def desktop_window(
    display: str, data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[DesktopProcess, Page]]:
    """`agenthub desktop …` with DevTools on a free port; yields once the UI is online."""
    devtools = free_port()
    log = data_dir.parent / "desktop.log"
    full_env = {
        **os.environ,
        **(env or {}),
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{devtools}",
        "AGENTHUB_LOG_LEVEL": "info",
        # A link that would leave the window "opens in the system browser": here, a no-op.
        "BROWSER": "true",
    }
    if os.geteuid() == 0:
        full_env["QTWEBENGINE_CHROMIUM_FLAGS"] = "--no-sandbox"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(AGENTHUB),
            "desktop",
            "--data-dir",
            str(data_dir),
            *args,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = DesktopProcess(proc, data_dir, log)
    try:
        async with aiohttp.ClientSession() as session:
            target = await _find_page(session, devtools, proc, log)
            async with session.ws_connect(target, max_msg_size=0) as ws:
                page = Page(ws)
                await page.wait_for(
                    "document.getElementById('conn')?.dataset.state === 'online'", START_TIMEOUT
                )
                yield app, page
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _find_page(
    session: aiohttp.ClientSession, port: int, proc: asyncio.subprocess.Process, log: Path
) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"agenthub desktop exited: {_tail(log)}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{port}/json") as response:
                for target in await response.json():
                    if target["type"] == "page" and "index.html?desktop=1" in target["url"]:
                        url: str = target["webSocketDebuggerUrl"]
                        return url
        await asyncio.sleep(0.1)
    raise AssertionError(f"the window never showed the UI: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def screenshot(display: str, path: Path) -> None:
    """The whole X screen (that is, the window) as PNG, grabbed by Qt in a child process."""
    grab = (
        "import sys\n"
        "from PyQt6.QtGui import QGuiApplication\n"
        "app = QGuiApplication(sys.argv[:1])\n"
        "assert app.primaryScreen().grabWindow(0).save(sys.argv[1])\n"
    )
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    subprocess.run([sys.executable, "-c", grab, str(path)], env=env, check=True, timeout=60)


RECORD_PUSHES = """(() => {
  window.__pushes = [];
  const receive = window.agenthubDesktop.receive;
  window.agenthubDesktop.receive = (text) => {
    window.__pushes.push(JSON.parse(text));
    return receive(text);
  };
  return true;
})()"""

OBSERVE_BUBBLE = """(() => {
  window.__seen = [];
  const messages = document.getElementById('messages');
  new MutationObserver(() => {
    const bubble = [...messages.querySelectorAll('.message.assistant .bubble')].pop();
    const text = bubble?.textContent.trim();
    if (text && window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
  }).observe(messages, {childList: true, subtree: true, characterData: true});
  return true;
})()"""

HOSTILE = 'Hello from the **desktop** <img src=x onerror="globalThis.pwned=1"> window'
SHOWN = 'Hello from the desktop <img src=x onerror="globalThis.pwned=1"> window'


async def test_chat_streams_pairing_is_approved_and_the_window_is_remembered(
    display: str, data_dir: Path, artifacts: Path
) -> None:
    port = free_port()
    async with desktop_window(display, data_dir, "--with-gateway", "--port", str(port)) as (
        app,
        page,
    ):
        assert await page.evaluate(RECORD_PUSHES)
        # 1. Send from the page; the echo streams back into the DOM.
        await page.type_and_send(HOSTILE)
        shown = await page.wait_for(
            "document.querySelector('.message.assistant[data-final=\"true\"] .bubble')"
            "?.textContent.trim()"
        )
        assert shown == SHOWN
        assert await page.evaluate("document.querySelector('.message.user .bubble').textContent")
        assert await page.evaluate("typeof globalThis.pwned") == "undefined"
        assert await page.evaluate("document.querySelectorAll('#messages img').length") == 0
        streamed = await page.evaluate(
            "window.__pushes.flat().filter(p => p.kind === 'stream').map(p => p.event)"
        )
        assert isinstance(streamed, list)
        types = [e["type"] for e in streamed if isinstance(e, dict)]
        assert types[:2] == ["agent_start", "message_start"]
        assert types[-2:] == ["message_end", "agent_end"]
        texts = [e["text"] for e in streamed if isinstance(e, dict) and "text" in e]
        assert texts[-1] == HOSTILE
        assert all(isinstance(t, str) and HOSTILE.startswith(t) for t in texts)
        assert all(isinstance(e, dict) and e.get("role") != "user" for e in streamed)

        # Any text survives both directions of the bridge exactly (pywebview's return path too).
        nasty = "q'\"` \\ \u2028 \u2029 </script><!-- ${x} \n\t 🎉"
        sent = await page.evaluate(f"pywebview.api.send('main', {json.dumps(nasty)})")
        assert isinstance(sent, dict)
        assert sent["ok"] is True
        await page.wait_for(
            "document.querySelectorAll('.message.assistant[data-final=\"true\"]').length === 2"
        )
        stored = await page.evaluate(
            "pywebview.api.request('history', {agentId: 'main', limit: 10})"
            ".then(r => r.payload.entries.map(e => e.text))"
        )
        assert stored == [HOSTILE, HOSTILE, nasty, nasty]

        # 2. A browser asks the gateway for access; the window shows it; the owner approves.
        device = socketio.AsyncClient(reconnection=False)
        paired: asyncio.Queue[JsonValue] = asyncio.Queue()
        device.on("paired", paired.put_nowait)
        await device.connect(
            f"http://127.0.0.1:{port}", auth={"role": "pair"}, transports=["websocket"]
        )
        try:
            asked = await device.call("pair_request", {"label": "Test tablet"}, timeout=10)
            assert isinstance(asked, dict)
            code = asked["requestCode"]
            assert isinstance(code, str)
            row = f"#pairing-requests .pairing-request[data-code='{code}']"
            text = await page.wait_for(f'document.querySelector("{row}")?.textContent')
            assert "Test tablet" in str(text)
            assert await page.evaluate("!document.getElementById('pairing-requests').hidden")
            await asyncio.to_thread(screenshot, display, artifacts / "desktop-window.png")
            await page.evaluate(f'document.querySelector("{row} [data-action=approve]").click()')
            result = await asyncio.wait_for(paired.get(), 15)
            assert isinstance(result, dict)
            assert result["ok"] is True
            assert result["token"]
            await page.wait_for("document.getElementById('pairing-requests').hidden")
        finally:
            await device.disconnect()

        # 3. The window never leaves the UI's origin: a navigation elsewhere is blocked
        #    before any request goes out, and the UI comes back.
        hits: list[str] = []

        async def record(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.Response(text="<script>pywebview.api.request('pair.list')</script>")

        trap = web.Application()
        trap.router.add_get("/{tail:.*}", record)
        runner = web.AppRunner(trap)
        await runner.setup()
        trap_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", trap_port).start()
        try:
            await page.evaluate(
                f"setTimeout(() => {{ location.href = 'http://127.0.0.1:{trap_port}/steal'; }}, 0)"
            )
            await asyncio.sleep(1.0)
            await page.wait_for(
                "location.port !== '' && location.search === '?desktop=1'"
                " && document.getElementById('conn')?.dataset.state === 'online'"
            )
            await page.wait_for(
                "[...document.querySelectorAll('.message.assistant .bubble')]"
                ".some(b => b.textContent.includes('desktop'))"
            )
        finally:
            await runner.cleanup()
        assert hits == []

        # 4. Closing the window (SIGTERM) drains the hub and remembers the window.
        app.proc.send_signal(signal.SIGTERM)
        assert await app.exit_status() == 0
    assert (artifacts / "desktop-window.png").stat().st_size > 10_000
    state = load_state(data_dir)
    assert (state.width, state.height) == (1000, 720)
    assert state.x is not None
    devices = json.loads((data_dir / "access.json").read_text())["devices"]
    assert [d["label"] for d in devices] == ["Test tablet"]


async def test_a_reply_streams_into_the_dom_then_an_agent_error_shows_a_banner(
    display: str, data_dir: Path
) -> None:
    save_state(data_dir, WindowState(width=900, height=650, x=30, y=40))
    chunks = ("Streaming ", "into ", "the ", "**window**", " now")
    async with FakeOpenAI() as provider:
        provider.enqueue(
            Reply(chunks=chunks, chunk_delay=0.15), Fault(401, "Incorrect API key provided")
        )
        env = {"OPENAI_BASE_URL": provider.base_url, "OPENAI_API_KEY": "sk-test-wrong"}
        async with desktop_window(display, data_dir, "--model", "openai:gpt-4o-mini", env=env) as (
            app,
            page,
        ):
            assert await page.evaluate("window.innerWidth") == 900
            assert await page.evaluate(OBSERVE_BUBBLE)
            await page.type_and_send("stream something")
            final = await page.wait_for(
                "document.querySelector('.message.assistant[data-final=\"true\"] .bubble')"
                "?.textContent.trim()"
            )
            assert final == "Streaming into the window now"
            seen = await page.evaluate("window.__seen")
            assert isinstance(seen, list)
            partial = [
                t for t in seen if isinstance(t, str) and t != "Streaming into the window now"
            ]
            # The bubble showed the reply growing before it was final.
            assert len(partial) >= 2
            assert all("Streaming into the window now".startswith(t) for t in partial)

            await page.type_and_send("does the key work?")
            banner = await page.wait_for(
                "!document.getElementById('banner').hidden"
                " && document.getElementById('banner-text').textContent"
            )
            assert "(auth)" in str(banner)
            assert await page.evaluate("document.getElementById('send').disabled") is False
            second = await asyncio.to_thread(
                subprocess.run,
                [str(AGENTHUB), "desktop", "--data-dir", str(data_dir)],
                env={**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert second.returncode == 1
            assert "another agenthub is already running" in second.stderr
            assert "Traceback" not in second.stderr
            stopped = await asyncio.to_thread(
                subprocess.run,
                [str(AGENTHUB), "ctl", "--data-dir", str(data_dir), "shutdown"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert stopped.returncode == 0, stopped.stderr
            assert await app.exit_status() == 0
    assert load_state(data_dir) == WindowState(width=900, height=650, x=30, y=40)


def shell_call(command: str, call_id: str, done: str) -> tuple[Reply, Reply]:
    arguments = json.dumps({"command": command})
    return (
        Reply(chunks=("Running it.",), tool_calls=(ToolCall("shell", arguments, call_id),)),
        Reply(chunks=(done,)),
    )


def ctl(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTHUB), "ctl", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# Resolves once the page has painted what the DOM holds now (two animation frames).
PAINTED = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
CARD = "document.querySelector('.approval[data-status=\"{status}\"] .approval-outcome')"


async def test_a_tool_call_waits_for_approval_in_the_window(
    display: str, data_dir: Path, artifacts: Path
) -> None:
    async with FakeOpenAI() as provider:
        provider.enqueue(
            *shell_call("echo '<i>ok</i>' > note.txt", "call_1", "Done in the window."),
            *shell_call("rm -rf ~", "call_2", "Not run."),
        )
        env = {
            "OPENAI_BASE_URL": provider.base_url,
            "OPENAI_API_KEY": "sk-test",
            "AGENTHUB_ENABLE_TOOLS": "shell",
        }
        async with desktop_window(display, data_dir, "--model", "openai:gpt-4o-mini", env=env) as (
            app,
            page,
        ):
            # 1. The card shows the exact call as text; Approve once runs it.
            await page.type_and_send("write a note")
            await page.wait_for(f"!!{CARD.format(status='pending')}")
            args = await page.evaluate(
                "document.querySelector('.approval .approval-args').textContent"
            )
            assert json.loads(str(args)) == {"command": "echo '<i>ok</i>' > note.txt"}
            assert await page.evaluate("document.querySelectorAll('.approval-args i').length") == 0
            await page.evaluate(PAINTED)
            await asyncio.to_thread(screenshot, display, artifacts / "desktop-approval.png")
            await page.evaluate(
                "document.querySelector('.approval [data-decision=\"approve\"]').click()"
            )
            outcome = await page.wait_for(f"{CARD.format(status='approved')}?.textContent")
            assert outcome == "Approved by you, here"
            await page.wait_for(
                "[...document.querySelectorAll('.message.assistant[data-final=\"true\"]')]"
                ".some(m => m.textContent.includes('Done in the window.'))"
            )
            assert (data_dir / "workspace" / "main" / "note.txt").read_text() == "<i>ok</i>\n"

            # 2. Decided with agenthub ctl: the window's card shows who denied it.
            await page.type_and_send("clean up")
            await page.wait_for(f"!!{CARD.format(status='pending')}")
            listed = await asyncio.to_thread(ctl, data_dir, "--json", "approvals", "list")
            assert listed.returncode == 0, listed.stderr
            (waiting,) = json.loads(listed.stdout)["result"]["approvals"]
            denied = await asyncio.to_thread(
                ctl, data_dir, "approvals", "deny", waiting["approvalId"]
            )
            assert denied.returncode == 0, denied.stderr
            outcome = await page.wait_for(f"{CARD.format(status='denied')}?.textContent")
            assert outcome == "Denied by agenthub ctl: not run"
            await page.wait_for(
                "[...document.querySelectorAll('.message.assistant[data-final=\"true\"]')]"
                ".some(m => m.textContent.includes('Not run.'))"
            )
            app.proc.send_signal(signal.SIGTERM)
            assert await app.exit_status() == 0


async def test_conversations_in_the_window_with_an_approval_in_a_new_chat(
    display: str, data_dir: Path, artifacts: Path
) -> None:
    async with FakeOpenAI() as provider:
        provider.enqueue(
            Reply(chunks=("Hello from main.",)),
            *shell_call("ls", "call_1", "Listed in the new chat."),
        )
        env = {
            "OPENAI_BASE_URL": provider.base_url,
            "OPENAI_API_KEY": "sk-test",
            "AGENTHUB_ENABLE_TOOLS": "shell",
        }
        async with desktop_window(display, data_dir, "--model", "openai:gpt-4o-mini", env=env) as (
            app,
            page,
        ):
            await page.type_and_send("hi")
            await page.wait_for(
                "document.querySelector('.message.assistant[data-final=\"true\"]')"
                "?.textContent.includes('Hello from main.')"
            )
            # A new chat from the sidebar; its run asks for approval there.
            await page.evaluate("document.getElementById('new-session').click()")
            key = await page.wait_for(
                "document.querySelector('.session[data-current=\"true\"]')?.dataset.key"
                " !== 'main' && document.querySelector('.session[data-current=\"true\"]')"
                "?.dataset.key"
            )
            assert isinstance(key, str) and key != "main"
            await page.wait_for("document.querySelectorAll('.message').length === 0")
            await page.type_and_send("list the files")
            await page.wait_for(f"!!{CARD.format(status='pending')}")
            await page.wait_for("document.querySelectorAll('.session').length === 2")
            await page.evaluate(PAINTED)
            await asyncio.to_thread(screenshot, display, artifacts / "desktop-sessions.png")
            await page.evaluate(
                "document.querySelector('.approval [data-decision=\"approve_session\"]').click()"
            )
            outcome = await page.wait_for(f"{CARD.format(status='approved')}?.textContent")
            assert outcome == "Approved for this session by you, here"
            await page.wait_for(
                "[...document.querySelectorAll('.message.assistant[data-final=\"true\"]')]"
                ".some(m => m.textContent.includes('Listed in the new chat.'))"
            )
            # Back to main: its own transcript, without the other session's card.
            await page.evaluate(
                "document.querySelector('.session[data-key=\"main\"] .session-open').click()"
            )
            await page.wait_for(
                "document.querySelector('.session[data-key=\"main\"]').dataset.current === 'true'"
                " && document.querySelectorAll('.message.assistant').length === 1"
            )
            assert await page.evaluate("document.querySelectorAll('.approval').length") == 0
            stored = await page.evaluate(
                f"pywebview.api.request('history', {{agentId: 'main', sessionKey: '{key}'}})"
                ".then(r => r.payload.entries.filter(e => e.type === 'message').map(e => e.text))"
            )
            assert stored == ["list the files", "Running it.", "Listed in the new chat."]
            app.proc.send_signal(signal.SIGTERM)
            assert await app.exit_status() == 0


# Loops of bridge calls, each call made as soon as the previous one answered.
CALLING = """(() => {
  window.__answered = 0;
  for (let i = 0; i < 32; i++) {
    (async () => {
      for (;;) {
        await pywebview.api.request('agents.list', {});
        window.__answered += 1;
      }
    })();
  }
  return true;
})()"""


async def test_the_window_exits_with_bridge_calls_in_flight(display: str, data_dir: Path) -> None:
    # The answer to a page's call goes back on a thread of pywebview's own that waits for the
    # page to take it: one left waiting by the closed window must not keep the process alive.
    async with desktop_window(display, data_dir) as (app, page):
        assert await page.evaluate(CALLING)
        await page.wait_for("window.__answered > 20")
        app.proc.send_signal(signal.SIGTERM)
        assert await app.exit_status() == 0
