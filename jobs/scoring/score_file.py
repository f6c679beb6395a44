"""Score one Parquet file with a task's model, without Prefect: for ad-hoc runs and benchmarks.

    summary = score_file(spec, "in.parquet", "out.parquet")
    # {'rows': 872, 'seconds': 31.2, 'rows_per_s': 27.9, ...}

The input is streamed in record batches and the output written batch by batch,
so memory does not grow with the file. Every input column is kept (id, text,
metadata) and the score columns are appended. Rows with null text get null
scores and are counted (the nightly flow quarantines them before scoring).
"""
from __future__ import annotations

import time
from pathlib import Path

from calscore.jobs.spec import TaskSpec


def _progress(total: int, enabled: bool):
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
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def score_file(
    spec: TaskSpec,
    input_path: str | Path,
    output_path: str | Path,
    *,
    progress: bool = True,
    dtype_override: str | None = None,
    token_budget: int | None = None,
    read_rows: int = 1024,
    scorer=None,
) -> dict:
    """Score every row of a Parquet file into a new Parquet file; return a summary dict.

    `scorer` reuses an already built FirstTokenScorer (then `dtype_override` and
    `token_budget` are ignored).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from calscore.jobs.scoring.engine import FirstTokenScorer
    from calscore.jobs.scoring.model_loading import load_model

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file not found: {input_path}")
    source = pq.ParquetFile(input_path)
    text_column = spec.input.text_column
    if text_column not in source.schema_arrow.names:
        raise KeyError(
            f"{input_path} has no text column {text_column!r} (columns: {source.schema_arrow.names}); "
            "set [input] text_column in the task file"
        )
    if scorer is None:
        scorer = FirstTokenScorer(load_model(spec.model, dtype_override=dtype_override), spec, token_budget=token_budget)
    total = source.metadata.num_rows
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".partial")
    rows = nulls = truncated = 0
    writer = None
    started = time.perf_counter()
    try:
        with _progress(total, progress) as bar:
            task = bar.add_task("score", total=total)
            batches = source.iter_batches(batch_size=read_rows)
            for table in scorer.iter_score(batches, text_column, null_text="null"):
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += table.num_rows
                nulls += table.column(text_column).null_count
                truncated += int(pc.sum(table.column("truncated")).as_py() or 0)
                bar.update(task, advance=table.num_rows)
        if writer is None:  # an empty input still gives a file with the full schema
            import pyarrow as pa

            from calscore.jobs.scoring.engine import SCORE_FIELDS

            schema = pa.schema(list(source.schema_arrow) + SCORE_FIELDS)
            writer = pq.ParquetWriter(tmp, schema)
        writer.close()
        writer = None
        tmp.replace(output_path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return {
        "input": str(input_path),
        "output": str(output_path),
        "rows": rows,
        "null_text_rows": nulls,
        "truncated_rows": truncated,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 2) if seconds > 0 else None,
        "model": scorer.loaded.reference,
        "dtype": scorer.loaded.dtype,
        "device": scorer.loaded.device,
        "task_version": spec.task_version,
    }
