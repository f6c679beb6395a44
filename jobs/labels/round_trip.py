"""The labeling round trip through Label Studio: push rows to label, pull the annotations back as labels.

Push sends an audit sample (drawn now, or one drawn earlier by `labels sample`) or the head of the review queue,
one task per row, each with the model's decision as a prediction; rows already in the project are not sent again,
so a push that failed half-way is finished by the same command.

Pull reads every task before it writes anything (a server that goes away mid-pull costs nothing), takes each
task's newest submitted annotation, and imports the labels as `labels import` does: per annotator and design, so
each label's source names its annotator; audit labels get the inclusion probability of the sample they were
pushed from. The import is idempotent (a second pull: 0 new) and a changed annotation supersedes the label it
changes, which stays as history.
"""
from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from calscore.jobs.labels.audit import draw_audit_sample
from calscore.jobs.labels.importing import DESIGNS, import_labels
from calscore.jobs.labels.ingest import due_recalibration
from calscore.jobs.labels.label_studio import (
    Connection,
    LabelStudio,
    LabelStudioError,
    Project,
    annotated_label,
    prediction_task,
)
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement

# Tasks per import request: a push that fails mid-way has sent whole requests only, and the next push skips them.
IMPORT_BATCH = 200


def _project_line(conn: Connection, project: Project) -> str:
    return f"Label Studio project {project.title!r} (id {project.id}) at {conn.url}"


def _candidates(spec: TaskSpec, sample_id: str | None, review: int) -> list[dict]:
    """The audit sample's rows, or the review queue's first `review` rows, with their current decision."""
    with reader(spec.warehouse.path) as con:
        if not sample_id:
            return con.sql(statement("label_studio_review_rows"),
                           params={"task_version": spec.task_version, "n": review}).to_arrow_table().to_pylist()
        rows = con.sql(statement("label_studio_audit_rows"),
                       params={"task_name": spec.name, "sample_id": sample_id}).to_arrow_table().to_pylist()
    if not rows:
        raise ValueError(f"no audit sample {sample_id!r} of task {spec.name} in {spec.warehouse.path}")
    return rows


def push(spec: TaskSpec, conn: Connection, audit: int | None = None, seed: int | None = None,
         sample_id: str | None = None, review: int | None = None) -> list[str]:
    """Push an audit sample (`audit` rows drawn now, or `sample_id`) or the review queue's first `review` rows."""
    lines = []
    with LabelStudio(conn) as ls:
        try:  # server, token and project first: a server that is down costs no audit sample
            project, created = ls.project(spec.label_names, create=True)
            pushed = {task["data"].get("calscore_row_id") for task in ls.tasks(project)}
        except LabelStudioError as exc:
            raise LabelStudioError(f"{exc}; nothing was pushed") from None
        if created:
            lines.append(f"created {_project_line(conn, project)}, asking for: {', '.join(project.labels.values())}")
        if audit:
            sample_id = draw_audit_sample(spec, audit, seed=seed)["sample_id"][0].as_py()
        # the queue's head may hold rows pushed earlier and not labeled yet: look that much further
        candidates = _candidates(spec, sample_id, (review or 0) + len(pushed))
        rows = [row for row in candidates if row["row_id"] not in pushed][:None if sample_id else review]
        sent = 0
        try:
            for start in range(0, len(rows), IMPORT_BATCH):
                sent += ls.import_tasks(project, [prediction_task(project, r) for r in rows[start:start + IMPORT_BATCH]])
        except LabelStudioError as exc:
            again = f"labels push --sample-id {sample_id}" if sample_id else f"labels push --review {review - sent}"
            raise LabelStudioError(f"{exc}; {sent} of {len(rows)} task(s) were pushed: `calscore {again}` sends the "
                                   "rest") from None
    what = (f"audit sample {sample_id} (design audit; {len(candidates) - len(rows)} of its rows were there already)"
            if sample_id else "the head of the review queue (design convenience)")
    lines.append(f"{_project_line(conn, project)}: {sent} task(s) pushed from {what}, each with the model's "
                 "prediction")
    lines.append(f"label them at {conn.url}/projects/{project.id}/data, then: calscore labels pull")
    return lines


def _audit_probabilities(spec: TaskSpec, rows: list[dict]) -> list[float | None]:
    pulled = pa.table({"row_id": [r["row_id"] for r in rows], "sample_id": [r["sample_id"] for r in rows]},
                      schema=pa.schema([("row_id", pa.string()), ("sample_id", pa.string())]))
    with reader(spec.warehouse.path) as con:
        con.register("pulled", pulled)
        found = dict(con.execute(statement("label_studio_sample_probs"), {"task_name": spec.name}).fetchall())
    return [found.get(r["row_id"]) for r in rows]


def pull(spec: TaskSpec, conn: Connection, trigger: bool = True) -> dict:
    """Import the project's annotations as labels; the result has the report lines, `inserted`, and `new_labels`
    when a recalibration is due (as `ingest.ingest`)."""
    try:
        with LabelStudio(conn) as ls:
            project, _ = ls.project(spec.label_names, create=False)
            tasks = list(ls.tasks(project))
            annotators = ls.annotators()
    except LabelStudioError as exc:
        raise LabelStudioError(f"{exc}; nothing was imported (a later pull imports everything)") from None
    groups: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    waiting = skipped = foreign = 0
    for task in tasks:
        row_id, meta = task["data"].get("calscore_row_id"), task.get("meta") or {}
        labeled = annotated_label(project, task)
        if row_id is None:
            foreign += 1
        elif labeled is None:  # not annotated yet, or annotated without a choice (skipped)
            skipped += bool(task.get("annotations"))
            waiting += not task.get("annotations")
        else:
            design = meta.get("calscore_design") if meta.get("calscore_design") in DESIGNS else None
            who = annotators.get(labeled[1], f"user {labeled[1]}")
            groups[(design, who)].append({"row_id": str(row_id), "label": labeled[0],
                                          "sample_id": meta.get("calscore_sample")})
    report = [f"{_project_line(conn, project)}: {len(tasks)} task(s), {sum(map(len, groups.values()))} labeled, "
              f"{waiting} not annotated yet, {skipped} without a label (skipped)" + (
                  f", {foreign} not pushed by calscore (ignored)" if foreign else "")]
    inserted = 0
    for (design, who), rows in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1])):
        columns = {"id": [r["row_id"] for r in rows], "label": [r["label"] for r in rows]}
        if design == "audit":
            columns["inclusion_prob"] = pa.array(_audit_probabilities(spec, rows), pa.float64())
        result = import_labels(spec, pa.table(columns), f"Label Studio project {project.id} ({who})", design=design)
        report += result.lines()
        inserted += result.inserted
    return {"report": report, "inserted": inserted, "recalibration": None,
            "new_labels": due_recalibration(spec, trigger, report)}
