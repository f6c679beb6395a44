"""Label import: validate against the task's labels, upsert idempotently, keep history.

Label names match case-insensitively. An id that one file gives two different labels is
not imported at all (the report names it), so nothing is chosen silently.

Labels belong to the task's name (a row's truth does not change with the prompt).
Re-importing the same file changes nothing; a different label for an id
supersedes the current one (the old row stays, with `superseded_at` set).
Rows with an unknown label are rejected and reported; valid rows are kept.
Ids that no prediction has yet are kept too (their rows may arrive later) and
reported.

Every label is stored with its sampling design (`DESIGNS`), which decides whether it certifies:
- `audit`: from a `labels sample` audit sample; weight 1 / its inclusion probability (from the file's
  `inclusion_prob` column, else the sample it was drawn in);
- `random`: the file's ids are a simple random sample of the rows this task version scored, so each was
  included with probability n / N (n of its ids among those N rows): equal weights;
- `convenience`: chosen some other way (a review queue, hand-picked); no weights. Accuracy tables show
  these with a warning, and `thresholds` never certifies with them.
Without a declared design a label is `audit` when an inclusion probability is known, else `convenience`.
Re-importing a label with another design supersedes it like a correction does.
"""
from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.read_copy import publish_read_copy
from calscore.jobs.warehouse.statements import statement

DESIGNS = ("random", "audit", "convenience")
CONVENIENCE_WARNING = (
    "{n} label(s) are convenience labels (no sampling design declared): accuracy tables show them with a "
    "warning and `thresholds` never certifies with them; if the ids are a simple random sample of the scored "
    "rows, import the file again with --design random"
)

# An id, a label or a text kept beside them (a `labels sample` file carries the text): anything longer is absurd.
MAX_CELL_CHARS = 1_000_000
MAX_ROW_CHARS = 4_000_000
_CSV_BLOCK_BYTES = 4 * MAX_ROW_CHARS + 4  # UTF-8: a row within the limits fits in one of pyarrow's blocks
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class LabelFileError(CalscoreError, ValueError):
    """A label source that cannot be read at all."""


@dataclass
class ImportReport:
    source: str
    rows_read: int = 0
    inserted: int = 0
    superseded: int = 0
    unchanged: int = 0
    rejected: list[dict] = field(default_factory=list)  # {row, id, label, reason}
    unknown_ids: int = 0
    conflicts: list[str] = field(default_factory=list)  # ids given different labels in this file
    import_id: str = ""
    redeclared: int = 0  # same label as before, another design (in `inserted`, not in `superseded`)
    designs: dict[str, int] = field(default_factory=dict)  # this import's kept labels by design
    random_sample: tuple[int, int] | None = None  # design random: (ids among the scored rows, scored rows)

    def lines(self) -> list[str]:
        out = [
            f"{self.source}: {self.rows_read} rows read; {self.inserted} new label(s) "
            f"({self.superseded} correcting an earlier one), {self.unchanged} unchanged, "
            f"{len(self.rejected)} rejected",
        ]
        if self.designs:
            out.append("  design: " + ", ".join(f"{n} {d}" for d, n in sorted(self.designs.items()))
                       + (f" ({self.redeclared} re-declared: same label, another design)" if self.redeclared else ""))
        if self.random_sample:
            n, population = self.random_sample
            out.append(f"  random sample: {n} of the {population} rows this task version scored, each included "
                       f"with probability {n / population:.4g} (equal weights)")
        if self.designs.get("convenience"):
            out.append("  " + CONVENIENCE_WARNING.format(n=self.designs["convenience"]))
        if self.unknown_ids:
            out.append(f"  {self.unknown_ids} label(s) for ids with no prediction yet (kept)")
        if self.conflicts:
            shown = ", ".join(self.conflicts[:10]) + (", ..." if len(self.conflicts) > 10 else "")
            out.append(f"  {len(self.conflicts)} id(s) have conflicting labels in this file and were not imported: "
                       f"{shown} (fix the file and import it again)")
        for r in self.rejected[:10]:
            out.append(f"  rejected row {r['row']}: id={r['id']!r} label={r['label']!r}: {r['reason']}")
        if len(self.rejected) > 10:
            out.append(f"  ... and {len(self.rejected) - 10} more rejected rows")
        return out


def _too_large(source: str, where: str) -> LabelFileError:
    return LabelFileError(f"{source}: {where} has a cell longer than {MAX_CELL_CHARS:,} characters, the limit per "
                          "cell: nothing was imported")


def _check_csv_sizes(path: Path) -> None:
    """Refuse a CSV with a cell or row over the limits, naming it, before pyarrow reads it (its reader fails on
    a row longer than its block with 'straddling object straddles two block boundaries')."""
    limit = csv.field_size_limit(MAX_CELL_CHARS)
    row = -1  # data rows count from 0, as in the import's report; -1 is the header
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            rows = csv.reader(f)
            for row, cells in enumerate(rows, start=-1):
                if sum(map(len, cells)) > MAX_ROW_CHARS:
                    raise LabelFileError(f"{path}: row {row} (line {rows.line_num}) is longer than "
                                         f"{MAX_ROW_CHARS:,} characters, the limit per row: nothing was imported")
    except csv.Error as exc:
        if "field limit" not in str(exc):
            raise LabelFileError(f"{path}: cannot read labels ({exc})") from None
        raise _too_large(str(path), f"row {row + 1} (line {rows.line_num})") from None
    except OSError as exc:
        raise LabelFileError(f"{path}: cannot read labels ({exc})") from None
    finally:
        csv.field_size_limit(limit)


def _check_cell_sizes(table: pa.Table, source: str) -> None:
    """Refuse ids and labels over the cell limit (from Parquet or a table), naming the first such row."""
    for column in ("id", "label"):
        if column in table.column_names:
            lengths = pc.fill_null(pc.utf8_length(pc.cast(table[column], pa.string())), 0)
            first = pc.index(pc.greater(lengths, MAX_CELL_CHARS), True).as_py()
            if first >= 0:
                raise _too_large(source, f"row {first}")


def read_label_file(path: Path) -> pa.Table:
    """Read a Parquet or CSV label file (columns id, label, optional inclusion_prob)."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: no such file")
    csv_file = path.suffix.lower() == ".csv"
    if csv_file:
        _check_csv_sizes(path)
    try:
        table = (pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                                convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()}))
                 if csv_file else pq.read_table(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise LabelFileError(f"{path}: cannot read labels ({exc})") from None
    _check_cell_sizes(table, str(path))
    return table


def read_label_table(spec: TaskSpec, name: str) -> pa.Table:
    """Read an analyst's table of labels from the warehouse (name validated, not interpolated blindly)."""
    if not _IDENTIFIER.match(name):
        raise LabelFileError(f"{name!r} is not a valid table name (letters, digits, '_', optional schema prefix)")
    with reader(spec.warehouse.path) as con:
        try:
            table = con.sql(f"SELECT * FROM {name}").to_arrow_table()
        except Exception as exc:  # duckdb raises CatalogException for a missing table
            raise LabelFileError(f"table {name}: {exc}") from None
    _check_cell_sizes(table, f"table {name}")
    return table


def _validate(spec: TaskSpec, table: pa.Table, source: str) -> tuple[pa.Table, list[dict], list[str]]:
    """Rows to import, rejected rows (with reasons), and ids whose rows in this file disagree.

    Label names match case-insensitively ('POSITIVE' is the task's 'positive'). An id given
    twice with the same label counts once; an id given different labels in one file is a
    conflict: none of its rows is imported, and the report names it.
    """
    missing = [c for c in ("id", "label") if c not in table.column_names]
    if missing:
        raise LabelFileError(f"{source}: missing column(s) {missing} (columns: {table.column_names})")
    ids = pc.cast(table["id"], pa.string()).to_pylist()
    labels = pc.cast(table["label"], pa.string()).to_pylist()
    probs = (
        pc.cast(table["inclusion_prob"], pa.float64()).to_pylist()
        if "inclusion_prob" in table.column_names
        else [None] * table.num_rows
    )
    canonical = {name.casefold(): name for name in spec.label_names}
    rows_of: dict[str, list[int]] = {}
    found: dict[int, tuple[str, float | None]] = {}
    rejected = []
    for i, (row_id, label, prob) in enumerate(zip(ids, labels, probs)):
        name = canonical.get(label.strip().casefold()) if label is not None else None
        reason = None
        if row_id is None or row_id == "":
            reason = "missing id"
        elif name is None:
            reason = f"unknown label (task labels: {', '.join(spec.label_names)}; case does not matter)"
        elif prob is not None and not (0.0 < prob <= 1.0):
            reason = "inclusion_prob must be in (0, 1]"
        if reason:
            rejected.append({"row": i, "id": row_id, "label": label, "reason": reason})
            continue
        found[i] = (name, prob)
        rows_of.setdefault(row_id, []).append(i)
    conflicts = sorted(row_id for row_id, rows in rows_of.items() if len({found[i][0] for i in rows}) > 1)
    for row_id in conflicts:
        given = ", ".join(f"row {i}: {found[i][0]}" for i in rows_of[row_id])
        rejected += [{"row": i, "id": row_id, "label": found[i][0], "reason": f"conflicting labels in this file ({given})"}
                     for i in rows_of[row_id]]
    refused = set(conflicts)
    keep = {row_id: found[rows[-1]] for row_id, rows in rows_of.items() if row_id not in refused}
    valid = pa.table(
        {
            "row_id": pa.array(list(keep), pa.string()),
            "label": pa.array([v[0] for v in keep.values()], pa.string()),
            "inclusion_prob": pa.array([v[1] for v in keep.values()], pa.float64()),
        }
    )
    return valid, sorted(rejected, key=lambda r: r["row"]), conflicts


def check_design(design: str | None) -> str | None:
    """`design` if it is one of `DESIGNS` (or None: decided per label by its inclusion probability)."""
    if design is not None and design not in DESIGNS:
        raise LabelFileError(f"unknown label design {design!r} (one of: {', '.join(DESIGNS)})")
    return design


def _random_sample(con, spec: TaskSpec, valid: pa.Table, source: str) -> tuple[pa.Table, tuple[int, int]]:
    """The labels with their inclusion probability as a simple random sample of the scored rows: n / N."""
    population, sampled = con.execute(
        statement("labels_random_population"), {"task_version": spec.task_version}
    ).fetchall()[0]
    if not sampled:
        raise LabelFileError(
            f"{source}: --design random says these ids are a random sample of the rows task_version "
            f"{spec.task_version} scored, but none of them is one of its {population} rows")
    prob = pa.array([sampled / population] * valid.num_rows, pa.float64())
    return valid.set_column(valid.column_names.index("inclusion_prob"), "inclusion_prob", prob), (sampled, population)


def _reject_audit_without_probability(con, table: pa.Table, report: ImportReport) -> None:
    """Design audit: a label whose row has no inclusion probability (file or audit sample) is refused."""
    missing = con.execute("SELECT row_id, label FROM resolved WHERE inclusion_prob IS NULL ORDER BY row_id").fetchall()
    if not missing:
        return
    con.execute("DELETE FROM resolved WHERE inclusion_prob IS NULL")
    first_row = {}
    for i, row_id in enumerate(pc.cast(table["id"], pa.string()).to_pylist()):
        first_row.setdefault(row_id, i)
    reason = ("--design audit, but no inclusion probability (no inclusion_prob column, and the id is in no "
              "`labels sample` audit sample); declare --design random or convenience")
    report.rejected += [{"row": first_row[row_id], "id": row_id, "label": label, "reason": reason}
                        for row_id, label in missing]
    report.rejected.sort(key=lambda r: r["row"])


def import_labels(spec: TaskSpec, table: pa.Table, source: str, design: str | None = None) -> ImportReport:
    """Validate and upsert labels in one transaction, each with its sampling design (module docstring;
    None: audit when an inclusion probability is known, else convenience); return what happened."""
    check_design(design)
    if design == "random" and "inclusion_prob" in table.column_names:
        raise LabelFileError(
            f"{source}: --design random gives every label the same inclusion probability (n / rows scored); "
            "this file has an inclusion_prob column: import it with --design audit, or drop the column")
    valid, rejected, conflicts = _validate(spec, table, source)
    report = ImportReport(source=source, rows_read=table.num_rows, rejected=rejected, conflicts=conflicts)
    pairs = "\n".join(f"{i}\t{l}" for i, l in zip(valid["row_id"].to_pylist(), valid["label"].to_pylist()))
    digest = hashlib.sha256((pairs + (f"\n{design}" if design else "")).encode()).hexdigest()[:12]
    report.import_id = f"{source}:{digest}"
    now = utcnow()
    with writer(spec.warehouse.path) as con:
        con.register("incoming", valid)
        if design == "random" and valid.num_rows:
            valid, report.random_sample = _random_sample(con, spec, valid, source)
            con.register("incoming", valid)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(statement("labels_resolve_incoming"), {"task_name": spec.name, "design": design})
            if design == "audit":
                _reject_audit_without_probability(con, table, report)
            report.designs = dict(con.execute("SELECT design, count(*) FROM resolved GROUP BY design").fetchall())
            report.unchanged = con.execute("SELECT count(*) FROM resolved WHERE NOT changed").fetchall()[0][0]
            report.redeclared = con.execute(
                "SELECT count(*) FROM resolved WHERE changed AND label = current_label").fetchall()[0][0]
            report.superseded = con.execute(
                statement("labels_supersede_changed"), {"task_name": spec.name, "now": now}
            ).fetchall()[0][0] - report.redeclared
            report.inserted = con.execute(
                statement("labels_insert_changed"),
                {"task_name": spec.name, "source": source, "now": now, "import_id": report.import_id},
            ).fetchall()[0][0]
            con.execute(statement("predictions_of_resolved"), {"task_name": spec.name})
            report.unknown_ids = con.execute(statement("labels_count_unknown_ids")).fetchall()[0][0]
            con.execute(statement("predictions_dequeue_labeled"))
            # a row labeled for the first time: its predictions join the labeled rows' copy (migration 016)
            con.execute(statement("labeled_predictions_insert_labeled"))
            con.execute("DROP TABLE resolved_predictions")
            con.execute("DROP TABLE resolved")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    publish_read_copy(spec.warehouse.path)
    return report


def new_labels_since_last_fit(spec: TaskSpec) -> int:
    """Current labels imported after the newest calibrator of this task was fitted."""
    with reader(spec.warehouse.path) as con:
        return con.execute(statement("labels_count_new_since_last_fit"), {"task_name": spec.name}).fetchall()[0][0]
