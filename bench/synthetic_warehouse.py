"""A synthetic warehouse of any size, grown by SQL (never by scoring), for the scale benchmark and tests.

`build_warehouse(folder, rows)` writes `folder/task.toml` and `folder/calscore.duckdb` holding `rows`
predictions of the demo's shape (synthetic_rows.sql): 28 nights, four segments, a 2% audit sample labeled, the
first quarter of the nights scored before any calibrator and re-decided by the champion fitted on their labels,
the rest scored with it (synthetic_fill.sql). The rows are written on the schema of migration 003 and the real
migrations then bring the file up to date, so every later migration (and its backfill) runs on rows that
already exist, as it would on a user's warehouse.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np

from calscore.calibration_store.document import build_document
from calscore.calibration_store.evaluation import heldout_report
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import save_calibrator, set_champion
from calscore.jobs.spec import TaskSpec, load_spec
from calscore.jobs.warehouse.migrations import ensure_views, migrate, migration_files

HERE = Path(__file__).resolve().parent
LABELS = ("positive", "negative")
FILLED_SCHEMA = 3  # the schema the fill SQL writes
NIGHTS = 28

TASK_FILE = """name = "synthetic"
coverage_floor = 0.5

[model]
hub_id = "example/synthetic-sentiment"
revision = "0"

[prompt]
template = "Review: {{text}}\\nSentiment:"

[labels]
positive = ["positive", "Positive"]
negative = ["negative", "Negative"]

[input]
location = "batches"
segment_column = "category"

[warehouse]
path = "calscore.duckdb"

[calibration]
method = "auto"
min_labels = 100
folds = 5
reapply_days = {reapply_days}
"""
FIRST_NIGHT = date(2025, 3, 1)  # synthetic_rows.sql's first night (scored from 22:00 UTC)


def week_before_last_night() -> int:
    """[calibration] reapply_days for a window of the synthetic nights' last week, as a promotion re-applies a new
    champion to a live warehouse's (the nights lie in the past)."""
    return (date.today() - FIRST_NIGHT).days - (NIGHTS - 7)


def _schema_of_migration(con: duckdb.DuckDBPyConnection, last: int, after: int = 0) -> None:
    """The warehouse schema as migrations 001..`last` leave it, applying those after `after` (recorded, so
    `migrate` applies the rest)."""
    if after == 0:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL)")
    for number, name, sql in migration_files():
        if after < number <= last:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        [number, name, datetime.now(timezone.utc)])


def _store_champion(con: duckdb.DuckDBPyConnection, spec: TaskSpec, calibrated_from: int) -> tuple[str, float]:
    """Fit temperature scaling on the labels of the nights before `calibrated_from` and make it the champion."""
    where = "audited and night_index < ?"
    fit = con.execute(
        "select ln(coverage) - ln(1 + exp(-model_log_odds)) as positive,"
        " ln(coverage) - ln(1 + exp(model_log_odds)) as negative, cast(true_label = 'negative' as integer) as y"
        f" from synthetic_rows where {where} order by row_id", [calibrated_from]
    ).fetchnumpy()
    window = con.execute(f"select min(scored_at), max(scored_at) from synthetic_rows where {where}",
                         [calibrated_from]).fetchone()
    x, y = np.column_stack([fit[label] for label in LABELS]), fit["y"].astype(np.int64)
    cal = make_calibrator("temperature", list(LABELS)).fit(x, y)
    report = heldout_report("temperature", list(LABELS), x, y, np.ones(len(y)), folds=5)
    doc = build_document(cal, spec.name, spec.task_version, window, len(y),
                         {k: report[k] for k in ("n", "accuracy", "ece", "nll", "brier")})
    version = save_calibrator(con, doc, actor="synthetic", reason="fitted on the first nights' audit labels")
    set_champion(con, version, actor="synthetic", reason="first calibrator: no champion yet", event="promoted")
    return version, cal.temperature_


def build_warehouse(folder: Path, rows: int, labeled_share: float = 0.02, seed: int = 13,
                    schema: int | None = None) -> TaskSpec:
    """Write folder/task.toml and a warehouse of `rows` synthetic predictions beside it (`labeled_share` of them
    audited and labeled), migrated to the latest schema or to `schema` (an older one, to time or interrupt the
    migrations after it); return the task."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.toml").write_text(TASK_FILE.format(reapply_days=week_before_last_night()), encoding="utf-8")
    spec = load_spec(folder / "task.toml")
    calibrated_from = NIGHTS // 4
    with duckdb.connect(str(spec.warehouse.path)) as con:
        con.execute("SET enable_progress_bar = false")
        _schema_of_migration(con, FILLED_SCHEMA)
        for name, value in (("seed", seed), ("rows", rows), ("nights", NIGHTS), ("labeled_share", labeled_share),
                            ("task_name", spec.name), ("task_version", spec.task_version),
                            ("calibrated_from", calibrated_from)):
            con.execute(f"SET VARIABLE {name} = ?", [value])
        con.execute((HERE / "synthetic_rows.sql").read_text(encoding="utf-8"))
        champion, temperature = _store_champion(con, spec, calibrated_from)
        con.execute("SET VARIABLE champion = ?", [champion])
        con.execute("SET VARIABLE temperature = ?", [temperature])
        con.execute((HERE / "synthetic_fill.sql").read_text(encoding="utf-8"))
        if schema is not None:
            _schema_of_migration(con, schema, after=FILLED_SCHEMA)
            return spec
        migrate(con)
        ensure_views(con)
    return spec
