"""The `calscore` command as an operator runs it: a real process with its own Prefect home and process group."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 240  # seconds any single subprocess step may take on a slow, shared machine
MARK = "CALSCORE_TEST_PROCESS_MARK"
# Root reads every file whatever its mode; an operator's account does not. Dropping root's DAC
# override makes a `chmod 000` file unreadable for the command, as it is for the operator.
AS_AN_OPERATOR = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []


def env() -> dict:
    environment = dict(os.environ)
    environment["PREFECT_HOME"] = home = tempfile.mkdtemp(prefix="calscore-prefect-")  # one ephemeral server per process
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def calscore(*args: str, prefix: list[str] | None = None, mark: str = "", **variables: str) -> subprocess.Popen:
    """`calscore args` in its own process group (a kill takes its ephemeral Prefect server down with it), with
    these environment `variables`; every process it starts inherits `mark` (see `marked_processes`)."""
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "calscore.cli", *args], cwd=REPO,
        env={**env(), **variables, MARK: mark},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def marked_processes(mark: str) -> list[str]:
    """Live processes whose environment carries `mark`: what a command started, wherever it was reparented."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"{MARK}={mark}".encode() in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry} {command}")
        except OSError:  # gone meanwhile
            continue
    return found


def sigkill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out


def wait_for_line(proc: subprocess.Popen, needle: str, seen: list[str] | None = None) -> str:
    """Read the process's output until a line contains `needle` (the marker), or fail; lines read go to `seen`."""
    deadline = time.monotonic() + DEADLINE
    seen = [] if seen is None else seen
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    if proc.poll() is None:  # (killing a process that has ended raised ProcessLookupError instead of saying this)
        sigkill(proc)
    pytest.fail(f"never saw {needle!r} (exit code {proc.returncode}); output:\n{''.join(seen)[-3000:]}")


def wait_until(check, what: str, procs: list[subprocess.Popen], timeout: float = 2 * DEADLINE):
    """Poll `check` until it is true; a loaded machine (load average 5-9 seen) gets minutes, not seconds."""
    import duckdb
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited early while waiting for {what}"
        try:
            result = check()
        except (httpx.HTTPError, duckdb.Error):
            result = None
        if result:
            return result
        time.sleep(1)  # each check may open the warehouse a served run is writing: not more often
    pytest.fail(f"timed out waiting for {what}")


@contextmanager
def prefect_server(folder: Path) -> Iterator[dict]:
    """A real `prefect server start` on a free port, its database and log in `folder`: yields the environment
    (`env()`) whose PREFECT_API_URL is that server's. Its scheduler and runners poll every 2 s (served deployments)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = env()
    environment.update(
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_UI_ENABLED="false",
    )
    with open(folder / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: httpx.get(f"{environment['PREFECT_API_URL']}/health", timeout=2).status_code == 200,
                       "the Prefect server", [server])
            yield environment
        finally:
            server.terminate()
            server.wait(timeout=30)
