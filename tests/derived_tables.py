"""The tables kept beside predictions (migration 016: labeled_predictions, decision_counts), against the recount
migration 017 makes from the predictions as they stand: `differences` says where the kept ones differ from it;
`rebuild` replaces them by it, for fixtures that write predictions or labels directly, as no writer does."""
from __future__ import annotations

import math
from pathlib import Path

from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.migrations import migration_files

TABLES = ("labeled_predictions", "decision_counts")


def _recount_sql() -> str:
    (sql,) = [sql for number, _, sql in migration_files() if number == 17]
    return sql


def rebuild(con) -> None:
    """Replace both tables by a recount, in the caller's connection (and transaction, if any)."""
    for table in TABLES:
        con.execute(f"DELETE FROM {table}")
    con.execute(_recount_sql())


def _snapshot(con) -> tuple[list, dict]:
    copies = sorted(con.execute("SELECT task_version, row_id, hash(p) FROM labeled_predictions p").fetchall())
    counts = {row[:-2]: row[-2:] for row in con.execute(
        "SELECT task_name, task_version, night, segment, bucket, off_format, hundredths, rows, confidence_sum "
        "FROM decision_counts").fetchall()}
    return copies, counts


def differences(path: Path) -> list[str]:
    """Where the kept tables differ from a recount of the warehouse at `path` (nothing is changed: the recount is
    rolled back); [] when they agree, the confidence sums to 1e-9."""
    with writer(path) as con:
        kept_copies, kept_counts = _snapshot(con)
        con.execute("BEGIN TRANSACTION")
        rebuild(con)
        copies, counts = _snapshot(con)
        con.execute("ROLLBACK")
    out = []
    if kept_copies != copies:
        kept, fresh = set(kept_copies), set(copies)
        out.append(f"labeled_predictions: {len(kept_copies)} rows kept, {len(copies)} recounted; "
                   f"kept only: {sorted(kept - fresh)[:3]}, recounted only: {sorted(fresh - kept)[:3]}")
    for key in sorted(set(kept_counts) | set(counts), key=repr):
        kept, fresh = kept_counts.get(key), counts.get(key)
        if kept is None or fresh is None or kept[0] != fresh[0] or not math.isclose(kept[1], fresh[1], rel_tol=1e-9,
                                                                                    abs_tol=1e-9):
            out.append(f"decision_counts {key}: kept {kept}, recounted {fresh}")
    return out
