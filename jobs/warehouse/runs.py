"""Runs: the run-level lock (a `runs` row with a heartbeat) and run provenance.

Only one scoring run (score or rescore) and one recalibration run per task may
be active on a warehouse. A second one refuses with a clear message, or waits.
A holder whose process is gone (same host, pid dead) or whose heartbeat is older
than STALE_AFTER is marked abandoned and the lock is taken over: its batches
were never marked done, so they are simply scored again.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import timedelta
from importlib import metadata
from pathlib import Path

from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.retry import retry_until_deadline
from calscore.jobs.scoring.registry import backend_for
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.statements import statement

STALE_AFTER = timedelta(minutes=30)
LOCK_GROUPS = {"score": "score", "rescore": "score", "recalibrate": "recalibrate"}
_PACKAGES = ("calscore", "torch", "transformers", "tokenizers", "duckdb", "prefect", "scikit-learn", "numpy", "pyarrow")


class RunLocked(RuntimeError):
    """Another live run holds the task's lock."""


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
    if host == socket.gethostname() and pid is not None and pid != os.getpid() and not _pid_alive(pid):
        return True
    return utcnow() - heartbeat_at > STALE_AFTER


def _try_start(con, run_id: str, task_name: str, task_version: str, kind: str, provenance: dict) -> None:
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
                raise RunLocked(
                    f"task {task_name!r}: {holder_kind} run {holder_id} (pid {pid} on {host}, started {started:%Y-%m-%d %H:%M:%S}, "
                    f"last heartbeat {beat:%H:%M:%S}) is still running. Nothing was done; re-run when it has finished."
                )
            con.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ? WHERE run_id = ?", [utcnow(), holder_id]
            )
        now = utcnow()
        con.execute(
            statement("runs_insert"),
            {"run_id": run_id, "task_name": task_name, "task_version": task_version, "kind": kind, "now": now,
             "host": socket.gethostname(), "pid": os.getpid(),
             **{k: provenance.get(k) for k in ("model", "model_fingerprint", "dtype", "device", "labels")},
             "package_versions": json.dumps(package_versions())},
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
) -> str:
    """Take the task's run lock and record the run; return its id.

    Raises RunLocked when another live run holds the lock after `wait_seconds`.
    """
    if kind not in LOCK_GROUPS:
        raise ValueError(f"unknown run kind {kind!r}")
    run_id = f"{kind}-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    def attempt() -> str:
        with writer(warehouse) as con:
            _try_start(con, run_id, task_name, task_version, kind, provenance or {})
        return run_id

    return retry_until_deadline(attempt, lambda exc: isinstance(exc, RunLocked), wait_seconds,
                                first_delay=0.1, max_delay=5.0)


def heartbeat(con, run_id: str) -> None:
    """Refresh the lock; called inside each batch write so it costs no extra open."""
    con.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [utcnow(), run_id])


def finish_run(warehouse: Path, run_id: str, status: str, summary: dict | None = None) -> None:
    with writer(warehouse) as con:
        con.execute(
            "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ?, summary = ? WHERE run_id = ?",
            [status, utcnow(), utcnow(), json.dumps(summary or {}, default=str), run_id],
        )


def run_provenance(spec: TaskSpec) -> dict:
    """What a run records about the model it scores with, resolved without loading it
    (a night with no new batch never pays for a model load)."""
    return {**backend_for(spec.model).provenance(spec.model), "labels": spec.label_names}
