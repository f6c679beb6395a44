"""Loading report data from the warehouse: read-only, through the views.

Only labeled rows and fixed-size counts leave DuckDB: the report's volumes are
counted there (`load_counts`), so its memory grows with the labels, never with
the number of predictions.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store.store import champion
from calscore.jobs.warehouse.views import create_views
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


# What a report reads is counted in DuckDB or bounded by the labels, so its session needs little memory; left at
# DuckDB's default (80% of RAM) it would also keep every block of the file it scanned, growing with the warehouse.
REPORT_MEMORY_LIMIT = "256MB"


@contextmanager
def report_connection(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection with the analyst views as session (TEMP) views: never locks out the writer."""
    with reader(path) as con:
        con.execute(f"SET memory_limit = '{REPORT_MEMORY_LIMIT}'")
        create_views(con, temporary=True)
        yield con


def parse_night(night: date | str | None) -> date | None:
    """A night as a date ('2025-03-02' or a date); None means every night."""
    if night is None or isinstance(night, date):
        return night
    try:
        return date.fromisoformat(str(night))
    except ValueError:
        raise ValueError(f"night must be a date like 2025-03-02, got {night!r}") from None


def _records(rel: duckdb.DuckDBPyRelation) -> list[dict]:
    return rel.to_arrow_table().to_pylist()


def _column(table: pa.Table, name: str, dtype=None) -> np.ndarray:
    """One Arrow column as numpy: floats with NaN for NULL, booleans with False for NULL, else objects."""
    col = table.column(name)
    if dtype is float:
        return pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy()
    if dtype is bool:
        return pc.fill_null(col, False).to_numpy()
    return col.to_numpy().astype(object)


@dataclass(frozen=True)
class ReportRows:
    """Predictions of a task version (optionally one night) with their current decision and label, row by row.

    A labeled row carries what judges it (predictions_current.evidence_*): the decision itself when the deciding
    calibrator never saw the row, else its recipe's out-of-fold prediction, with the bucket that one gets."""

    row_id: np.ndarray
    night: np.ndarray
    segment: np.ndarray
    bucket: np.ndarray
    off_format: np.ndarray           # bool: the model answered off-format (coverage floor)
    label: np.ndarray                # calibrated prediction
    confidence: np.ndarray           # calibrated confidence; NaN when uncalibrated
    decision_confidence: np.ndarray  # what the buckets were cut on (raw when uncalibrated)
    raw_label: np.ndarray
    raw_confidence: np.ndarray
    is_labeled: np.ndarray
    is_audit_label: np.ndarray       # certifies: a held-out label of a sampling design
    label_design: np.ndarray         # audit, random, convenience; None when unlabeled
    evidence_basis: np.ndarray       # held_out, out_of_fold; None when not judged
    label_weight: np.ndarray         # 1 / inclusion probability (1 when unknown); NaN when unlabeled
    is_correct: np.ndarray           # judged prediction == current label (False when unlabeled)
    raw_correct: np.ndarray

    def __len__(self) -> int:
        return int(self.row_id.shape[0])

    @property
    def calibrated_labeled(self) -> np.ndarray:
        """Labeled rows that have a calibrated confidence: the rows a reliability diagram compares."""
        return self.is_labeled & ~np.isnan(self.confidence)

    def take(self, mask: np.ndarray) -> "ReportRows":
        return ReportRows(**{k: v[mask] for k, v in self.__dict__.items()})


_ROW_COLUMNS = (
    "row_id, night, coalesce(segment, '(none)') as segment,"
    " case when is_labeled then evidence_bucket else bucket end as bucket,"
    " coalesce(case when is_labeled then evidence_bucket_reason else bucket_reason end = 'off_format', false)"
    " as off_format,"
    " case when is_labeled then evidence_label else label end as label,"
    " case when evidence_basis = 'out_of_fold' then evidence_confidence else confidence end as confidence,"
    " case when is_labeled then evidence_confidence else decision_confidence end as decision_confidence,"
    " raw_label, raw_confidence, is_labeled, is_audit_label, label_design, evidence_basis, label_weight,"
    " coalesce(is_correct, false) as is_correct, coalesce(raw_correct, false) as raw_correct"
)


def _night_filter(task_version: str, night: date | None, up_to: bool = False) -> tuple[str, list]:
    where, args = "task_version = ?", [task_version]
    if night is not None:
        where, args = where + (" and night <= ?" if up_to else " and night = ?"), args + [night]
    return where, args


def load_rows(
    con: duckdb.DuckDBPyConnection, task_version: str, night: date | str | None = None, labeled_only: bool = False,
    up_to: bool = False,
) -> ReportRows:
    """The task version's predictions (one night, with `up_to` every night up to it, or all), ordered by row id;
    with `labeled_only`, the rows with a judged label (`is_labeled`), which is all the report reads row by row."""
    where, args = _night_filter(task_version, parse_night(night), up_to)
    if labeled_only:
        where += " and is_labeled"
    # the labeled rows from their copy (migration 016): never a scan of every prediction
    view = "labeled_predictions_current" if labeled_only else "predictions_current"
    table = con.sql(f"select {_ROW_COLUMNS} from {view} where {where} order by row_id", params=args).to_arrow_table()
    floats = {"confidence", "decision_confidence", "raw_confidence", "label_weight"}
    bools = {"off_format", "is_labeled", "is_audit_label", "is_correct", "raw_correct"}
    return ReportRows(
        **{
            name: _column(table, name, float if name in floats else bool if name in bools else None)
            for name in ReportRows.__dataclass_fields__
        }
    )


@dataclass(frozen=True)
class RowCounts:
    """How many predictions fall in each night x segment x bucket x off-format x hundredth of decision confidence
    (`hundredths` h: h / 100 <= confidence < (h + 1) / 100; -1 when there is none)."""

    night: np.ndarray
    segment: np.ndarray
    bucket: np.ndarray
    off_format: np.ndarray
    hundredths: np.ndarray
    rows: np.ndarray

    @property
    def total(self) -> int:
        return int(self.rows.sum())

    def of_night(self, night: date | None) -> "RowCounts":
        """The groups of one night (all of them for None)."""
        if night is None:
            return self
        keep = self.night == night
        return RowCounts(**{k: v[keep] for k, v in self.__dict__.items()})

    def by_night(self) -> dict[date, dict[str, tuple[int, int]]]:
        """{night: {bucket: (rows, off-format rows)}}, oldest night first."""
        out: dict[date, dict[str, tuple[int, int]]] = {}
        for night, bucket, off, n in sorted(zip(self.night.tolist(), self.bucket.tolist(), self.off_format.tolist(),
                                                self.rows.tolist()), key=lambda g: g[0]):
            rows, off_rows = out.setdefault(night, {}).get(bucket, (0, 0))
            out[night][bucket] = (rows + n, off_rows + n * off)
        return out

    def by_bucket(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """{bucket: rows}, of the groups in `mask` (all by default)."""
        keep = np.ones(self.rows.shape[0], dtype=bool) if mask is None else mask
        out: dict[str, int] = {}
        for name, n in zip(self.bucket[keep].tolist(), self.rows[keep].tolist()):
            out[name] = out.get(name, 0) + n
        return out

    def by_segment(self) -> dict[str, dict[str, int]]:
        """{segment: {bucket: rows}}."""
        return {name: self.by_bucket(self.segment == name) for name in dict.fromkeys(self.segment.tolist())}

    def at_or_above(self, thresholds: Sequence[float]) -> tuple[list[int], int]:
        """(rows at or above each threshold that are not off-format, all rows): a threshold table's volume.
        Thresholds are whole hundredths, as the report's are."""
        ok = ~self.off_format
        return [int(self.rows[ok & (self.hundredths >= round(100 * t))].sum()) for t in thresholds], self.total


def load_counts(con: duckdb.DuckDBPyConnection, task_version: str, night: date | str | None = None,
                up_to: bool = False) -> RowCounts:
    """The task version's predictions (one night, all nights for None; with `up_to` every night up to it, each
    night's groups apart, else `night` is None in every group) counted in DuckDB (see RowCounts)."""
    night = parse_night(night)
    table = con.sql(
        statement("report_row_counts"), params={"task_version": task_version, "night": night, "up_to": up_to}
    ).to_arrow_table()
    return RowCounts(
        night=table.column("night").to_numpy(zero_copy_only=False),
        segment=_column(table, "segment"),
        bucket=_column(table, "bucket"),
        off_format=_column(table, "off_format", bool),
        hundredths=table.column("hundredths").to_numpy(),
        rows=table.column("rows").to_numpy(),
    )


def nights(con: duckdb.DuckDBPyConnection, task_version: str) -> list[date]:
    """Nights with predictions, oldest first."""
    rows = con.execute(
        "select distinct night from decision_counts where task_version = ? order by night", [task_version]
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class LabeledScores:
    """Stored raw label log-probabilities of the labeled rows, with their labels and weights."""

    row_id: np.ndarray
    logprobs: np.ndarray  # (n, K) in the task's label order
    y: np.ndarray         # index of the true label
    weight: np.ndarray


def calibrator_history(con: duckdb.DuckDBPyConnection, task_version: str) -> list[dict]:
    """calibrator_history rows (one per event), in the order they happened; metrics parsed from JSON."""
    out = _records(
        con.sql(
            "select * from calibrator_history where task_version = ? order by coalesce(event_at, created_at), version",
            params=[task_version],
        )
    )
    for row in out:
        row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else None
    return out


def calibration_trend(con: duckdb.DuckDBPyConnection, task_version: str, segment: str = "all") -> list[dict]:
    """calibration_trend rows of the task version for one segment ('all' by default), oldest first."""
    return _records(
        con.sql(
            "select * from calibration_trend where task_version = ? and segment = ? order by created_at, scores",
            params=[task_version, segment],
        )
    )


def health_checks(con: duckdb.DuckDBPyConnection, task_name: str, nights: int = 7) -> list[dict]:
    """health_nightly rows of the task's last `nights` nights with checks, newest night first."""
    return _records(
        con.sql(
            "select * from health_nightly where task_name = ? and night in"
            " (select distinct night from health_nightly where task_name = ? order by night desc limit ?)"
            " order by night desc, check_name",
            params=[task_name, task_name, nights],
        )
    )


def champion_method(con: duckdb.DuckDBPyConnection, task_version: str) -> str | None:
    """The champion calibrator's method (for `auto`, the method it chose), or None when there is none."""
    doc = champion(con, task_version)
    if doc is None:
        return None
    return doc["params"]["chosen"] if doc["method"] == "auto" else doc["method"]
