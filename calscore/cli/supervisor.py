"""Stopping means stopping: SIGINT and SIGTERM end a command's work in seconds, and every process it started.

A command that runs work (`SUPERVISED`) runs in a child process; this process only waits for it.
On SIGINT (Ctrl-C) or SIGTERM it kills the child at once (SIGKILL: whatever batch the model was
scoring is abandoned, and nothing more is written -- an open DuckDB transaction dies with it, as
the crash tests show), records the child's running runs as `cancelled` (the only write after the
signal), ends every process the child started (the temporary Prefect server, a Ray instance
started for the run: as a child subreaper it inherits them when the child dies), prints one line
and exits 130 or 143. The next run takes up where it stopped: each row is written exactly once.

This module imports only the standard library (the warehouse module when a signal comes), so the
supervisor starts at once and stops in seconds. Linux: descendants are found in /proc.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPERVISED = {"score", "rescore", "recalibrate", "labels", "demo", "finetune", "finetune-demo"}
SUPERVISED_ENV = "CALSCORE_SUPERVISED"
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_GRACE_SECONDS = 5.0  # for the started processes to end on SIGTERM before SIGKILL


def needs_supervision(argv: list[str]) -> bool:
    """Whether this command line runs work that a signal must stop (and this process is not its child)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command in SUPERVISED and SUPERVISED_ENV not in os.environ


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def as_supervised_child() -> None:
    """In the child: Ctrl-C is the supervisor's to handle, and the child dies with its supervisor."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by what it starts: the supervisor ends them
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """Live (not zombie) processes below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    alive = set()
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat:
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            children.setdefault(int(parent), []).append(int(entry))
            if state != "Z":
                alive.add(int(entry))
    found, queue = [], [root]
    while queue:
        for pid in children.get(queue.pop(), []):
            found.append(pid)
            queue.append(pid)
    return [pid for pid in found if pid in alive]


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _reap() -> None:
    """Collect the exit status of inherited processes that ended (as a subreaper, they are this one's)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def end_started_processes() -> None:
    """SIGTERM every process below this one, SIGKILL what is left after the grace period."""
    deadline = time.monotonic() + _GRACE_SECONDS
    _signal_all(_descendants(os.getpid()), signal.SIGTERM)
    while (left := _descendants(os.getpid())) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    while left:  # processes started meanwhile are found on the next pass
        _signal_all(left, signal.SIGKILL)
        _reap()
        left = _descendants(os.getpid())
    _reap()


def supervise(argv: list[str]) -> int:
    """Run `calscore argv` in a child process and wait; on SIGINT/SIGTERM stop it (module docstring)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    with tempfile.TemporaryDirectory(prefix="calscore-runs-") as folder:
        from calscore.jobs.warehouse.run_registry import REGISTRY_ENV  # light: stdlib, duckdb

        registry = Path(folder) / "runs.tsv"
        stopped: list[int] = []
        child: list[subprocess.Popen] = []

        def stop(signum: int, frame) -> None:
            if not stopped:
                stopped.append(signum)
                _signal_all([c.pid for c in child], signal.SIGKILL)  # nothing more of the run is written

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            child.append(subprocess.Popen([sys.executable, "-m", "calscore.cli", *argv],
                                          env={**os.environ, SUPERVISED_ENV: "1", REGISTRY_ENV: str(registry)}))
            if stopped:  # the signal came while the child was being started
                _signal_all([child[0].pid], signal.SIGKILL)
            code = child[0].wait()
            line = _cancel(registry, stopped[0]) if stopped else ""
            end_started_processes()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if stopped:
        print(line, file=sys.stderr, flush=True)
        return 128 + stopped[0]
    return code if code >= 0 else 128 - code


def _cancel(registry: Path, signum: int) -> str:
    """Record the child's running runs as cancelled; the one line that says so."""
    from calscore.jobs.warehouse.run_registry import cancel_registered

    name = signal.Signals(signum).name
    try:
        cancelled = cancel_registered(registry, name)
    except Exception as exc:  # the warehouse held elsewhere: the next run takes the lock over as abandoned
        return f"calscore: stopped by {name}; the run could not be recorded as cancelled ({exc})"
    if not cancelled:
        return f"calscore: stopped by {name}; no run was in progress, nothing was written after the signal"
    return (f"calscore: stopped by {name}; run {', '.join(cancelled)} recorded as cancelled, the batch being scored "
            "abandoned (batches written before the signal stay; the next run scores the rest, each row once)")
