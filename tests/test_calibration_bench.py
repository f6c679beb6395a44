"""bench/bench_calibration.py prints raw vs cross-fitted methods as a markdown table."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.calibration_store import metrics
from synthetic_scores import synthetic_scores

REPO = Path(__file__).resolve().parents[1]


def test_bench_prints_a_markdown_table_of_held_out_figures(tmp_path):
    s = synthetic_scores(400, 2, scale=2.5, lean=1.0, seed=41)
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"label_logprobs": s.logprobs.tolist(), "y": s.y}), path)
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_calibration.py"), str(path),
         "--labels", "negative", "positive", "--methods", "platt", "isotonic", "--folds", "3"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| method | accuracy | ECE(15) | NLL | Brier | seconds |"
    rows = {cells[0]: [float(c) for c in cells[1:5]] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    assert list(rows) == ["raw", "platt", "isotonic"]
    raw = metrics.raw_probs(s.logprobs)
    assert rows["raw"] == [round(v, 4) for v in (metrics.accuracy(raw, s.y), metrics.ece(raw, s.y),
                                                 metrics.nll(raw, s.y), metrics.brier(raw, s.y))]
    assert rows["platt"][2] < rows["raw"][2] and rows["platt"][1] < rows["raw"][1]
