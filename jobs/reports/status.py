"""`calscore status`: what has been done for a task, read-only."""
from __future__ import annotations

from calscore.calibration_store.store import list_calibrators
from calscore.jobs.calibrators.coverage_floor import champion_floor_line
from calscore.jobs.batches.files import InputLocationError, discover
from calscore.jobs.common.intervals import wilson_interval
from calscore.jobs.reports.report_data import champion_heldout, heldout_sentence
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.ledger import ledger_states
from calscore.jobs.warehouse.statements import statement


def _batch_lines(refs: list | None, ledger: dict, location: str) -> list[str]:
    """Each file of the input location counted once: done, failed (with its error) or pending."""
    if refs is None:
        return [f"batches: [input] location {location} does not exist"]
    states = [ledger.get((r.key, r.content_hash), ("pending", None)) for r in refs]
    done = sum(status == "done" for status, _ in states)
    failed = [(r.key, error) for r, (status, error) in zip(refs, states) if status == "failed"]
    lines = [f"batches: {done} done, {len(refs) - done - len(failed)} pending, {len(failed)} failed "
             f"({len(refs)} file(s) in {location})"]
    lines += [f"  failed: {key}: {error} (retry: calscore batches retry --task ... {key})" for key, error in failed]
    return lines


def _health_lines(health: list[tuple]) -> list[str]:
    """The newest night's health checks: the warnings in full, the rest counted."""
    if not health:
        return ["health: no checks yet"]
    night = health[0][0]
    warnings = [f"  warning: {detail}" for _, _, _, _, _, status, detail in health if status == "warning"]
    ok = sum(status == "ok" for *_, status, _ in health)
    missing = sum(status == "no_reference" for *_, status, _ in health)
    return [f"health ({night}): {ok} ok, {len(warnings)} warning(s), {missing} without a reference yet", *warnings]


def task_status(spec: TaskSpec) -> str:
    """A short plain-text status of the task's batches, runs and calibrator."""
    try:
        refs = discover(spec.input)
    except InputLocationError:
        refs = None
    with reader(spec.warehouse.path) as con:
        ledger = ledger_states(con, spec)
        quiet = con.execute(statement("runs_nothing_new_since_last_batch"), {"task_name": spec.name}).fetchall()[0]
        rows = con.execute(
            "SELECT count(*) FROM predictions WHERE task_version = ?", [spec.task_version]
        ).fetchall()[0][0]
        last_run = con.execute(statement("runs_latest"), {"task_name": spec.name}).fetchall()
        champion = [(c["version"], c["method"], c["n_labels"], c["created_at"])
                    for c in list_calibrators(con, task_version=spec.task_version) if c["status"] == "champion"]
        snapshot = con.execute(
            statement("reliability_snapshots_latest_calibrated"), {"task_version": spec.task_version}
        ).fetchall()
        snapshot_by = con.execute(  # whose the snapshot is (maybe no longer the champion), and its ECE interval
            "SELECT calibrator_version, ece_ci_low, ece_ci_high FROM reliability_snapshots WHERE task_version = ?"
            " AND scores = 'calibrated' AND segment = 'all' AND created_at = ?", [spec.task_version, snapshot[0][0]]
        ).fetchall() if snapshot else []
        health = con.execute(statement("health_checks_latest"), {"task_name": spec.name}).fetchall()
        floor = champion_floor_line(con, spec)
        unfinished = con.execute("SELECT calibrator_version, rows_done FROM reapplications WHERE task_version = ? "
                                 "AND status = 'pending'", [spec.task_version]).fetchall()
    last_run, champion, snapshot = (rows[0] if rows else None for rows in (last_run, champion, snapshot))
    lines = [f"task {spec.name}  task_version {spec.task_version}  warehouse {spec.warehouse.path}",
             *_batch_lines(refs, ledger, spec.input.location), f"predictions for this task_version: {rows}"]
    last_batch, nothing_new = quiet
    if last_batch is not None:
        lines.append(f"last batch written: {last_batch:%Y-%m-%d %H:%M}; {nothing_new} run(s) since found nothing new")
    if last_run:
        run_id, kind, state, started, finished = last_run
        lines.append(f"last run: {run_id} ({kind}) {state}, started {started:%Y-%m-%d %H:%M:%S}"
                     + (f", finished {finished:%H:%M:%S}" if finished else ""))
    else:
        lines.append("last run: none yet")
    if champion:
        version, method, n_labels, created = champion
        lines.append(f"champion calibrator: {version} ({method}, {n_labels} labels, {created:%Y-%m-%d %H:%M})")
    else:
        lines.append("champion calibrator: none (buckets use raw confidence)")
    lines.append(floor)
    for version, done in unfinished:  # part of the window is still decided by the previous champion
        lines.append(f"re-application of champion {version}: {done} row(s) re-decided, not finished (the next "
                     "recalibration continues it; until then older rows may be decided by the previous champion)")
    lines += _health_lines(health)
    lines.append(f"calibration, {heldout_sentence(champion_heldout(spec))}")
    if snapshot:
        created, n, acc, ece, _ = snapshot
        version, ece_low, ece_high = snapshot_by[0] if snapshot_by else (None, None, None)
        if champion and version == champion[0]:
            acc_low, acc_high = wilson_interval(acc, n)
            ece_ci = "" if ece_low is None else f" [{ece_low:.3f}, {ece_high:.3f}]"
            lines.append(f"last snapshot (the champion's, on labels it was not fitted on): {created:%Y-%m-%d %H:%M}  "
                         f"n={n}  accuracy={acc:.3f} [{acc_low:.3f}, {acc_high:.3f}]  ECE={ece:.3f}{ece_ci} "
                         "(95% intervals)")
        else:  # not the champion's figures: not shown as evidence about it
            lines.append(f"last snapshot: {created:%Y-%m-%d %H:%M}, of calibrator {version}, not the current champion "
                         "(its figures are not the champion's)")
    return "\n".join(lines)
