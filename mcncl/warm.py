"""The ``mcncl`` entry point, and a warm process that runs stage commands in seconds.

Most of a stage process's time goes to importing Prefect, torch and the extractor libraries
(bench/README.md, issue 15). While the shared Prefect server runs, its launcher
(``mcncl/idle.py``) also keeps a worker, ``python -m mcncl.warm SOCKET API_URL``, that has
imported those libraries (never the project's own modules, so an edited module is read fresh)
and forks a child per command. :func:`main` hands the worker the command's arguments, working
folder, environment, module path and its stdin/stdout/stderr (file descriptors over a Unix
socket); the child runs the command as a fresh process would and sends back its exit status,
which :func:`main` exits with. Ctrl-C and SIGTERM (DVC stopping a stage) are passed on to it.

The worker is used only when a fresh process would import the same things: the same Python,
no package installed or removed since the worker started (when one is, or this module
changes, the worker ends and the launcher starts a new one), and the same values of the
environment variables the preloaded libraries read at import (:data:`SETTINGS`). Otherwise,
with ``MCNCL_WARM=0``, for commands that are not stages, or when the hand-over fails before
the child starts, the command runs in its own process as before.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

from mcncl.offline import OFFLINE_ENV, go_offline

WARM_ENV = "MCNCL_WARM"
COMMANDS = {"manifest", "extract", "finetune", "tensors", "train", "evaluate", "predict",
            "report", "demo", "corpus"}  # the stage commands; `ui`, `query`, `pipeline` never
SETTINGS = ("PREFECT_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "TORCH", "PYTORCH_", "CUDA_",
            "HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS", "MPL", "PYTHON", "LD_", "VIRTUAL_ENV",
            "DO_NOT_TRACK")  # environment variables read when those libraries are imported
PRELOAD = ("numpy", "pyarrow.parquet", "pyarrow.compute", "yaml", "typer", "rich.progress",
           "prefect", "prefect.flows", "prefect.artifacts", "prefect.task_runners",
           "prefect.futures", "torch", "safetensors.torch", "matplotlib.pyplot", "duckdb",
           "opensmile", "mediapipe", "sentence_transformers")
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~107 bytes
STALE = 75  # the worker's exit status when packages changed under it: the launcher starts anew


def state_path(home: Path) -> Path:
    return home / "mcncl-ui.warm"


def fingerprint(api_url: str) -> str:
    """What must match between the worker and a command for the worker to run it."""
    env = {k: v for k, v in {**OFFLINE_ENV, **os.environ}.items() if k.startswith(SETTINGS)}
    env["PREFECT_API_URL"] = api_url
    text = json.dumps([sys.executable, installed(), sorted(env.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def installed() -> list[tuple[str, int]]:
    """The site-packages folders and this module, with their mtimes: a package installed or
    removed, or an edit here, moves one."""
    site = sorted(p for p in sys.path if p.endswith("-packages") and os.path.isdir(p))
    return [(p, os.stat(p).st_mtime_ns if os.path.exists(p) else -1) for p in [*site, __file__]]


# -- the command's side --------------------------------------------------------------------

def main() -> None:
    """``mcncl``: run the command in the warm worker when one can, else in this process."""
    code = delegate(sys.argv[1:])
    if code is None:
        from mcncl.cli import app

        app(prog_name="mcncl")
    else:
        sys.stdout.flush()
        os._exit(code)


def delegate(argv: list[str]) -> int | None:
    """The command's exit status as the worker's child ran it; None when it did not run."""
    state = _usable_worker(argv)
    if state is None:
        return None
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect(state["socket"])
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                              "path": sys.path}).encode()
        socket.send_fds(client, [len(request).to_bytes(8, "big") + request], [0, 1, 2])
        replies = client.makefile("r")
        pid = int(replies.readline().split()[1])  # "pid N": the child runs the command
    except (OSError, ValueError, IndexError):
        client.close()
        return None  # nothing started: run it here
    passed: list[int] = []

    def pass_on(sig: int, _frame: object) -> None:
        passed.append(sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    forward = {sig: signal.signal(sig, pass_on)
               for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        line = replies.readline()  # "exit N"
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)
    if line.startswith("exit "):
        return int(line.split()[1])
    if passed:  # the signal ended the child: end the same way, as a fresh process would have
        signal.signal(passed[-1], signal.SIG_DFL)
        os.kill(os.getpid(), passed[-1])
    print(f"mcncl: the warm worker's process {pid} ended without an exit status (killed?); "
          "run the command again.", file=sys.stderr)
    return 1


def _usable_worker(argv: list[str]) -> dict | None:
    if os.environ.get(WARM_ENV) == "0" or not argv or argv[0] not in COMMANDS:
        return None
    if any(a in ("--help", "-h") for a in argv):
        return None
    # ui.prefect_home(), without importing mcncl.ui (it imports pyarrow: too slow here)
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    try:
        state = json.loads(state_path(home).read_text())
    except (OSError, ValueError):
        return None
    if os.environ.get("PREFECT_API_URL", state["api_url"]) != state["api_url"]:
        return None  # this command reports to another server
    return state if state["fingerprint"] == fingerprint(state["api_url"]) else None


# -- the worker's side ---------------------------------------------------------------------

def serve(sock_path: str, api_url: str) -> None:
    """Import the libraries, then fork a child per request until the launcher stops us."""
    home = Path(sock_path).parent
    if len(sock_path) > MAX_SOCKET_PATH:
        print(f"warm worker: {sock_path} is too long for a socket; commands run cold.")
        return
    os.environ["PREFECT_API_URL"] = api_url
    go_offline()
    state = {"pid": os.getpid(), "socket": sock_path, "api_url": api_url,
             "fingerprint": fingerprint(api_url)}  # before the imports change the environment
    packages = installed()
    _wait_for(api_url)  # a server starting takes a core: import once it is up, not meanwhile
    started = time.monotonic()
    environ = dict(os.environ)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _warm_up()
    added = {k: v for k, v in os.environ.items() if k not in environ}  # KMP_*, LD_LIBRARY_PATH
    if threading.active_count() > 1:  # a fork would copy their locks in whatever state
        print(f"warm worker: the imports started threads {threading.enumerate()}; commands "
              "run cold.", flush=True)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the launcher stops us so
    try:
        Path(sock_path).unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(sock_path)
        listener.listen(16)
        tmp = state_path(home).with_suffix(".warm.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(state_path(home))
        print(f"warm worker: ready after {time.monotonic() - started:.1f} s of imports",
              flush=True)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        while True:
            if selector.select(timeout=1.0):
                conn, _ = listener.accept()
                _start_child(conn, listener, added)
            _reap()
            if installed() != packages:
                print("warm worker: packages were installed or removed (or mcncl/warm.py "
                      "changed); starting anew", flush=True)
                sys.exit(STALE)
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_path(home).read_text())["pid"] == os.getpid():
                state_path(home).unlink()
        Path(sock_path).unlink(missing_ok=True)


def _warm_up() -> None:
    """Pay once here what a library pays on first use in every process: openSMILE's first
    ``Smile`` reads every installed package's metadata (audobject's class keys, ~1 s)."""
    with contextlib.suppress(Exception):
        import opensmile

        opensmile.Smile()


def _wait_for(api_url: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (contextlib.suppress(OSError),
              urllib.request.urlopen(f"{api_url}/health", timeout=1) as response):
            if response.status == 200:
                return
        time.sleep(0.5)


def _start_child(conn: socket.socket, listener: socket.socket, added: dict) -> None:
    try:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        size = int.from_bytes(data[:8], "big")
        data = data[8:]
        while len(data) < size:
            more = conn.recv(1 << 16)
            if not more:
                raise OSError("the command hung up")
            data += more
        request = json.loads(data)
    except (OSError, ValueError) as exc:
        print(f"warm worker: a request failed: {exc}", flush=True)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        _run_child(conn, fds, {**request, "env": {**added, **request["env"]}})  # no return
    for fd in fds:
        os.close(fd)
    conn.close()
    print(f"warm worker: pid {pid} runs `mcncl {' '.join(request['argv'])}` in "
          f"{request['cwd']}", flush=True)


def _run_child(conn: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the command's process, run it, report its exit status."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        conn.sendall(f"pid {os.getpid()}\n".encode())
        threading.Thread(target=_end_with, args=(conn,), daemon=True).start()
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        # as a fresh process has it: line-buffered to a terminal, block-buffered to a pipe
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False),
                                      encoding=sys.stdout.encoding, line_buffering=os.isatty(1))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv = ["mcncl", *request["argv"]]
        from mcncl import cli

        atexit.unregister(cli.exit_without_finalizing)  # this function ends the process
        try:
            cli.app(prog_name="mcncl")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except KeyboardInterrupt:
            code = 130
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


def _end_with(conn: socket.socket) -> None:
    """End the child when the command's process ends first: killed (SIGKILL cannot be passed
    on), so its work must stop as a fresh process's would."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    os.kill(os.getpid(), signal.SIGKILL)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


if __name__ == "__main__":
    serve(*sys.argv[1:3])
