"""The Prefect server every ``mcncl`` command reports to: one, in the background, shared.

A command that runs a flow (each DVC stage, ``mcncl pipeline``) calls :func:`connect` before
Prefect is imported. Unless ``PREFECT_API_URL`` is set, it adopts the server running for this
Prefect home or starts one (announced in one line), so a ``dvc repro`` pays the server's
start-up once instead of once per stage, and every run lands in one database the UI shows.
While a command runs it holds a shared lock on ``mcncl-ui.users``; the server's watchdog
(``mcncl/idle.py``) stops it once no command has held that lock for ``MCNCL_IDLE_STOP_S``
seconds (default 300). ``mcncl ui`` starts the same server, or keeps the running one, with no
idle stop; ``mcncl ui --stop`` stops it. ``MCNCL_EPHEMERAL_SERVER=1`` starts nothing: a
command then uses a running server or Prefect's own temporary one (isolation for tests).

Files in ``$PREFECT_HOME``: ``mcncl-ui.json`` (the launcher's pid, url, api_url, idle_stop_s),
``mcncl-ui.lock`` (held while a server is started, adopted or stopped), ``mcncl-ui.users``
(the commands' shared lock; its mtime is the last use) and ``mcncl-ui.log``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from extractors import atomic

IDLE_STOP_ENV = "MCNCL_IDLE_STOP_S"
EPHEMERAL_ENV = "MCNCL_EPHEMERAL_SERVER"
DEFAULT_IDLE_STOP_S = 300.0
_lease: IO[str] | None = None  # this process's shared lock on the users file, until exit
_pending: dict | None = None  # the server connect() chose, until ready() has seen it answer
_started_pid: int | None = None  # the launcher this process started, if it did


class UiError(RuntimeError):
    """The server could not be started or stopped."""


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def path(kind: str) -> Path:
    """``$PREFECT_HOME/mcncl-ui.<kind>``: json (state), lock, users, log, or the warm
    worker's sock and warm (its state; mcncl/warm.py)."""
    return prefect_home() / f"mcncl-ui.{kind}"


def healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def read_state() -> dict | None:
    try:
        return json.loads(path("json").read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether launcher ``pid`` still runs (a child of this process that ended is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    if Path("/proc/self").is_dir():  # where it can, check that the pid was not reused since
        try:
            return b"mcncl.idle" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> dict | None:
    """The shared server, as {pid, url, api_url, idle_stop_s}, when it answers."""
    state = read_state()
    return state if state is not None and healthy(state["api_url"]) else None


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold ``mcncl-ui.lock``: one process at a time starts, adopts or stops the server."""
    prefect_home().mkdir(parents=True, exist_ok=True)
    with path("lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def in_use() -> bool:
    """Whether a command holds its shared lock on the users file (so uses the server)."""
    with path("users").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def idle_stop_s() -> float:
    """``MCNCL_IDLE_STOP_S``: seconds unused before a started server stops (0: never)."""
    text = os.environ.get(IDLE_STOP_ENV, str(DEFAULT_IDLE_STOP_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UiError(f"{IDLE_STOP_ENV}={text!r} is not a number of seconds; set it to e.g. "
                      f"{DEFAULT_IDLE_STOP_S:.0f}, or 0 to keep the server until "
                      "`mcncl ui --stop`.")
    return seconds


def api_url_chosen() -> bool:
    """Whether ``PREFECT_API_URL`` is set, in the environment or in the active Prefect profile
    (``prefect config set PREFECT_API_URL=...``), read without importing Prefect."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml"))
    try:
        import tomllib

        data = tomllib.loads(profiles.expanduser().read_text())
    except (ImportError, OSError, ValueError):  # no tomllib before Python 3.11
        return False
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "")
    return bool(data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def connect(echo: Callable[[str], None]) -> None:
    """Send this process's flow runs to the shared server, starting one when none runs.

    Call it before Prefect is imported; :func:`ready` then waits until the server answers.
    It does nothing when the user chose a server (:func:`api_url_chosen`); with
    ``MCNCL_EPHEMERAL_SERVER=1`` it uses a running server but starts none.
    """
    global _lease, _pending, _started_pid
    if api_url_chosen():
        return
    seconds = idle_stop_s()
    with locked():
        state = read_state()
        if state is None or not alive(state["pid"]):
            if os.environ.get(EPHEMERAL_ENV) == "1":
                return
            state = _spawn("127.0.0.1", _free_port(), seconds)
            _started_pid = state["pid"]
            stops = f"stops after {seconds:.0f} s unused" if seconds else "runs until stopped"
            echo(f"Prefect server starting in the background: {state['url']} ({stops}; "
                 f"`mcncl ui --stop` stops it now).")
        _lease = path("users").open("a")
        fcntl.flock(_lease, fcntl.LOCK_SH)
        os.utime(path("users"))
    os.environ["PREFECT_API_URL"] = state["api_url"]
    if "prefect.context" in sys.modules:  # imported already (the warm worker's children)
        sys.modules["prefect.context"].refresh_global_settings_context()
    _pending = state


def ready(timeout_s: float = 180.0) -> None:
    """Wait until the server :func:`connect` chose answers (at once when it already runs)."""
    global _pending
    if _pending is not None:
        _wait(_pending, timeout_s)
        _pending = None


def start(host: str = "127.0.0.1", port: int = 4200, timeout_s: float = 180.0) -> dict:
    """``mcncl ui``: the shared server without an idle stop (the running one, or a new one)."""
    with locked():
        state = read_state()
        if state is not None and alive(state["pid"]):
            state["idle_stop_s"] = 0
            atomic.write_text(json.dumps(state), path("json"))
        else:
            url = f"http://{host}:{port}"
            if healthy(f"{url}/api"):
                raise UiError(f"another server already answers on {url}; stop it or use --port.")
            state = _spawn(host, port, 0)
    try:
        _wait(state, timeout_s)
    except UiError:
        stop()
        raise
    return state


def stop() -> bool:
    """Stop the shared server (``mcncl ui --stop``); False when none was running."""
    with locked():
        state = read_state()
        if state is None:
            return False
        _stop(state)
    return True


def stop_if_started() -> None:
    """Stop the server this process started, unless another command uses it or ``mcncl ui``
    kept it (the end of ``mcncl pipeline``, also on failure and Ctrl-C)."""
    global _lease
    if _started_pid is None:
        return
    if _lease is not None:
        _lease.close()
        _lease = None
    with locked():
        state = read_state()
        if (state is not None and state["pid"] == _started_pid and state.get("idle_stop_s")
                and not in_use()):
            _stop(state)


def _spawn(host: str, port: int, idle_s: float) -> dict:
    """Start the launcher (``python -m mcncl.idle``) in a session of its own; record it."""
    url = f"http://{host}:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with path("log").open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcncl.idle", host, str(port)], stdout=sink,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    state = {"pid": process.pid, "url": url, "api_url": f"{url}/api", "idle_stop_s": idle_s}
    atomic.write_text(json.dumps(state), path("json"))
    return state


def _wait(state: dict, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(state["api_url"]):
        if not alive(state["pid"]) or time.monotonic() > deadline:
            raise UiError(f"the Prefect server did not come up on {state['url']} within "
                          f"{timeout_s:.0f} s; see {path('log')} for why, then run "
                          "`mcncl ui --stop` and try again.")
        time.sleep(0.2)


def _stop(state: dict) -> None:
    """Stop the launcher (it stops its server first; else its whole group) and forget it."""
    pid = state["pid"]
    with contextlib.suppress(ProcessLookupError):
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
    path("json").unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
