"""Runs: the run-level lock (a `runs` row with a heartbeat) and run provenance.

Only one scoring run (score or rescore) and one recalibration run per task may
be active on a warehouse. A second one refuses with a clear message, or waits.
A running run beats from a background thread (`beating`) every BEAT_EVERY, however
long one batch takes. Its lock is taken over only when it is surely gone:

- on the same host, when its pid is dead (a live pid is never taken over, whatever
  its heartbeat says);
- from another host (a container restarted under a new name), when its heartbeat is
  older than STALE_AFTER; the refusal says when that will be, and `release` frees a
  lock by hand (recorded in `runs`).

A run taken over is marked abandoned: its batches were never marked done, so they
are simply scored again.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Iterator
from importlib import metadata
from pathlib import Path

from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.common.retry import retry_until_deadline
from calscore.jobs.scoring.registry import backend_for
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.read_copy import publish_read_copy
from calscore.jobs.warehouse.run_registry import close_running, register
from calscore.jobs.warehouse.statements import statement

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(minutes=30)
BEAT_EVERY = timedelta(seconds=60)
LOCK_GROUPS = {"score": "score", "rescore": "score", "recalibrate": "recalibrate"}
_PACKAGES = ("calscore", "torch", "transformers", "tokenizers", "duckdb", "prefect", "scikit-learn", "numpy", "pyarrow")


class RunLocked(CalscoreError, RuntimeError):
    """Another live run holds the task's lock; `holder` names it (kind, run id, pid and host)."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_dead(host: str | None, pid: int | None, heartbeat_at) -> bool:
    if host == socket.gethostname() and pid is not None:
        return pid != os.getpid() and not _pid_alive(pid)
    return utcnow() - heartbeat_at > STALE_AFTER


def _refusal(task_name: str, kind: str, run_id: str, host: str | None, pid: int | None, started, beat) -> str:
    held = (f"task {task_name!r}: {kind} run {run_id} (pid {pid} on {host}, started {started:%Y-%m-%d %H:%M:%S}, "
            f"last heartbeat {beat:%Y-%m-%d %H:%M:%S}) holds the lock. Nothing was done")
    if host == socket.gethostname():
        return f"{held}: its process is alive on this host; re-run when it has finished."
    left = max(timedelta(0), STALE_AFTER - (utcnow() - beat))
    return (f"{held}: it runs on another host, so its lock expires {int(left.total_seconds() // 60)} min after its "
            f"last heartbeat stops. If that process is gone for sure, release the lock by hand: "
            f"calscore runs release {run_id} --task TASK_FILE --reason '...'")


def _try_start(con, run_id: str, task_name: str, task_version: str, kind: str, provenance: dict,
               night: date) -> None:
    group = [k for k, g in LOCK_GROUPS.items() if g == LOCK_GROUPS[kind]]
    con.execute("BEGIN TRANSACTION")
    try:
        holders = con.execute(
            "SELECT run_id, kind, host, pid, started_at, heartbeat_at FROM runs"
            " WHERE task_name = ? AND status = 'running' AND list_contains(?, kind)",
            [task_name, group],
        ).fetchall()
        for holder_id, holder_kind, host, pid, started, beat in holders:
            if not _is_dead(host, pid, beat):
                raise RunLocked(_refusal(task_name, holder_kind, holder_id, host, pid, started, beat),
                                f"{holder_kind} run {holder_id} (pid {pid} on {host})")
            con.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ? WHERE run_id = ?", [utcnow(), holder_id]
            )
        now = utcnow()
        con.execute(
            statement("runs_insert"),
            {"run_id": run_id, "task_name": task_name, "task_version": task_version, "kind": kind, "now": now,
             "host": socket.gethostname(), "pid": os.getpid(),
             **{k: provenance.get(k) for k in ("model", "model_fingerprint", "dtype", "device", "labels")},
             "package_versions": json.dumps(package_versions()), "night": night},
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def start_run(
    warehouse: Path,
    task_name: str,
    task_version: str,
    kind: str,
    provenance: dict | None = None,
    wait_seconds: float = 0.0,
    night: date | None = None,
) -> str:
    """Take the task's run lock and record the run; return its id.

    `night` is the run's logical date (the night a scheduled run is for); the UTC day it
    starts when not given. Its predictions carry it (a night in the reports).

    Raises RunLocked when another live run holds the lock after `wait_seconds`.
    """
    if kind not in LOCK_GROUPS:
        raise ValueError(f"unknown run kind {kind!r}")
    run_id = f"{kind}-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    def attempt() -> str:
        with writer(warehouse) as con:
            _try_start(con, run_id, task_name, task_version, kind, provenance or {}, night or utcnow().date())
        register(run_id, warehouse)  # a signal's supervisor records it as cancelled
        return run_id

    def say(exc: RunLocked, waited: float) -> None:
        log.warning("waiting for the lock of task %r: %s holds it; waited %.0f s, giving up after %.0f s",
                    task_name, exc.holder, waited, wait_seconds)

    return retry_until_deadline(attempt, lambda exc: isinstance(exc, RunLocked), wait_seconds,
                                first_delay=0.1, max_delay=5.0, on_wait=say)


def heartbeat(warehouse: Path, run_id: str) -> None:
    """Refresh the run's lock (a short write)."""
    with writer(warehouse) as con:
        con.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [utcnow(), run_id])


@contextmanager
def beating(warehouse: Path, run_id: str, every: timedelta = BEAT_EVERY) -> Iterator[None]:
    """Inside, a background thread refreshes the run's heartbeat every `every`, however long a batch takes.

    A beat that cannot write (the warehouse held by someone else for longer than the wait)
    is logged and tried again at the next beat; the lock stays safe on this host meanwhile,
    because a live pid is never taken over.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every.total_seconds()):
            try:
                heartbeat(warehouse, run_id)
            except Exception as exc:  # a missed beat must not kill the run
                log.warning("run %s: heartbeat not written (%s); trying again in %s", run_id, exc, every)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def release(warehouse: Path, task_name: str, run_id: str, actor: str, reason: str) -> str:
    """Free a run's lock by hand (its process is gone for sure); recorded in `runs`."""
    with writer(warehouse) as con:
        kind = close_running(con, run_id, "released", {"released_by": actor, "release_reason": reason}, task_name)
    if kind is None:
        raise CalscoreError(f"task {task_name!r} has no running run {run_id!r}: nothing to release")
    return f"released the lock of {kind} run {run_id} (recorded as released by {actor}: {reason})"


def finish_run(warehouse: Path, run_id: str, status: str, summary: dict | None = None) -> None:
    """Record how a run ended, and refresh the analysts' read copy (not after a stop: the cancelled record is the
    only thing a stopped run writes)."""
    with writer(warehouse) as con:
        con.execute(
            "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ?, summary = ? WHERE run_id = ?",
            [status, utcnow(), utcnow(), json.dumps(summary or {}, default=str), run_id],
        )
    if status != "cancelled":
        publish_read_copy(warehouse)


def run_provenance(spec: TaskSpec) -> dict:
    """What a run records about the model it scores with, resolved without loading it
    (a night with no new batch never pays for a model load)."""
    return {**backend_for(spec.model).provenance(spec.model), "labels": spec.label_names}
