"""Label ingestion without Prefect: read -> validate -> upsert -> is a recalibration due?

The flow (`calscore.flows.labels`) and the command line's local mode share this; each
decides how a due recalibration runs (a served deployment's trigger, or directly).
"""
from __future__ import annotations

from pathlib import Path

from calscore.jobs.labels.importing import (
    check_design,
    import_labels,
    new_labels_since_last_fit,
    read_label_file,
    read_label_table,
)
from calscore.jobs.spec import TaskSpec


def ingest(spec: TaskSpec, file: str | None, table: str | None, source: str | None, trigger: bool,
           design: str | None = None) -> dict:
    """Import labels with their sampling design (`importing.DESIGNS`; None: audit when an inclusion probability
    is known, else convenience); the result has the report lines, `inserted`, and `new_labels` when a
    recalibration is due."""
    check_design(design)
    data = read_label_file(Path(file)) if file else read_label_table(spec, table)
    report = import_labels(spec, data, source or (Path(file).name if file else table), design=design)
    result = {"report": report.lines(), "inserted": report.inserted, "recalibration": None}
    result["new_labels"] = due_recalibration(spec, trigger, result["report"])
    return result


def due_recalibration(spec: TaskSpec, trigger: bool, report: list[str]) -> int | None:
    """The labels new since the last fit when they call for a recalibration (and `trigger`); else None, with a line
    in `report` saying why not. Every way labels arrive (a file, a table, Label Studio) asks this once, at its end."""
    new = new_labels_since_last_fit(spec)
    threshold = spec.calibration.refit_after_new_labels
    if trigger and new >= threshold:
        return new
    report.append(
        f"{new} new label(s) since the last fit; " + (
            "no recalibration (--no-trigger)" if not trigger else
            f"an import that brings them to {threshold} starts a recalibration by itself "
            "([calibration] refit_after_new_labels; --no-trigger prevents it)"))
    return None
