"""The versioned calibrator store in the warehouse (tables `calibrators` and `calibrator_events`).

Each calibrator is one row: its content-hash version, its full JSON document,
and its status -- candidate (fitted, not in use), champion (the one applied
to new rows; exactly one per task_version at a time) or retired (was
champion). Every change of status and every fit is an event with an actor
(a recalibration run id or a person), a reason and its figures.

Functions take an open DuckDB connection and join the caller's transaction
when one is open; otherwise each change is its own transaction.
Reading the champion goes through `champion` (its verified document) or
`load_version`; analysts open the warehouse read-only and call them, or use
`calscore.jobs.calibrators.champion.load_champion`.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

import duckdb

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import canonical_json, load_document, verify_document

EVENTS = ("fitted", "promoted", "rejected", "retired", "manual_promote", "rollback", "floor_changed")
# Events after which the version named in them is the champion (floor_changed: the champion's calibrator with a new
# coverage floor decision, a new document, `champion_changes.reissue_with_floor`).
CHAMPION_EVENTS = ("promoted", "manual_promote", "rollback", "floor_changed")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether an explicit transaction is open on `con`.

    DuckDB has no such flag, and a failed BEGIN aborts the open transaction, so
    ask twice for the transaction id: in auto-commit mode every statement runs
    in a new transaction with a new id.
    """
    first = con.execute("SELECT txid_current()").fetchone()[0]
    return con.execute("SELECT txid_current()").fetchone()[0] == first


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run a block atomically: its own transaction, or the caller's if one is already open."""
    if in_transaction(con):
        yield  # inside the caller's transaction: the caller commits or rolls back
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def method_label(doc: Mapping[str, Any]) -> str:
    """The `method` column: the method, and for `auto` the method it chose ("auto/platt"); the part after the
    slash is the recipe its evidence is filed under (`document.recipe_of`)."""
    if doc["method"] == "auto":
        return f"auto/{doc['params']['chosen']}"
    return doc["method"]


def record_event(
    con: duckdb.DuckDBPyConnection,
    task_version: str,
    version: str,
    event: str,
    actor: str,
    reason: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one row to calibrator_events (metrics as JSON, never NaN)."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {list(EVENTS)}, got {event!r}")
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("every calibrator event needs an actor (a run id or a person)")
    payload = None if metrics is None else canonical_json(dict(metrics))
    con.execute(
        "INSERT INTO calibrator_events (task_version, version, event, actor, reason, metrics, event_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [task_version, version, event, actor, reason, payload, at or _now()],
    )


def save_calibrator(
    con: duckdb.DuckDBPyConnection,
    document: Mapping[str, Any],
    *,
    actor: str,
    reason: str | None = None,
) -> str:
    """Store a verified document as a candidate and record a `fitted` event; return its version.

    Saving the same document again is a no-op (the version is its content).
    """
    doc = verify_document(document)
    version = doc["version"]
    if con.execute("SELECT 1 FROM calibrators WHERE version = ?", [version]).fetchone():
        return version
    with transaction(con):
        con.execute(
            "INSERT INTO calibrators (version, task_name, task_version, method, status, document, n_labels, created_at) "
            "VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?)",
            [
                version,
                doc["task_name"],
                doc["task_version"],
                method_label(doc),
                canonical_json(doc),
                doc["n_labels"],
                _now(),
            ],
        )
        record_event(con, doc["task_version"], version, "fitted", actor, reason, doc["heldout_metrics"])
    return version


def _row(con: duckdb.DuckDBPyConnection, version: str) -> tuple[str, str]:
    row = con.execute("SELECT task_version, status FROM calibrators WHERE version = ?", [version]).fetchone()
    if row is None:
        raise ValueError(f"no calibrator {version!r} in the store")
    return row


def set_champion(
    con: duckdb.DuckDBPyConnection,
    version: str,
    *,
    actor: str,
    reason: str | None = None,
    event: str = "promoted",
    metrics: Mapping[str, Any] | None = None,
) -> str | None:
    """Make `version` its task_version's only champion, retiring the current one; return the retired version.

    Records `event` (promoted, manual_promote or rollback) for the new champion
    and `retired` for the old one, atomically. A version that already is the
    champion is left as it is (returns None, records nothing).
    """
    if event not in CHAMPION_EVENTS:
        raise ValueError(f"event must be one of {list(CHAMPION_EVENTS)}, got {event!r}")
    task_version, status = _row(con, version)
    if status == "champion":
        return None
    with transaction(con):
        old = con.execute(
            "SELECT version FROM calibrators WHERE task_version = ? AND status = 'champion'", [task_version]
        ).fetchall()
        con.execute(
            "UPDATE calibrators SET status = 'retired' WHERE task_version = ? AND status = 'champion'", [task_version]
        )
        for (previous,) in old:
            record_event(con, task_version, previous, "retired", actor, f"replaced by {version}")
        con.execute("UPDATE calibrators SET status = 'champion' WHERE version = ?", [version])
        record_event(con, task_version, version, event, actor, reason, metrics)
    return old[0][0] if old else None


def champion(con: duckdb.DuckDBPyConnection, task_version: str) -> dict[str, Any] | None:
    """The verified document of the task_version's champion, or None when there is none yet."""
    rows = con.execute(
        "SELECT document FROM calibrators WHERE task_version = ? AND status = 'champion'", [task_version]
    ).fetchall()
    if len(rows) > 1:
        raise RuntimeError(f"task_version {task_version} has {len(rows)} champions; the store is inconsistent")
    return verify_document(rows[0][0]) if rows else None


def document(con: duckdb.DuckDBPyConnection, version: str, task_version: str | None = None) -> dict[str, Any]:
    """The verified JSON document of a stored calibrator (refused when `task_version` is given and differs)."""
    row = con.execute("SELECT document, task_version FROM calibrators WHERE version = ?", [version]).fetchall()
    if not row or (task_version is not None and row[0][1] != task_version):
        where = "" if task_version is None else f" for task_version {task_version}"
        raise ValueError(f"no calibrator {version!r} in the store{where}")
    return verify_document(row[0][0])


def load_version(con: duckdb.DuckDBPyConnection, version: str, task_version: str) -> BaseCalibrator:
    """The stored calibrator `version`, verified (hash, schema) and refused unless fitted for `task_version`."""
    row = con.execute("SELECT document FROM calibrators WHERE version = ?", [version]).fetchall()
    if not row:
        raise ValueError(f"no calibrator {version!r} in the store")
    return load_document(row[0][0], task_version)


def list_calibrators(
    con: duckdb.DuckDBPyConnection, task_version: str | None = None, task_name: str | None = None
) -> list[dict[str, Any]]:
    """Stored calibrators, oldest first: version, task, method, status, n_labels, created_at, fit_window, heldout_metrics."""
    query = "SELECT version, task_name, task_version, method, status, n_labels, created_at, document FROM calibrators"
    where, args = [], []
    if task_version is not None:
        where.append("task_version = ?")
        args.append(task_version)
    if task_name is not None:
        where.append("task_name = ?")
        args.append(task_name)
    if where:
        query += " WHERE " + " AND ".join(where)
    out = []
    for version, name, tv, method, status, n_labels, created_at, document in con.execute(
        query + " ORDER BY created_at, version", args
    ).fetchall():
        doc = json.loads(document)
        out.append(
            {
                "version": version,
                "task_name": name,
                "task_version": tv,
                "method": method,
                "status": status,
                "n_labels": n_labels,
                "created_at": created_at,
                "fit_window": doc.get("fit_window"),
                "heldout_metrics": doc.get("heldout_metrics"),
            }
        )
    return out


def list_events(con: duckdb.DuckDBPyConnection, task_version: str) -> list[dict[str, Any]]:
    """The task_version's calibrator events in the order they happened."""
    rows = con.execute(
        "SELECT version, event, actor, reason, metrics, event_at FROM calibrator_events "
        "WHERE task_version = ? ORDER BY event_at, rowid",
        [task_version],
    ).fetchall()
    return [
        {
            "version": v,
            "event": e,
            "actor": a,
            "reason": r,
            "metrics": None if m is None else json.loads(m),
            "event_at": at,
        }
        for v, e, a, r, m, at in rows
    ]
