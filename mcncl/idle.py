"""The shared Prefect server's launcher and idle watchdog: ``python -P -m mcncl.idle PORT``.

mcncl/ui.py starts it in a session of its own, from its state folder, so ``mcncl ui --stop``
stops the launcher and the server together. It runs ``prefect server start`` on 127.0.0.1,
with the UI told to call the API on that same port, and checks once a second whether a
command holds the users lock. When none has for the state's ``idle_stop_s`` seconds (0:
never), it stops the server and removes the state, holding the start lock meanwhile so that
no command adopts a server that is going away. It also ends when the server exits or the
state names another launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mcncl import ui

POLL_S = 1.0


def _serve(port: str) -> subprocess.Popen:
    prefect = Path(sys.executable).with_name("prefect")
    # the UI asks /ui-settings where the API is: without this it says port 4200 (issue 27)
    env = {**os.environ, "PREFECT_UI_API_URL": f"http://{ui.HOST}:{port}/api",
           "PREFECT_SERVER_API_HOST": ui.HOST, "PREFECT_SERVER_API_PORT": port}
    return subprocess.Popen([str(prefect), "server", "start", "--host", ui.HOST, "--port", port,
                             "--analytics-off"], stdin=subprocess.DEVNULL, env=env)


def _idle_for(last_seen: float) -> float:
    """Seconds since a command last used the server (seen holding the lock, or starting)."""
    try:
        touched = ui.path("users").stat().st_mtime
    except OSError:
        touched = 0.0
    return time.time() - max(last_seen, touched)


def watch(server: subprocess.Popen, pid: int) -> None:
    """Return once the server exited, the state names another launcher, or it sat idle."""
    last_seen = time.time()
    while server.poll() is None:
        time.sleep(POLL_S)
        with ui.locked():
            state = ui.read_state()
            if state is None or state["pid"] != pid:
                return
            if ui.in_use():
                last_seen = time.time()
            elif state["idle_stop_s"] and _idle_for(last_seen) >= state["idle_stop_s"]:
                ui.path("state").unlink(missing_ok=True)
                return


def main(port: str) -> None:
    if not port.isdigit():
        raise SystemExit(f"usage: python -m mcncl.idle PORT (got {port!r})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = _serve(port)
    try:
        watch(server, os.getpid())
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main(*sys.argv[1:2])
