"""Start-up time of `agenthub serve` (process start to /healthz 200), side by side with
`python -c pass` and a bare aiohttp app that imports the same third-party packages first.

Target: serve ready within 1.5x of the bare aiohttp start (with its dependency imports).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from bench.common import report

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
PY = sys.executable

DEPENDENCIES = textwrap.dedent(
    """
    import sys, sysconfig
    import app.cli, app.compose, gateway.server, gateway.hub_link
    site = sysconfig.get_paths()["purelib"]
    names = sorted({
        name.split(".")[0] for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and str(module.__file__).startswith(site)
        and not name.startswith("_")
    })
    print(",".join(names))
    """
)

BARE_APP = textwrap.dedent(
    """
    import importlib, sys
    for name in sys.argv[2].split(","):
        importlib.import_module(name)
    from aiohttp import web
    async def healthz(request):
        return web.json_response({"status": "ok"})
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def time_until_healthy(command: list[str], port: int, env: dict[str, str]) -> float:
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(10)


def time_pass() -> float:
    start = time.perf_counter()
    subprocess.run([PY, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    deps = subprocess.run(
        [PY, "-c", DEPENDENCIES], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    pass_times, bare_times, serve_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(RUNS):
            pass_times.append(time_pass())
            port = free_port()
            bare_times.append(time_until_healthy([PY, "-c", BARE_APP, str(port), deps], port, env))
            port = free_port()
            serve_env = {
                **env,
                "AGENTHUB_DATA_DIR": f"{tmp}/data-{run}",
                "AGENTHUB_PORT": str(port),
                "AGENTHUB_MODEL": "echo",
                "AGENTHUB_LOG_LEVEL": "warning",
            }
            serve_env.pop("TELEGRAM_BOT_TOKEN", None)
            serve_times.append(
                time_until_healthy([str(Path(PY).parent / "agenthub"), "serve"], port, serve_env)
            )
    python_pass = statistics.median(pass_times)
    bare = statistics.median(bare_times)
    serve = statistics.median(serve_times)
    print(f"third-party packages imported by serve: {deps}")
    print(f"python -c pass: {python_pass * 1000:.0f} ms (median of {RUNS})")
    report(
        "serve start-up vs bare aiohttp + same imports",
        baseline=bare * 1000,
        candidate=serve * 1000,
        unit="ms",
        target=1.5,
        higher_is_better=False,
    )


if __name__ == "__main__":
    main()
