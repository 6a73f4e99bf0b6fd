"""The Prefect server every ``mcncl`` command reports to: one per user, in the background.

**Start.** A command that runs a flow (each DVC stage, ``mcncl pipeline``) calls
:func:`connect` before Prefect is imported. Unless ``PREFECT_API_URL`` is set (environment or
active Prefect profile), it adopts the running server or starts one, announced in one line,
so a ``dvc repro`` pays the server's start-up once and every run lands in one database. The
launcher is this module run as ``python -P -m mcncl.server PORT`` (:func:`main`), in a
session of its own, from the state folder (so neither the caller's folder nor anything
planted in it is on its import path): it runs ``prefect server start`` on 127.0.0.1 only,
with the UI told to call the API on that same port. ``mcncl ui`` starts the same server, or
keeps the running one, with no idle stop.

**Idle stop.** While a command runs it holds a shared lock on ``users.lock``; the launcher
checks once a second (:func:`watch`) and stops the server once no command has held it for
``MCNCL_IDLE_STOP_S`` seconds (default 300; 0: never, as after ``mcncl ui``). It removes the
state while holding the start lock, so that no command adopts a server that is going away.
It also ends when the server exits or the state names another launcher.

**State files**, all in ``$PREFECT_HOME/mcncl/`` (default ``~/.prefect/mcncl/``), a folder
created with mode 0700 and refused when another user owns it or others may use it:
``server.json`` (the launcher's pid, port and idle stop), ``start.lock`` (held while a server
is started, adopted or stopped), ``users.lock`` (its mtime: the last use) and ``server.log``.
What is read from there is checked before it is used: the pid must be a running
``mcncl.server`` launcher of this user, and (where ``/proc`` tells) the port's listening
socket must be this user's; anything else is treated as no server.

**Stop.** ``mcncl ui --stop`` (or the idle stop) ends the launcher, which stops the server
(its session is killed when it does not end in time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from vocabulary import atomic

IDLE_STOP_ENV = "MCNCL_IDLE_STOP_S"
DEFAULT_IDLE_STOP_S = 300.0
HOST = "127.0.0.1"  # the only address the server listens on
POLL_S = 1.0  # how often the launcher looks for commands using the server
FILES = {"state": "server.json", "lock": "start.lock", "users": "users.lock",
         "log": "server.log"}
_lease: IO[str] | None = None  # this process's shared lock on the users file, until exit
_pending: dict | None = None  # the server connect() chose, until ready() has seen it answer
_started_pid: int | None = None  # the launcher this process started, if it did


class ServerError(RuntimeError):
    """The server could not be started or stopped, or its state folder is not safe."""


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def state_dir() -> Path:
    """``$PREFECT_HOME/mcncl``, created 0700; refused unless this user alone can use it."""
    folder = prefect_home() / "mcncl"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        raise ServerError(f"{folder}: the server's state folder must be a folder of your own "
                          f"that nobody else can open (mode 0700); run `chmod 700 {folder}` if "
                          "it is yours, or remove it.")
    return folder


def path(kind: str) -> Path:
    """A state file: ``state``, ``lock``, ``users`` or ``log`` (see the module docstring)."""
    return state_dir() / FILES[kind]


def url_of(state: dict) -> str:
    return f"http://{HOST}:{state['port']}"


def api_url_of(state: dict) -> str:
    return f"{url_of(state)}/api"


def healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def read_state() -> dict | None:
    """The launcher recorded in ``server.json``, when it is well formed and ours and alive."""
    try:
        state = json.loads(path("state").read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(state, dict) and _is_int(state.get("pid")) and state["pid"] > 1
            and _is_int(state.get("port")) and 0 < state["port"] < 65536
            and isinstance(state.get("idle_stop_s"), int | float)
            and not isinstance(state["idle_stop_s"], bool) and state["idle_stop_s"] >= 0):
        return None
    return state if alive(state["pid"]) else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running launcher (``mcncl.server``) of this user; a child of this
    process that ended is reaped here."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").is_dir():
        try:
            return (proc.stat().st_uid == os.getuid()
                    and b"mcncl.server" in (proc / "cmdline").read_bytes().split(b"\0"))
        except OSError:
            return False
    try:
        os.kill(pid, 0)  # without /proc: a process we may signal is ours (or we are root)
    except OSError:
        return False
    return True


def listener_is_ours(port: int) -> bool:
    """Whether the socket listening on 127.0.0.1:``port`` belongs to this user (from
    ``/proc/net/tcp``; True where that file does not exist)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    want = f"0100007F:{port:04X}"
    for line in lines:
        fields = line.split()
        if fields[1] == want and fields[3] == "0A":  # LISTEN
            return int(fields[7]) == os.getuid()
    return False


def running() -> dict | None:
    """The shared server, as {pid, port, idle_stop_s}, when it answers and is ours."""
    state = read_state()
    if state is None or not healthy(api_url_of(state)):
        return None
    return state if listener_is_ours(state["port"]) else None


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold ``start.lock``: one process at a time starts, adopts or stops the server."""
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
        raise ServerError(f"{IDLE_STOP_ENV}={text!r} is not a number of seconds; set it to "
                          f"e.g. {DEFAULT_IDLE_STOP_S:.0f}, or 0 to keep the server until "
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
    It does nothing when the user chose a server (:func:`api_url_chosen`).
    """
    global _lease, _pending, _started_pid
    if api_url_chosen():
        return
    seconds = idle_stop_s()
    with locked():
        state = read_state()
        if state is None:
            state = _spawn(_free_port(), seconds)
            _started_pid = state["pid"]
            stops = f"stops after {seconds:.0f} s unused" if seconds else "runs until stopped"
            echo(f"Prefect server starting in the background: {url_of(state)} ({stops}; "
                 f"`mcncl ui --stop` stops it now).")
        _lease = path("users").open("a")
        fcntl.flock(_lease, fcntl.LOCK_SH)
        os.utime(path("users"))
    os.environ["PREFECT_API_URL"] = api_url_of(state)
    _pending = state


def ready(timeout_s: float = 180.0) -> None:
    """Wait until the server :func:`connect` chose answers (at once when it already runs)."""
    global _pending
    if _pending is not None:
        _wait(_pending, timeout_s)
        _pending = None


def start(port: int = 4200, timeout_s: float = 180.0) -> dict:
    """``mcncl ui``: the shared server without an idle stop (the running one, or a new one)."""
    with locked():
        state = read_state()
        if state is not None:
            state["idle_stop_s"] = 0
            atomic.write_text(json.dumps(state), path("state"))
        else:
            if healthy(f"http://{HOST}:{port}/api"):
                raise ServerError(f"another server already answers on http://{HOST}:{port}; "
                                  "stop it or use --port.")
            state = _spawn(port, 0)
    try:
        _wait(state, timeout_s)
    except ServerError:
        stop()
        raise
    return state


def stop() -> bool:
    """Stop the shared server (``mcncl ui --stop``); False when none was running."""
    with locked():
        state = read_state()
        path("state").unlink(missing_ok=True)
        if state is None:
            return False
        _stop(state["pid"])
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
        if (state is not None and state["pid"] == _started_pid and state["idle_stop_s"]
                and not in_use()):
            path("state").unlink(missing_ok=True)
            _stop(state["pid"])


def _spawn(port: int, idle_s: float) -> dict:
    """Start the launcher in a session of its own, from the state folder, without the
    current folder on its import path (``-P``); record it."""
    folder = state_dir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []  # else cwd (ours, 0700) is first
    with path("log").open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, *safe_path, "-m", "mcncl.server", str(port)], stdout=sink,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=folder,
            start_new_session=True)
    state = {"pid": process.pid, "port": port, "idle_stop_s": idle_s}
    atomic.write_text(json.dumps(state), path("state"))
    return state


def _wait(state: dict, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(api_url_of(state)):
        if not alive(state["pid"]) or time.monotonic() > deadline:
            raise ServerError(f"the Prefect server did not come up on {url_of(state)} within "
                              f"{timeout_s:.0f} s; see {path('log')} for why, then run "
                              "`mcncl ui --stop` and try again.")
        time.sleep(0.2)
    if not listener_is_ours(state["port"]):
        raise ServerError(f"another user's program answers on {url_of(state)}; run `mcncl ui "
                          "--stop`, then `mcncl ui --port` with another port.")


def _stop(pid: int) -> None:
    """Stop launcher ``pid`` (it stops its server first; else its whole group)."""
    with contextlib.suppress(ProcessLookupError):
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _serve(port: str) -> subprocess.Popen:
    prefect = Path(sys.executable).with_name("prefect")
    # the UI asks /ui-settings where the API is: without this it says port 4200 (issue 27)
    env = {**os.environ, "PREFECT_UI_API_URL": f"http://{HOST}:{port}/api",
           "PREFECT_SERVER_API_HOST": HOST, "PREFECT_SERVER_API_PORT": port}
    return subprocess.Popen([str(prefect), "server", "start", "--host", HOST, "--port", port,
                             "--analytics-off"], stdin=subprocess.DEVNULL, env=env)


def _idle_for(last_seen: float) -> float:
    """Seconds since a command last used the server (seen holding the lock, or starting)."""
    try:
        touched = path("users").stat().st_mtime
    except OSError:
        touched = 0.0
    return time.time() - max(last_seen, touched)


def watch(server: subprocess.Popen, pid: int) -> None:
    """Return once the server exited, the state names another launcher, or it sat idle."""
    last_seen = time.time()
    while server.poll() is None:
        time.sleep(POLL_S)
        with locked():
            state = read_state()
            if state is None or state["pid"] != pid:
                return
            if in_use():
                last_seen = time.time()
            elif state["idle_stop_s"] and _idle_for(last_seen) >= state["idle_stop_s"]:
                path("state").unlink(missing_ok=True)
                return


def main(port: str) -> None:
    """The launcher, ``python -P -m mcncl.server PORT``: the server on ``PORT`` until
    :func:`watch` returns or the launcher is stopped (SIGTERM), then the server stops too."""
    if not port.isdigit():
        raise SystemExit(f"usage: python -m mcncl.server PORT (got {port!r})")
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
