"""The shared Prefect server's launcher and idle watchdog: ``python -m mcncl.idle HOST PORT``.

mcncl/ui.py starts it in a session of its own, so ``mcncl ui --stop`` stops the launcher and
the server together. It runs ``prefect server start`` and the warm worker that runs stage
commands without their import time (mcncl/warm.py), and checks once a second whether a
command holds the users lock. When none has for the state's ``idle_stop_s`` seconds (0: never),
it stops the server and removes the state, holding the start lock meanwhile so that no command
adopts a server that is going away. It also ends when the server exits or the state names
another launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mcncl import ui, warm

POLL_S = 1.0


def _serve(host: str, port: str) -> subprocess.Popen:
    prefect = Path(sys.executable).with_name("prefect")
    return subprocess.Popen([str(prefect), "server", "start", "--host", host, "--port", port,
                             "--analytics-off"], stdin=subprocess.DEVNULL)


def _warm(host: str, port: str) -> subprocess.Popen | None:
    """The warm worker (mcncl/warm.py) beside the server, unless ``MCNCL_WARM=0``."""
    if os.environ.get(warm.WARM_ENV) == "0":
        return None
    # run from the Prefect home, so that it imports mcncl from where the installed `mcncl`
    # command does, not from the folder the first command happened to run in
    return subprocess.Popen([sys.executable, "-m", "mcncl.warm", str(ui.path("sock")),
                             f"http://{host}:{port}/api"], stdin=subprocess.DEVNULL,
                            cwd=ui.prefect_home())


def _idle_for(last_seen: float) -> float:
    """Seconds since a command last used the server (seen holding the lock, or starting)."""
    try:
        touched = ui.path("users").stat().st_mtime
    except OSError:
        touched = 0.0
    return time.time() - max(last_seen, touched)


def watch(server: subprocess.Popen, pid: int, tick: Callable[[], None] = lambda: None) -> None:
    """Return once the server exited, the state names another launcher, or it sat idle;
    call ``tick`` once a second meanwhile."""
    last_seen = time.time()
    while server.poll() is None:
        time.sleep(POLL_S)
        tick()
        with ui.locked():
            state = ui.read_state()
            if state is None or state["pid"] != pid:
                return
            if ui.in_use():
                last_seen = time.time()
            elif state.get("idle_stop_s") and _idle_for(last_seen) >= state["idle_stop_s"]:
                ui.path("json").unlink(missing_ok=True)
                _end(server)
                return


def _end(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main(host: str, port: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = _serve(host, port)
    worker = _warm(host, port)

    def keep_warm() -> None:  # a worker that found its packages changed is started anew
        nonlocal worker
        if worker is not None and worker.poll() == warm.STALE:
            worker = _warm(host, port)

    try:
        watch(server, os.getpid(), keep_warm)
    finally:
        for process in (worker, server):
            if process is not None:
                _end(process)


if __name__ == "__main__":
    main(*sys.argv[1:3])
