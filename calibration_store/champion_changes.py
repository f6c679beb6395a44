"""Every change of champion, written to the calibrator store: a recorded decision (promoted or
rejected), a promotion by hand, a rollback to the previous champion.

    version = record_decision(con, decision, task_name="demo", actor=run_id)   # promotion.decide's outcome
    promote(con, version, actor="ana", reason="reviewed the held-out figures")
    rollback(con, task_version, actor="ana", reason="tonight's buckets look wrong")
    version = reissue_with_floor(con, champion_doc, floor, actor=run_id, reason="...")  # a kept champion's new floor
"""
from __future__ import annotations

from typing import Any, Mapping

import duckdb

from calscore.calibration_store.document import build_document, with_coverage_floor
from calscore.calibration_store.promotion import Decision
from calscore.calibration_store.store import (
    CHAMPION_EVENTS,
    champion,
    list_events,
    record_event,
    save_calibrator,
    set_champion,
    transaction,
)


def record_decision(
    con: duckdb.DuckDBPyConnection, decision: Decision, *, task_name: str, actor: str,
    coverage_floor: Mapping[str, Any] | None = None,
) -> str | None:
    """Store the challenger (its recipe fitted on every label) and record the decision (promoted or rejected)
    with its out-of-fold figures; a promoted challenger's document carries `coverage_floor`, the floor decision
    it applies (a rejected one is never applied: it carries none). Returns the stored version, or None when no
    challenger was fitted (nothing to store; the decision's reason says why)."""
    if decision.challenger is None:
        return None
    heldout = {
        "evaluation": decision.evaluation,
        "folds": decision.folds,
        "fold_seed": decision.fold_seed,
        "baseline": decision.baseline,
        **decision.challenger_metrics,
    }
    doc = build_document(decision.challenger, task_name, decision.task_version, decision.fit_window,
                         decision.n_train, heldout, coverage_floor if decision.promote else None)
    with transaction(con):
        version = save_calibrator(con, doc, actor=actor, reason=f"challenger, {decision.evaluation_text()}")
        if decision.promote:
            set_champion(con, version, actor=actor, reason=decision.reason, event="promoted", metrics=decision.figures())
        else:
            record_event(con, decision.task_version, version, "rejected", actor, decision.reason, decision.figures())
    return version


def reissue_with_floor(
    con: duckdb.DuckDBPyConnection, current: Mapping[str, Any], coverage_floor: Mapping[str, Any], *, actor: str,
    reason: str,
) -> str:
    """Make the champion's calibrator, with a new coverage floor decision, the champion (a new document, so a new
    version: scoring, re-application and rollback keep each floor with the document that applies it), recorded as
    floor_changed; it was fitted on the same rows as the current one. Returns the new version."""
    doc = with_coverage_floor(current, coverage_floor)
    with transaction(con):
        version = save_calibrator(con, doc, actor=actor, reason=reason)
        con.execute("INSERT INTO calibrator_fit_rows (version, row_id) SELECT ?, row_id FROM calibrator_fit_rows "
                    "WHERE version = ? ON CONFLICT DO NOTHING", [version, current["version"]])
        set_champion(con, version, actor=actor, reason=reason, event="floor_changed",
                     metrics={"coverage_floor": doc["coverage_floor"]})
    return version


def promote(con: duckdb.DuckDBPyConnection, version: str, actor: str, reason: str) -> str | None:
    """Make a stored calibrator the champion by hand (recorded as manual_promote); return the retired version."""
    if not reason:
        raise ValueError("a manual promotion needs a reason")
    row = con.execute("SELECT status FROM calibrators WHERE version = ?", [version]).fetchone()
    if row is None:
        raise ValueError(f"no calibrator {version!r} in the store")
    if row[0] == "champion":
        raise ValueError(f"calibrator {version} already is the champion")
    return set_champion(con, version, actor=actor, reason=reason, event="manual_promote")


def champion_history(con: duckdb.DuckDBPyConnection, task_version: str) -> list[str]:
    """The stack of champions, oldest first, from the event log (a rollback pops the current one)."""
    stack: list[str] = []
    for e in list_events(con, task_version):
        if e["event"] not in CHAMPION_EVENTS:
            continue
        if e["event"] == "rollback":
            while stack and stack[-1] != e["version"]:
                stack.pop()
            if not stack:
                stack.append(e["version"])
        elif not stack or stack[-1] != e["version"]:
            stack.append(e["version"])
    return stack


def rollback(con: duckdb.DuckDBPyConnection, task_version: str, actor: str, reason: str) -> str:
    """Make the previous champion the champion again (recorded as rollback); return its version."""
    if not reason:
        raise ValueError("a rollback needs a reason")
    current = champion(con, task_version)
    if current is None:
        raise ValueError(f"task_version {task_version} has no champion to roll back")
    stack = champion_history(con, task_version)
    if not stack or stack[-1] != current["version"]:
        raise ValueError(
            f"the event log of task_version {task_version} does not end with the current champion "
            f"{current['version']}; promote the intended version by hand instead"
        )
    if len(stack) < 2:
        raise ValueError(f"task_version {task_version} has no previous champion to roll back to")
    previous = stack[-2]
    set_champion(con, previous, actor=actor, reason=reason, event="rollback")
    return previous
