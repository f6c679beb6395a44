"""The labeling round trip against a real Label Studio server (started once for this module, on 127.0.0.1, from
its own venv): `labels push` creates the project and sends rows with the model's prediction, annotations made
through Label Studio's API come back with `labels pull` as labels with their design, annotator and the audit
sample's inclusion probabilities; a second pull imports nothing, a changed annotation is a correction with
history, and a server that is down costs one line and nothing else."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.labels import round_trip
from calscore.jobs.labels.label_studio import LabelStudio, LabelStudioError
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import reader
from endpoint_fixtures import free_port, score_and_write
from flow_fixtures import task_toml
from label_studio_fixtures import ADMIN, LabelStudioServer

pytestmark = pytest.mark.minutes(1.2)

ROWS = 300
ANNOTATOR = "bob@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ls = LabelStudioServer(tmp_path_factory.mktemp("label-studio")).start()
    ls.api.post("/api/users/", json={"email": ANNOTATOR, "username": "bob"}).raise_for_status()
    yield ls
    ls.stop()


def _users(server) -> dict[str, int]:
    return {u["email"]: u["id"] for u in server.api.get("/api/users/").json()}


def _scored(tmp_path: Path, server, project: str, refit_after: int = 100000):
    """A task whose 300 rows were scored by the nightly writer from a lookup table (every row `positive`, with a raw
    confidence of 0.5-1.0; no calibrator), its task file pointing at the server and `project`."""
    ids = [f"r{i:03d}" for i in range(ROWS)]
    share = np.random.default_rng(3).uniform(0.5, 1.0, ROWS)
    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"text": [f"review {i}" for i in ids], "positive": np.log(share),
                             "negative": np.log1p(-share)}), scores)
    task = task_toml(tmp_path, scores, backend="lookup", name="round-trip", refit_after=refit_after)
    with task.open("a", encoding="utf-8") as f:
        f.write(f'\n[label_studio]\nurl = "{server.url}"\nproject = "{project}"\n')
    pq.write_table(pa.table({"id": ids, "text": [f"review {i}" for i in ids], "category": ["a"] * ROWS}),
                   tmp_path / "batches" / "night-1.parquet")
    spec = load_spec(task)
    score_and_write(spec)
    return spec


def _calscore(server, *args: str, token: str | None = None):
    return CliRunner().invoke(app, list(args), env={"LABEL_STUDIO_API_KEY": token or server.token})


def _project(server, title: str) -> dict:
    [project] = [p for p in server.api.get("/api/projects/", params={"title": title}).json()["results"]
                 if p["title"] == title]
    return project


def _tasks(server, project_id: int) -> list[dict]:
    answer = server.api.get("/api/tasks/", params={"project": project_id, "fields": "all", "page_size": 1000}).json()
    return answer["tasks"]


def _annotations(server, task: dict) -> list[dict]:
    return server.api.get(f"/api/tasks/{task['id']}/annotations/").json()


def _annotate(server, task: dict, label: str | None, user: int | None = None) -> dict:
    """Submit an annotation as `user` (the admin by default); no label: the annotator skipped the task."""
    body = ({"result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}
            if label else {"result": [], "was_cancelled": True})
    answer = server.api.post(f"/api/tasks/{task['id']}/annotations/", json={**body, **({"completed_by": user} if user else {})})
    answer.raise_for_status()
    return answer.json()


def _labels(spec) -> list[dict]:
    with reader(spec.warehouse.path) as con:
        return con.sql("SELECT row_id, label, source, design, inclusion_prob, superseded_at, imported_at FROM labels "
                       "ORDER BY row_id, imported_at").to_arrow_table().to_pylist()


def _sample_probs(spec) -> dict[str, float]:
    with reader(spec.warehouse.path) as con:
        return dict(con.execute("SELECT row_id, inclusion_prob FROM audit_samples").fetchall())


def _push_and_annotate(server, spec, title: str, n: int = 20) -> tuple[list[dict], dict[str, str]]:
    """Push an audit sample of `n`; the admin labels the first 6 tasks, the annotator the next 6 (each the opposite
    of the model, which says positive for every row), the 13th is skipped; returns the tasks and row id -> label."""
    result = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--audit", str(n), "--seed", "1")
    assert result.exit_code == 0, result.output
    tasks = _tasks(server, _project(server, title)["id"])
    users, given = _users(server), {}
    for i, task in enumerate(tasks[:12]):
        given[task["data"]["calscore_row_id"]] = label = "negative" if i % 3 else "positive"
        _annotate(server, task, label, users[ADMIN] if i < 6 else users[ANNOTATOR])
    _annotate(server, tasks[12], None)
    return tasks, given


def test_push_creates_the_project_and_sends_each_row_with_the_models_prediction(tmp_path, server):
    spec = _scored(tmp_path, server, "from scratch")
    result = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--audit", "20", "--seed", "1")
    assert result.exit_code == 0, result.output
    project = _project(server, "from scratch")
    assert f"created Label Studio project 'from scratch' (id {project['id']})" in result.output
    assert "asking for: positive, negative" in result.output
    assert "20 task(s) pushed from audit sample audit-" in result.output
    assert project["parsed_label_config"]["label"]["labels"] == ["positive", "negative"]

    tasks = _tasks(server, project["id"])
    probs = _sample_probs(spec)
    assert sorted(t["data"]["calscore_row_id"] for t in tasks) == sorted(probs)
    with reader(spec.warehouse.path) as con:
        decided = dict(con.execute("SELECT row_id, decision_confidence FROM decided_predictions").fetchall())
    for task in tasks:
        row_id = task["data"]["calscore_row_id"]
        # the text and row id to label, the design and sample to pull them back: inclusion probabilities stay here
        assert task["data"] == {"text": f"review {row_id}", "calscore_row_id": row_id}
        assert task["meta"] == {"calscore_design": "audit", "calscore_sample": task["meta"]["calscore_sample"]}
        assert probs[row_id] and task["meta"]["calscore_sample"].startswith("audit-")
        [prediction] = task["predictions"]
        assert prediction["result"][0]["value"] == {"choices": ["positive"]}
        assert prediction["score"] == pytest.approx(decided[row_id])
        assert prediction["model_version"] == "calscore raw scores"

    again = _calscore(server, "labels", "push", "--task", str(spec.source_path),
                      "--sample-id", tasks[0]["meta"]["calscore_sample"])
    assert again.exit_code == 0, again.output
    assert "0 task(s) pushed" in again.output and "20 of its rows were there already" in again.output
    assert len(_tasks(server, project["id"])) == 20


def test_pull_imports_annotations_with_design_annotator_and_the_samples_weights_once(tmp_path, server):
    spec = _scored(tmp_path, server, "audit pull")
    tasks, given = _push_and_annotate(server, spec, "audit pull")

    first = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert first.exit_code == 0, first.output
    assert "20 task(s), 12 labeled, 7 not annotated yet, 1 without a label (skipped)" in first.output
    assert f"({ADMIN}): 6 rows read; 6 new label(s)" in first.output
    assert f"({ANNOTATOR}): 6 rows read; 6 new label(s)" in first.output
    labels, probs = _labels(spec), _sample_probs(spec)
    assert {r["row_id"]: r["label"] for r in labels} == given
    project_id = _project(server, "audit pull")["id"]
    by_annotator = {r["source"] for r in labels}
    assert by_annotator == {f"Label Studio project {project_id} ({ADMIN})", f"Label Studio project {project_id} ({ANNOTATOR})"}
    for row in labels:
        assert row["design"] == "audit" and row["superseded_at"] is None
        assert row["inclusion_prob"] == pytest.approx(probs[row["row_id"]])

    second = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert second.exit_code == 0, second.output
    assert second.output.count("0 new label(s) (0 correcting an earlier one), 6 unchanged") == 2
    assert _labels(spec) == labels


def test_a_changed_annotation_is_a_correction_kept_with_history(tmp_path, server):
    spec = _scored(tmp_path, server, "corrections")
    tasks, given = _push_and_annotate(server, spec, "corrections")
    assert _calscore(server, "labels", "pull", "--task", str(spec.source_path)).exit_code == 0
    changed = tasks[1]
    row_id, before = changed["data"]["calscore_row_id"], given[changed["data"]["calscore_row_id"]]
    after = "positive" if before == "negative" else "negative"
    [annotation] = _annotations(server, changed)
    server.api.patch(f"/api/annotations/{annotation['id']}/", json={"result": [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [after]}}]}).raise_for_status()

    result = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert result.exit_code == 0, result.output
    assert f"({ADMIN}): 6 rows read; 1 new label(s) (1 correcting an earlier one), 5 unchanged" in result.output
    history = [r for r in _labels(spec) if r["row_id"] == row_id]
    assert [r["label"] for r in history] == [before, after]
    assert history[0]["superseded_at"] is not None and history[1]["superseded_at"] is None
    assert history[1]["design"] == "audit" and history[1]["inclusion_prob"] == history[0]["inclusion_prob"]


def test_the_review_queue_goes_as_convenience_labels_least_confident_first_and_never_twice(tmp_path, server):
    spec = _scored(tmp_path, server, "review queue")
    for _ in range(2):
        result = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--review", "5")
        assert result.exit_code == 0, result.output
        assert "5 task(s) pushed from the head of the review queue (design convenience)" in result.output
    with reader(spec.warehouse.path) as con:
        head = [r[0] for r in con.execute("SELECT row_id FROM review_queue ORDER BY decision_confidence, scored_at, row_id LIMIT 10").fetchall()]
    tasks = _tasks(server, _project(server, "review queue")["id"])
    assert [t["data"]["calscore_row_id"] for t in tasks] == head
    assert {t["meta"]["calscore_design"] for t in tasks} == {"convenience"}

    for task in tasks[:3]:
        _annotate(server, task, "negative")
    result = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert result.exit_code == 0, result.output
    assert "design: 3 convenience" in result.output and "never certifies" in result.output
    labels = _labels(spec)
    assert [(r["design"], r["inclusion_prob"]) for r in labels] == [("convenience", None)] * 3


def test_a_server_that_is_down_costs_one_line_and_nothing_else(tmp_path, server):
    spec = _scored(tmp_path, server, "down and up")
    _, given = _push_and_annotate(server, spec, "down and up")
    samples = _sample_probs(spec)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for command, lost in ((["pull"], "nothing was imported (a later pull imports everything)"),
                          (["push", "--audit", "10"], "nothing was pushed")):
        result = _calscore(server, "labels", *command, "--task", str(spec.source_path), "--url", down)
        assert result.exit_code == 1, result.output
        [line] = result.stderr.splitlines()
        assert line.startswith(f"Label Studio at {down} cannot be reached (ConnectError") and line.endswith(lost)
        assert "Traceback" not in result.output
    assert _labels(spec) == [] and _sample_probs(spec) == samples  # no label, and no sample drawn for nothing

    result = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert result.exit_code == 0, result.output
    assert {r["row_id"]: r["label"] for r in _labels(spec)} == given


def test_a_push_that_stops_half_way_is_finished_by_the_command_it_names(tmp_path, server, monkeypatch):
    """The connection drops after two of four import requests (injected at the client; the server is real)."""
    spec = _scored(tmp_path, server, "half way")
    monkeypatch.setattr(round_trip, "IMPORT_BATCH", 5)
    real_import, calls = LabelStudio.import_tasks, []

    def drops_after_two(self, project, tasks):
        calls.append(len(tasks))
        if len(calls) > 2:
            raise LabelStudioError(f"Label Studio at {server.url} cannot be reached (ReadError: connection reset)")
        return real_import(self, project, tasks)

    monkeypatch.setattr(LabelStudio, "import_tasks", drops_after_two)
    stopped = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--audit", "20", "--seed", "2")
    assert stopped.exit_code == 1, stopped.output
    [line] = stopped.stderr.splitlines()
    sample_id = line.rsplit("--sample-id ", 1)[1].split("`")[0]
    assert line.endswith(f"10 of 20 task(s) were pushed: `calscore labels push --sample-id {sample_id}` sends the rest")

    monkeypatch.setattr(LabelStudio, "import_tasks", real_import)
    finished = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--sample-id", sample_id)
    assert finished.exit_code == 0, finished.output
    assert "10 task(s) pushed" in finished.output and "10 of its rows were there already" in finished.output
    tasks = _tasks(server, _project(server, "half way")["id"])
    assert sorted(t["data"]["calscore_row_id"] for t in tasks) == sorted(_sample_probs(spec))


def test_a_pull_starts_a_recalibration_as_labels_import_does(tmp_path, server):
    spec = _scored(tmp_path, server, "recalibration trigger", refit_after=10)
    _push_and_annotate(server, spec, "recalibration trigger")
    held = _calscore(server, "labels", "pull", "--task", str(spec.source_path), "--no-trigger")
    assert held.exit_code == 0, held.output
    assert "12 new label(s) since the last fit; no recalibration (--no-trigger)" in held.output
    assert "recalibration started" not in held.output

    started = _calscore(server, "labels", "pull", "--task", str(spec.source_path))
    assert started.exit_code == 0, started.output
    assert "recalibration started by this pull: " in started.output


def test_a_personal_access_token_works_and_is_written_nowhere(tmp_path, server):
    """A team's Label Studio gives personal access tokens (legacy tokens are off by default for new organizations)."""
    spec = _scored(tmp_path, server, "personal token")
    answer = server.api.post("/api/token/")
    answer.raise_for_status()
    personal = answer.json()["token"]
    outputs = [_calscore(server, "labels", "push", "--task", str(spec.source_path), "--review", "4", token=personal)]
    _annotate(server, _tasks(server, _project(server, "personal token")["id"])[0], "negative")
    outputs.append(_calscore(server, "labels", "pull", "--task", str(spec.source_path), token=personal))
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert personal not in result.output
    assert len(_labels(spec)) == 1
    warehouse = spec.warehouse.path.read_bytes()
    for token in (personal, server.token):
        assert token.encode() not in warehouse


def test_a_wrong_token_or_a_project_that_cannot_give_the_task_labels_is_one_line(tmp_path, server):
    server.api.post("/api/projects/", json={"title": "yes or no", "label_config": (
        '<View><Text name="text" value="$text"/><Choices name="answer" toName="text">'
        '<Choice value="yes"/><Choice value="no"/></Choices></View>')}).raise_for_status()
    spec = _scored(tmp_path, server, "yes or no")
    refused = _calscore(server, "labels", "pull", "--task", str(spec.source_path), token="0" * 40)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith(f"Label Studio at {server.url} refused the API token in LABEL_STUDIO_API_KEY")
    assert len(refused.stderr.splitlines()) == 1
    push = _calscore(server, "labels", "push", "--task", str(spec.source_path), "--review", "3")
    assert push.exit_code == 2, push.output
    assert "no Choices control offers all of the task's labels (positive, negative)" in push.stderr
    missing = _calscore(server, "labels", "pull", "--task", str(spec.source_path), "--project", "no such project")
    assert missing.exit_code == 2, missing.output
    assert "has no project titled 'no such project': `calscore labels push` creates it" in missing.stderr
