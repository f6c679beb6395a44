"""`calscore calibrators`: the history of a task's calibrators, and a person's overrides."""
from __future__ import annotations

import getpass
from pathlib import Path

from calscore.calibration_store.document import export_document, import_document
from calscore.calibration_store.champion_changes import promote, rollback
from calscore.calibration_store.store import document, list_calibrators, list_events, save_calibrator
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.read_copy import publish_read_copy


def _figure(metrics: dict | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return "-" if value is None else f"{value:.4f}"


def history_text(spec: TaskSpec) -> str:
    with reader(spec.warehouse.path) as con:
        calibrators = list_calibrators(con, task_version=spec.task_version)
        events = list_events(con, spec.task_version)
    if not calibrators:
        return f"task {spec.name} ({spec.task_version}): no calibrators yet"
    lines = [f"task {spec.name} ({spec.task_version})", "",
             f"{'version':<18}{'method':<14}{'status':<11}{'labels':>7}  held-out NLL  ECE     created"]
    for c in calibrators:
        m = c["heldout_metrics"]
        lines.append(f"{c['version']:<18}{c['method']:<14}{c['status']:<11}{c['n_labels']:>7}  "
                     f"{_figure(m, 'nll'):<12}  {_figure(m, 'ece'):<6}  {c['created_at']:%Y-%m-%d %H:%M}")
    lines += ["", "decisions:"]
    for e in events:
        if e["event"] != "fitted":
            lines.append(f"  {e['event_at']:%Y-%m-%d %H:%M}  {e['event']:<15}{e['version']}  by {e['actor']}: {e['reason'] or ''}")
    return "\n".join(lines)


def manual_promote(spec: TaskSpec, version: str, actor: str | None, reason: str) -> str:
    with writer(spec.warehouse.path) as con:
        if version not in {c["version"] for c in list_calibrators(con, task_version=spec.task_version)}:
            raise ValueError(f"calibrator {version} does not belong to task {spec.name} ({spec.task_version})")
        retired = promote(con, version, actor or getpass.getuser(), reason)
    publish_read_copy(spec.warehouse.path)
    return f"{version} is now the champion" + (f" (retired {retired})" if retired else "")


def manual_rollback(spec: TaskSpec, actor: str | None, reason: str) -> str:
    with writer(spec.warehouse.path) as con:
        previous = rollback(con, spec.task_version, actor or getpass.getuser(), reason)
    publish_read_copy(spec.warehouse.path)
    return f"rolled back: {previous} is the champion again"


def export_calibrator(spec: TaskSpec, version: str, path: Path) -> Path:
    """Write a stored calibrator's JSON document to a file, for review."""
    with reader(spec.warehouse.path) as con:
        doc = document(con, version, spec.task_version)
    return export_document(doc, path)


def import_calibrator(spec: TaskSpec, path: Path, actor: str | None) -> str:
    """Store a reviewed document file as a candidate (hash, schema and task_version verified)."""
    doc = import_document(path, expected_task_version=spec.task_version)
    with writer(spec.warehouse.path) as con:
        version = save_calibrator(con, doc, actor=actor or getpass.getuser(), reason=f"imported from {path}")
    publish_read_copy(spec.warehouse.path)
    return f"{version} stored as a candidate (promote it with `calscore calibrators promote`)"
