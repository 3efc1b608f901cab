"""Start and stop a gunicorn server for a bench, leaving no process behind.

gunicorn runs in its own session (process group), so stopping it reaches the master and its
workers even if the master is wedged: SIGTERM to the master, wait, then SIGKILL to the group.
Every started server is also registered with ``atexit``; ``install_signal_handlers`` turns
SIGTERM/SIGHUP (what ``scripts/with-postgres`` forwards) into a normal exit, so the
``finally`` blocks and the ``atexit`` hook run.

On Linux, the bench also asks the kernel to send it SIGTERM when its parent dies (``make
bench`` runs it under ``bash -c``, which does not pass a SIGTERM on), and gunicorn's master
gets SIGTERM if the bench itself dies, even by SIGKILL: no server outlives the bench.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

_running: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of the workers
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # The master may be gone while a worker lingers: clear the whole group we created.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if proc in _running:
        _running.remove(proc)


@atexit.register
def stop_all() -> None:
    for proc in list(_running):
        _stop(proc)


def install_signal_handlers() -> None:
    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the parent was already gone before we asked
        raise SystemExit(128 + signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent exits."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@contextlib.contextmanager
def gunicorn(
    app: str,
    *,
    env: Mapping[str, str],
    workers: int,
    log_path: Path,
    ready_path: str = "/ping/",
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``gunicorn app`` on a free loopback port; yield its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--backlog",
        "2048",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        "--chdir",
        str(REPO),
    ]
    child_env = {**os.environ, **env}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
    )
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    _running.append(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base + ready_path, workers, startup_timeout, log_path)
        yield base
    finally:
        _stop(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, workers: int, timeout: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    answered = 0
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with status {proc.returncode} during startup; "
                    f"its log:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            try:
                if client.get(url).status_code == 200:
                    answered += 1
                    # A few answers, so every worker has most likely imported the project.
                    if answered >= 4 * workers:
                        return
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(
        f"gunicorn did not answer {url} within {timeout:.0f}s; its log:\n"
        f"{log_path.read_text(errors='replace')[-4000:]}"
    )
