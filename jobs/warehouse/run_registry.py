"""The runs a command's process started, so that its supervisor can record them as cancelled.

When a signal stops `calscore score` (see `calscore.cli.supervisor`), the supervisor kills the
process doing the work first -- nothing more of the run is written -- and then records each run
that process started and left running as `cancelled`: the only write after the signal. The
process names its runs in the file `$CALSCORE_RUN_REGISTRY` (one `run_id<TAB>warehouse` a line);
this module imports nothing heavy, so the supervisor stops in seconds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from calscore.jobs.common.clock import utcnow
from calscore.jobs.warehouse.connection import writer

REGISTRY_ENV = "CALSCORE_RUN_REGISTRY"
CANCEL_WAIT_SECONDS = 10.0  # an analyst's session holding the file: the next run marks the run abandoned instead


def register(run_id: str, warehouse: Path) -> None:
    """Name a run this process started in the supervisor's registry (nothing without a supervisor)."""
    registry = os.environ.get(REGISTRY_ENV)
    if registry:
        with open(registry, "a", encoding="utf-8") as f:
            f.write(f"{run_id}\t{Path(warehouse).resolve()}\n")


def close_running(con, run_id: str, status: str, note: dict, task_name: str | None = None) -> str | None:
    """End a run that is still running with `status`, `note` merged into its summary; its kind, or None
    when it is not running (finished meanwhile, or not this task's)."""
    rows = con.execute(
        "UPDATE runs SET status = ?, finished_at = ?, summary = json_merge_patch(coalesce(summary, '{}'), ?)"
        " WHERE run_id = ? AND status = 'running' AND (? IS NULL OR task_name = ?) RETURNING kind",
        [status, utcnow(), json.dumps(note), run_id, task_name, task_name],
    ).fetchall()
    return rows[0][0] if rows else None


def cancel_registered(registry: Path, reason: str) -> list[str]:
    """Record as cancelled every run in `registry` that is still running; return their ids."""
    lines = registry.read_text(encoding="utf-8").splitlines() if registry.exists() else []
    cancelled = []
    for run_id, warehouse in (line.split("\t", 1) for line in lines):
        with writer(Path(warehouse), wait_seconds=CANCEL_WAIT_SECONDS) as con:
            if close_running(con, run_id, "cancelled", {"cancelled_by": reason}):
                cancelled.append(run_id)
    return cancelled
