"""``mcncl ui``: the Prefect server on loopback, in the background, and its use by every stage.

While a server started here is up, every ``mcncl`` command (so every DVC stage) sends its
flow runs to it instead of a throwaway ephemeral server: they show in the UI, and no stage
pays the ephemeral server's start-up. The server's pid and address live in
``$PREFECT_HOME/mcncl-ui.json``; its log in ``$PREFECT_HOME/mcncl-ui.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from extractors import atomic


class UiError(RuntimeError):
    """The server could not be started or stopped."""


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def _state_file() -> Path:
    return prefect_home() / "mcncl-ui.json"


def healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def running() -> dict | None:
    """The server that ``mcncl ui`` started, as {pid, url, api_url}, when it still answers."""
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if healthy(state["api_url"]) else None


def start(host: str = "127.0.0.1", port: int = 4200, timeout_s: float = 180.0) -> dict:
    """Start ``prefect server start`` detached and wait until its API answers."""
    if (state := running()) is not None:
        return state
    url = f"http://{host}:{port}"
    if healthy(f"{url}/api"):
        raise UiError(f"another server already answers on {url}; stop it or use --port.")
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "mcncl-ui.log"
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", host, "--port", str(port),
             "--analytics-off"], stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    state = {"pid": process.pid, "url": url, "api_url": f"{url}/api"}
    deadline = time.monotonic() + timeout_s
    while not healthy(state["api_url"]):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            raise UiError(f"the Prefect server did not come up on {url} within {timeout_s:.0f} s"
                          f"; see {log} for why.")
        time.sleep(0.5)
    atomic.write_text(json.dumps(state), _state_file())
    return state


def stop() -> bool:
    """Stop the server ``mcncl ui`` started; False when none was running."""
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return False
    _terminate(state["pid"])
    _state_file().unlink(missing_ok=True)
    return True


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def use_running_server() -> str | None:
    """Point Prefect at the ``mcncl ui`` server when it is up and the user chose no other."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    state = running()
    if state is None:
        return None
    os.environ["PREFECT_API_URL"] = state["api_url"]
    return state["url"]
