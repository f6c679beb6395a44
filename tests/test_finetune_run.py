"""Fine-tuning a task end to end on a real warehouse: two nights scored by a tiny local model,
labels imported, the adapter trained on night 1 and judged on night 2."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from finetune_fixtures import one_torch_thread, QUICK
from flow_fixtures import task_toml, texts

from calscore.jobs.common.clock import utcnow
from calscore.jobs.finetune import run as finetune_run
from calscore.jobs.finetune.comparison import BASE, TUNED, pick
from calscore.jobs.finetune.split import SplitError, time_split
from calscore.jobs.finetune.training import TrainConfig
from calscore.jobs.scoring.fingerprint import read_adapter_manifest
from calscore.jobs.spec import load_spec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def _score_new_batches(spec) -> None:
    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch
    from calscore.jobs.warehouse.ledger import already_done
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.runs import finish_run, start_run
    from calscore.jobs.warehouse.writer import write_staged

    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    try:
        for ref in discover(spec.input):
            with writer(spec.warehouse.path) as con:
                done = already_done(con, spec, ref)
            if not done:
                write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
    finally:
        finish_run(spec.warehouse.path, run_id, "done")


def _write_night(folder, name: str, n: int, start: int) -> dict[str, str]:
    """A batch whose texts are all different (numbered), so a text names its row; returns the truth."""
    import pyarrow.parquet as pq

    ids, body, truth = texts(n, start)
    body = [f"{t} {i}" for t, i in zip(body, range(start, start + n))]
    pq.write_table(pa.table({"id": ids, "text": body, "category": ["a" if i % 2 else "b" for i in range(n)]}),
                   folder / "batches" / f"{name}.parquet")
    return dict(zip(ids, truth))


@pytest.fixture(scope="module")
def warehouse(tiny_model, tmp_path_factory):
    """A task whose night 1 (48 rows) and night 2 (16 rows) are scored and labeled; the cut between them."""
    from calscore.jobs.labels.importing import import_labels
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.migrations import migrate

    folder = tmp_path_factory.mktemp("finetune-task")
    spec = load_spec(task_toml(folder, tiny_model))
    with writer(spec.warehouse.path) as con:
        migrate(con)
    truth1 = _write_night(folder, "night-1", 48, 0)
    _score_new_batches(spec)
    cut = utcnow()
    truth2 = _write_night(folder, "night-2", 16, 48)
    _score_new_batches(spec)
    truth = {**truth1, **truth2}
    import_labels(spec, pa.table({"id": list(truth), "label": list(truth.values())}), "test")
    return spec, cut, truth1, truth2


def test_held_out_labels_never_enter_training(warehouse, tmp_path, monkeypatch):
    spec, cut, night1, night2 = warehouse
    seen = []
    real_train = finetune_run.train_adapter

    def spy(loaded, prompt, labels, train, validation, *args, **kwargs):
        seen.append((list(train.texts), list(validation.texts)))
        return real_train(loaded, prompt, labels, train, validation, *args, **kwargs)

    monkeypatch.setattr(finetune_run, "train_adapter", spy)
    outcome = finetune_run.finetune_task(spec, tmp_path, config=TrainConfig(**QUICK), holdout_since=cut)

    split = json.loads((outcome.folder / "split.json").read_text())
    assert set(split["heldout"]) == set(night2)
    assert set(split["train"]) | set(split["validation"]) == set(night1)
    assert not set(split["train"]) & set(split["validation"])
    assert len(split["validation"]) == 12  # the newest quarter of night 1
    from calscore.jobs.warehouse.connection import reader

    with reader(spec.warehouse.path) as con:
        row_texts = dict(con.sql("select row_id, text from predictions").fetchall())
    heldout_texts = {row_texts[r] for r in night2}
    assert len(heldout_texts) == 16
    [(train_texts, val_texts)] = seen
    assert len(train_texts) == 36 and not heldout_texts & set(train_texts) and not heldout_texts & set(val_texts)

    manifest = read_adapter_manifest(outcome.folder)
    assert manifest["split"]["parts"]["heldout"]["rows"] == 16
    assert manifest["data"]["rows"] == {"train": 36, "validation": 12, "heldout": 16}
    assert manifest["task"]["base_task_version"] == spec.task_version
    assert set(manifest["metrics"]["heldout"]) >= {f"{BASE} raw", f"{TUNED} raw"}
    tuned = load_spec(outcome.task_file)
    assert tuned.task_version == outcome.task_version != spec.task_version

    figures = outcome.figures
    assert figures["fit_rows"] == {BASE: 48, TUNED: 12} and figures["heldout_rows"] == 16
    for model in (BASE, TUNED):
        row = pick(figures, model, "raw")
        assert row["n"] == 16 and 0 <= row["accuracy"] <= 1
        assert sum(b["rows"] for b in row["buckets"]) == 16
        assert {r["segment"] for r in figures["rows"] if r["model"] == model} == {"all", "a", "b"}
    assert pick(figures, BASE, "platt") is not None


def test_time_split_orders_by_scoring_time_then_id():
    times = np.array(["2026-01-02T00:00", "2026-01-01T00:00", "2026-01-01T00:00", "2026-01-03T00:00"] * 5,
                     dtype="datetime64[us]")
    ids = np.array([f"r{i:02d}" for i in range(20)], dtype=object)
    split = time_split(times, ids, validation_fraction=0.25, holdout_fraction=0.25)
    assert set(split.heldout) == set(range(3, 20, 4)) and len(split.heldout) == 5  # the newest day
    assert times[split.validation].min() >= times[split.train].max()
    with pytest.raises(SplitError, match="train"):
        time_split(times[:6], ids[:6])


def test_finetune_refuses_a_task_that_already_has_an_adapter(warehouse, tmp_path):
    spec = warehouse[0]
    data = spec.model_dump(mode="json", exclude_none=True)
    data["model"]["adapter"] = str(tmp_path)
    from calscore.jobs.spec import TaskSpec

    with pytest.raises(finetune_run.FinetuneError, match="already has an adapter"):
        finetune_run.finetune_task(TaskSpec.model_validate(data), tmp_path)


def test_cli_trains_writes_the_adapter_and_the_report(warehouse, tmp_path):
    from typer.testing import CliRunner

    from calscore.cli import app

    spec, cut = warehouse[0], warehouse[1]
    result = CliRunner().invoke(app, ["finetune", "--task", str(spec.source_path), "--holdout-since", cut.isoformat(),
                                      "--epochs", "1", "--learning-rate", "3e-3", "--out", str(tmp_path / "adapters"),
                                      "--report-out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "| fine-tuned | raw | 16 |" in result.output and "### Segment a" in result.output
    [folder] = (tmp_path / "adapters").iterdir()
    assert (folder / "task.toml").is_file() and f"task file: {folder / 'task.toml'}" in result.output
    [html] = (tmp_path / "report").glob("finetune-*.html")
    page = html.read_text()
    assert "Fine-tuned vs base" in page and "data:image/png;base64," in page
    assert page.count("<h2>Segment ") == 2


def test_cli_refuses_a_task_with_too_few_labels(warehouse, tmp_path):
    from typer.testing import CliRunner

    from calscore.cli import app

    spec = warehouse[0]
    result = CliRunner().invoke(app, ["finetune", "--task", str(spec.source_path), "--holdout-fraction", "0.9",
                                      "--validation-fraction", "0.9", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "too few labeled rows" in result.output and "train: 1 rows" in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.usefixtures("prefect_harness")
def test_flow_writes_the_adapter_and_a_markdown_artifact(warehouse, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from calscore.flows.finetune import finetune

    spec, cut = warehouse[0], warehouse[1]
    result = finetune(str(spec.source_path), holdout_since=cut, max_epochs=1, learning_rate=3e-3,
                      root=str(tmp_path / "adapters"), report_dir=str(tmp_path / "report"))
    assert load_spec(result["task_file"]).task_version == result["task_version"] != spec.task_version
    with get_client(sync_client=True) as client:
        # the session's Prefect server may hold other tests' artifacts under this key: this run's is the newest
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tiny-finetune"])))
    artifact = max(artifacts, key=lambda a: a.created)
    assert artifact.data == result["markdown"] and "| fine-tuned | raw | 16 |" in artifact.data
