"""The demo story on the embedded default, end to end (what `make demo` runs).

Night 1 scores 1,000 rows with no calibrator; an audit sample of 600 of them is
"labeled" from the demo's hidden labels and imported, which triggers a
recalibration; night 2 scores 1,000 new rows with the champion, if one was promoted. Night 2's
hidden labels were never used for fitting, so its figures are honest.

`run_finetune_demo` adds fine-tuning: a LoRA adapter trained on night 1's audit labels
(oldest three quarters train, the newest quarter validates), judged on night 2's hidden
labels, which neither the adapter nor any calibrator saw, per segment with the neutral rows
told apart by domain (the hidden rule: sports facts positive, workplace facts negative).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.flows.labels import ingest_labels
from calscore.flows.nightly import nightly_scoring
from calscore.jobs.demo.data import NEUTRAL_DOMAIN, write_demo_batches
from calscore.jobs.common.clock import utcnow
from calscore.jobs.demo.evaluation import evaluate_run
from calscore.jobs.labels.audit import draw_audit_sample, write_sample
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.scoring.embedded_model import ensure_demo_model
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.read_copy import read_copy_path

AUDIT_ROWS = 600
ROWS_PER_NIGHT = 1_000


def _hidden_labels(truth_path: Path) -> dict[str, str]:
    return dict(zip(*pq.read_table(truth_path, columns=["id", "label"]).to_pydict().values()))


def _label_sample(sample_path: Path, truth_path: Path, out: Path) -> Path:
    """The demo's labeller: look the sampled ids up in the hidden labels."""
    sample = pq.read_table(sample_path, columns=["id", "inclusion_prob"])
    truth = _hidden_labels(truth_path)
    pq.write_table(sample.append_column("label", pa.array([truth[i] for i in sample["id"].to_pylist()])), out)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def run_demo(task_path: str, say: Callable[[str], None] = print) -> dict:
    spec = load_spec(task_path)
    root = spec.warehouse.path.parent
    batches = Path(spec.input.location)
    truth = root / "hidden-labels.parquet"
    if getattr(spec.model, "embedded", None):
        say(f"demo model: {ensure_demo_model()}")
    # The demo owns its folder: start from scratch so the story is the same every time.
    for path in (batches, root / "staging", root / "snapshots"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (spec.warehouse.path, spec.warehouse.path.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)

    # two nightly runs minutes apart stand for yesterday's and today's (their logical dates)
    today = utcnow().date()
    write_demo_batches(batches, truth, rows_per_batch=ROWS_PER_NIGHT, n_batches=1)
    say("\n== night 1: score 1,000 rows, no calibrator yet ==")
    night1 = nightly_scoring(task_path, night=today - timedelta(days=1))
    say(night1["text"])

    say(f"== label an audit sample of {AUDIT_ROWS} rows, then recalibrate ==")
    sample_path = root / "audit-sample.parquet"
    write_sample(draw_audit_sample(spec, AUDIT_ROWS, seed=11), sample_path)
    labeled = _label_sample(sample_path, truth, root / "audit-labels.parquet")
    imported = ingest_labels(task_path, file=str(labeled), source="demo-labeller")
    say("\n".join(imported["report"]))
    say(f"recalibration: {imported['recalibration']}")

    write_demo_batches(batches, truth, rows_per_batch=ROWS_PER_NIGHT, n_batches=2)
    say("\n== night 2: score 1,000 new rows (with the champion calibrator, if one was promoted) ==")
    night2 = nightly_scoring(task_path, night=today)
    say(night2["text"])

    result = evaluate_run(spec, night2["run_id"], truth)
    say("== night 2 against its hidden labels (never used for fitting) ==")
    say(f"rows: {result['n']}")
    say(f"raw scores:  accuracy {_pct(result['raw']['accuracy'])}  ECE (15 bins) {result['raw']['ece']:.3f}")
    if "calibrated" in result:
        say(f"calibrated:  accuracy {_pct(result['calibrated']['accuracy'])}  ECE (15 bins) "
            f"{result['calibrated']['ece']:.3f}")
    else:
        say("calibrated:  none -- no calibrator was promoted: on the out-of-fold predictions of the audit labels no "
            "challenger was significantly better than the raw scores (the recalibration line above), so night 2 "
            "was decided on raw scores")
    say("bucket        rows  accuracy")
    for b in result["buckets"]:
        say(f"{b['bucket']:<12} {b['rows']:>5}  {_pct(b['accuracy'])}")
    say("Calibration can make a confidence honest, not a model right: the neutral rows follow a rule no prompt "
        "states (sports facts positive, workplace facts negative). `make finetune-demo` trains an adapter on the "
        "audit labels and shows what that changes on night 2.")
    # Night 2's hidden labels go in as an evaluation set (no refit): the report's
    # reliability diagram then shows 1,000 more rows the calibrator never saw.
    evaluation = root / "night-2-labels.parquet"
    night2_ids = pq.read_table(max(batches.glob("*.parquet")), columns=["id"])["id"].to_pylist()
    truth_by_id = _hidden_labels(truth)
    pq.write_table(pa.table({"id": night2_ids, "label": [truth_by_id[i] for i in night2_ids]}), evaluation)
    ingest_labels(task_path, file=str(evaluation), source="demo-evaluation", trigger=False)
    report = write_report(spec, root / "report")
    say(f"\nreport: {report}")
    say(f"warehouse: {spec.warehouse.path}")
    say("try: .venv/bin/python -c \"import duckdb; print(duckdb.connect('"
        f"{read_copy_path(spec.warehouse.path)}', read_only=True).sql('SELECT bucket, count(*) FROM predictions "
        "GROUP BY ALL'))\" (the analysts' read copy: a session on it never holds up a run)")
    return {"night1": night1, "night2": night2, "labels": imported, "evaluation": result, "report": report}


def _domain_segments(batch: Path, truth_path: Path) -> dict[str, str]:
    """Night 2's neutral rows by domain (the generator's rule: a neutral row's label is its domain's)."""
    rows = pq.read_table(batch, columns=["id", "category"]).to_pydict()
    truth = _hidden_labels(truth_path)
    return {i: f"neutral: {NEUTRAL_DOMAIN[truth[i]]}" for i, c in zip(rows["id"], rows["category"]) if c == "neutral"}


def run_finetune_demo(task_path: str, say: Callable[[str], None] = print, on_step=None) -> dict:
    """The demo story, then fine-tuning on night 1's audit labels, judged on night 2's hidden labels."""
    story = run_demo(task_path, say)
    return {**story, "finetune": finetune_demo_step(task_path, story["night2"]["run_id"], say, on_step)}


def finetune_demo_step(task_path: str, night2_run_id: str, say: Callable[[str], None] = print, on_step=None) -> dict:
    """Fine-tune on the labels scored before night 2's run; hold out night 2's rows (its hidden labels)."""
    from calscore.flows.finetune import finetune_and_report
    from calscore.jobs.warehouse.connection import reader

    spec = load_spec(task_path)
    root = spec.warehouse.path.parent
    with reader(spec.warehouse.path) as con:
        [(night2_start,)] = con.execute("select min(scored_at) from predictions where run_id = ?",
                                        [night2_run_id]).fetchall()
    say(f"\n== fine-tune on night 1's {AUDIT_ROWS} audit labels; night 2's labels held out ==")
    result = finetune_and_report(
        spec, root=str(root / "adapters"), report_dir=str(root / "report"), holdout_since=night2_start,
        segment_of=_domain_segments(max(Path(spec.input.location).glob("*.parquet")), root / "hidden-labels.parquet"),
        on_step=on_step,
    )
    say(result["markdown"])
    say(f"adapter: {result['adapter']}\ntask file: {result['task_file']}\nreport: {result['report']['html']}")
    return result
