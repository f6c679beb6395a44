"""Score one Parquet file with any scorer, without Prefect or the warehouse: for ad-hoc runs and benchmarks.

    summary = score_file(scorer, "in.parquet", "out.parquet", text_column="text")
    # {'rows': 872, 'seconds': 31.2, 'rows_per_s': 27.9, ...}

The input is streamed in record batches and the output written batch by batch,
so memory does not grow with the file. Every input column is kept (id, text,
metadata) and the score columns are appended, with each label's log-probability
also in a column of its own name (`logprob_<label>`), so a reader needs no task
file to know which list entry is which label. Rows with null text get null
scores and are counted (the nightly flow quarantines them before scoring).
"""
from __future__ import annotations

import time
from pathlib import Path

from calscore.jobs.scoring.scorer import Scorer
from calscore.jobs.scoring.streaming import iter_scores


def rows_progress(enabled: bool = True, console=None):
    """A rich progress bar of rows: the task's description, the bar, done/total rows, rows/s, elapsed, ETA.
    Also the bar of `calscore score` on a terminal (calscore.cli.progress), one task per batch."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class RowsPerSecond(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task):  # noqa: D102 - rich API
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:6.1f} rows/s" if speed else "   -- rows/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
        console=console,
    )


def _named_label_columns(table, labels: tuple[str, ...]):
    """`label_logprobs` (a list in label order) also as one `logprob_<label>` column per label."""
    import pyarrow.compute as pc

    for i, label in enumerate(labels):
        table = table.append_column(f"logprob_{label}", pc.list_element(table.column("label_logprobs"), i))
    return table


def score_file(
    scorer: Scorer,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_column: str = "text",
    progress: bool = True,
    read_rows: int = 1024,
) -> dict:
    """Score every row of a Parquet file into a new Parquet file; return a summary dict."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from calscore.jobs.scoring.schema import SCORE_FIELDS

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file not found: {input_path}")
    source = pq.ParquetFile(input_path)
    if text_column not in source.schema_arrow.names:
        raise KeyError(
            f"{input_path} has no text column {text_column!r} (columns: {source.schema_arrow.names}); "
            "set [input] text_column in the task file"
        )
    clashes = sorted({f"logprob_{label}" for label in scorer.labels} & set(source.schema_arrow.names))
    if clashes:
        raise KeyError(f"{input_path} already has column(s) {clashes}, which the output names its label scores")
    total = source.metadata.num_rows
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".partial")
    rows = nulls = truncated = 0
    writer = None
    started = time.perf_counter()
    try:
        with rows_progress(progress) as bar:
            task = bar.add_task("scoring", total=total)
            batches = source.iter_batches(batch_size=read_rows)
            for scored in iter_scores(scorer, batches, text_column, null_text="null"):
                table = _named_label_columns(scored, scorer.labels)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += table.num_rows
                nulls += table.column(text_column).null_count
                truncated += int(pc.sum(table.column("truncated")).as_py() or 0)
                bar.update(task, advance=table.num_rows)
        if writer is None:  # an empty input still gives a file with the full schema
            empty = pa.schema(list(source.schema_arrow) + SCORE_FIELDS).empty_table()
            writer = pq.ParquetWriter(tmp, _named_label_columns(empty, scorer.labels).schema)
        writer.close()
        writer = None
        tmp.replace(output_path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    described = scorer.describe()
    return {
        "input": str(input_path),
        "output": str(output_path),
        "rows": rows,
        "null_text_rows": nulls,
        "truncated_rows": truncated,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 2) if seconds > 0 else None,
        "model": described["model"],
        "dtype": described["dtype"],
        "precision": described["precision"],
        "device": described["device"],
    }
