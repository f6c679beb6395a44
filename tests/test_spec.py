"""Task spec: the demo task loads, every broken file fails clearly, task_version hashes the right things."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from calscore.jobs.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
DEMO_TASK = REPO / "infra" / "tasks" / "demo.toml"


# --- writing task files -------------------------------------------------------
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(type(v))


def dump_toml(doc: dict, prefix: str = "") -> str:
    """A tiny TOML writer for the shapes a task file has (tables, arrays of tables, scalars, lists)."""
    lines, tables = [], []
    for key, v in doc.items():
        if isinstance(v, dict):
            tables.append(f"\n[{prefix}{key}]\n" + dump_toml(v, f"{prefix}{key}."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.extend(f"\n[[{prefix}{key}]]\n" + dump_toml(x, f"{prefix}{key}.") for x in v)
        else:
            lines.append(f"{key} = {_value(v)}")
    return "\n".join(lines) + "\n" + "".join(tables)


def base_doc(model: dict | None = None) -> dict:
    return {
        "name": "spec-test",
        "coverage_floor": 0.5,
        "model": model or {"embedded": "smollm2-135m-instruct", "dtype": "auto", "device": "cpu"},
        "prompt": {"template": "Review: {text}\nSentiment:", "max_input_tokens": 128, "truncation_side": "right"},
        "labels": {"positive": ["positive", "Positive"], "negative": ["negative", "Negative"]},
        "buckets": [{"name": "auto", "min": 0.9}, {"name": "review", "min": 0.7}, {"name": "manual", "min": 0.0}],
        "input": {"location": "batches", "id_column": "id", "text_column": "text"},
        "warehouse": {"path": "warehouse.duckdb"},
        "calibration": {"method": "auto", "min_labels": 100, "folds": 5},
    }


def write_task(tmp_path: Path, doc: dict, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(dump_toml(doc), encoding="utf-8")
    return path


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A tiny model folder: a config.json and one small safetensors file."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8, "vocab_size": 32}))
    save_file({"embed.weight": np.arange(32 * 8, dtype=np.float32).reshape(32, 8)}, str(folder / "model.safetensors"))
    return folder


# --- the demo task ----------------------------------------------------------------
def test_demo_task_loads_from_anywhere(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the task file, not the working directory
    spec = load_spec(DEMO_TASK)
    assert spec.name == "demo-sentiment"
    assert spec.label_names == ["positive", "negative"]
    assert spec.model.embedded == "smollm2-135m-instruct"
    assert "{text}" in spec.prompt.template
    assert spec.warehouse.path == REPO / "var" / "demo" / "calscore.duckdb"
    assert Path(spec.input.location) == REPO / "var" / "demo" / "batches"
    assert [b.min for b in spec.buckets][-1] == 0.0
    version = spec.task_version
    assert len(version) == 16 and int(version, 16) >= 0
    assert load_spec(DEMO_TASK).task_version == version


def test_a_valid_file_loads(tmp_path) -> None:
    spec = load_spec(write_task(tmp_path, base_doc()))
    assert spec.labels == {"positive": ("positive", "Positive"), "negative": ("negative", "Negative")}
    assert spec.warehouse.path == tmp_path / "warehouse.duckdb"


# --- broken files -------------------------------------------------------------------
def _set(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        doc = doc[p]
    if value is _DELETE:
        del doc[last]
    else:
        doc[last] = value


_DELETE = object()
BROKEN = {
    "missing placeholder": ({"prompt.template": "Review: \nSentiment:"}, "prompt", "found 0"),
    "two placeholders": ({"prompt.template": "{text}\nReview: {text}\nSentiment:"}, "prompt", "found 2"),
    "template and messages": (
        {"prompt.messages": [{"role": "user", "content": "Classify: {text}"}]}, "prompt", "exactly one of template"
    ),
    "typo in a field name": (
        {"prompt.max_input_token": 100},
        "prompt.max_input_token",
        "unknown field (a typo?); allowed here: template, messages, max_input_tokens, truncation_side",
    ),
    "typo at top level": ({"coverage_flor": 0.4}, "coverage_flor", "unknown field (a typo?); allowed here: name, model"),
    "typo in a bucket": (
        {"buckets": [{"name": "auto", "mn": 0.9}, {"name": "manual", "min": 0.0}]},
        "buckets.0.mn",
        "unknown field (a typo?); allowed here: name, min",
    ),
    "bad dtype": ({"model.dtype": "float64"}, "model.dtype", "'auto', 'float32' or 'bfloat16'"),
    "variant for two labels": (
        {"labels": {"positive": ["positive", "yes"], "negative": ["negative", "yes"]}}, "labels", "'yes' is given for both"
    ),
    "one label": ({"labels": {"positive": ["positive"]}}, "labels", "at least two labels"),
    "empty variant": ({"labels": {"positive": ["positive"], "negative": [""]}}, "labels", "non-empty"),
    "buckets not decreasing": (
        {"buckets": [{"name": "review", "min": 0.7}, {"name": "auto", "min": 0.9}, {"name": "manual", "min": 0.0}]},
        "buckets",
        "strictly decrease",
    ),
    "last bucket min not 0": (
        {"buckets": [{"name": "auto", "min": 0.9}, {"name": "review", "min": 0.5}]}, "buckets", "min must be 0"
    ),
    "hub_id without revision": ({"model": {"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}}, "model", "pinned revision"),
    "two model sources": (
        {"model": {"embedded": "smollm2-135m-instruct", "path": "some/folder"}}, "model", "exactly one of embedded, path, hub_id"
    ),
    "no model source": ({"model": {"dtype": "auto"}}, "model", "exactly one of embedded, path, hub_id"),
    "bad name": ({"name": "9 lives!"}, "name", "must start with a letter"),
    "missing section": ({"warehouse": _DELETE}, "warehouse", "Field required"),
    "bad device": ({"model.device": "gpu"}, "model.device", "device must be"),
    "confidence out of range": ({"coverage_floor": 1.5}, "coverage_floor", "less than or equal to 1"),
    "the time split's removed setting": (
        {"calibration": {"holdout_fraction": 0.2}}, "calibration", "holdout_fraction was removed: a promotion now"
    ),
    "certification slice of every label": (
        {"calibration": {"certify_fraction": 0.95}}, "calibration.certify_fraction", "less than 0.9"
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_names_file_field_and_problem(tmp_path, case: str) -> None:
    changes, field, problem = BROKEN[case]
    doc = copy.deepcopy(base_doc())
    for dotted, value in changes.items():
        _set(doc, dotted, value)
    path = write_task(tmp_path, doc, name=f"{case.replace(' ', '_')}.toml")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message.splitlines()[0]
    assert f"\n  {field}: " in message, message
    assert problem in message, message


def test_not_toml(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[model\nembedded = 1\n')
    with pytest.raises(SpecError, match=r"broken\.toml: not valid TOML.*line 2"):
        load_spec(path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(SpecError, match=r"nowhere\.toml: task file not found"):
        load_spec(tmp_path / "nowhere.toml")


def test_a_folder_instead_of_a_file(tmp_path) -> None:
    with pytest.raises(SpecError, match=str(tmp_path)):
        load_spec(tmp_path)


def test_every_problem_is_listed_at_once(tmp_path) -> None:
    doc = base_doc()
    doc["name"] = "bad name"
    doc["model"]["dtype"] = "float64"
    doc["buckets"] = [{"name": "auto", "min": 0.9}]
    with pytest.raises(SpecError) as info:
        load_spec(write_task(tmp_path, doc))
    message = str(info.value)
    assert "3 problem(s)" in message
    for field in ("name", "model.dtype", "buckets"):
        assert f"\n  {field}: " in message


# --- prompts ---------------------------------------------------------------------------
def test_literal_braces_render_as_text(tmp_path) -> None:
    doc = base_doc()
    doc["prompt"]["template"] = "{not a field} {text}"
    spec = load_spec(write_task(tmp_path, doc))
    assert spec.prompt.render("a {weird} text") == "{not a field} a {weird} text"


def test_chat_messages_render(tmp_path) -> None:
    doc = base_doc()
    del doc["prompt"]["template"]
    doc["prompt"]["messages"] = [
        {"role": "system", "content": "Answer positive or negative. {braces} stay."},
        {"role": "user", "content": "Review: {text}"},
    ]
    spec = load_spec(write_task(tmp_path, doc))
    assert spec.prompt.render("great") == [
        {"role": "system", "content": "Answer positive or negative. {braces} stay."},
        {"role": "user", "content": "Review: great"},
    ]
    doc["prompt"]["messages"] = list(reversed(doc["prompt"]["messages"]))
    with pytest.raises(SpecError, match="last chat message must be the user's"):
        load_spec(write_task(tmp_path, doc, "reversed.toml"))


# --- task_version ----------------------------------------------------------------------
def _version(tmp_path: Path, doc: dict, name: str = "task.toml") -> str:
    return load_spec(write_task(tmp_path, doc, name)).task_version


def _reordered(doc: dict) -> dict:
    """The same content with every table's keys (and the tables) in reverse order, labels kept in order."""
    out = {}
    for key, v in reversed(doc.items()):
        out[key] = dict(reversed(v.items())) if isinstance(v, dict) and key != "labels" else v
    return out


def test_task_version_is_stable(tmp_path, fake_model) -> None:
    doc = base_doc({"path": str(fake_model), "dtype": "float32"})
    first = _version(tmp_path, doc, "a.toml")
    assert first == _version(tmp_path, doc, "b.toml")
    text = (tmp_path / "a.toml").read_text()
    assert dump_toml(_reordered(doc)) != text  # really written in another order
    assert _version(tmp_path, _reordered(doc), "c.toml") == first


CHANGES_VERSION = {
    "prompt text": ("prompt.template", "Text: {text}\nSentiment:"),
    "label names": ("labels", {"good": ["positive", "Positive"], "bad": ["negative", "Negative"]}),
    "verbalizers": ("labels", {"positive": ["positive"], "negative": ["negative", "Negative"]}),
    "label order": ("labels", {"negative": ["negative", "Negative"], "positive": ["positive", "Positive"]}),
    "dtype": ("model.dtype", "bfloat16"),
    "max input tokens": ("prompt.max_input_tokens", 256),
    "truncation side": ("prompt.truncation_side", "left"),
}
KEEPS_VERSION = {
    "buckets": ("buckets", [{"name": "auto", "min": 0.8}, {"name": "manual", "min": 0.0}]),
    "coverage floor": ("coverage_floor", 0.2),
    "warehouse path": ("warehouse.path", "elsewhere/other.duckdb"),
    "input location": ("input.location", "/data/incoming/*.parquet"),
    "input columns": ("input.text_column", "body"),
    "calibration method": ("calibration.method", "isotonic"),
    "calibration labels": ("calibration.min_labels", 500),
    "device": ("model.device", "cuda:0"),
}


@pytest.mark.parametrize("case", list(CHANGES_VERSION) + list(KEEPS_VERSION))
def test_task_version_hashes_only_what_changes_the_scores(tmp_path, fake_model, case: str) -> None:
    doc = base_doc({"path": str(fake_model), "dtype": "float32", "device": "cpu"})
    before = _version(tmp_path, doc, "before.toml")
    dotted, value = CHANGES_VERSION.get(case) or KEEPS_VERSION[case]
    _set(doc, dotted, value)
    after = _version(tmp_path, doc, "after.toml")
    if case in CHANGES_VERSION:
        assert after != before, f"changing the {case} must change task_version"
    else:
        assert after == before, f"changing the {case} must not change task_version"


def test_task_version_follows_the_model_folder(tmp_path, fake_model) -> None:
    doc = base_doc({"path": str(fake_model), "dtype": "float32"})
    v0 = _version(tmp_path, doc)

    config = json.loads((fake_model / "config.json").read_text())
    config["hidden_size"] = 16
    (fake_model / "config.json").write_text(json.dumps(config))
    v1 = _version(tmp_path, doc)
    assert v1 != v0, "a changed config.json must change task_version"

    save_file({"embed.weight": np.zeros((32, 16), dtype=np.float32)}, str(fake_model / "model.safetensors"))
    v2 = _version(tmp_path, doc)
    assert v2 != v1, "weights of another shape must change task_version"

    # a fine-tune: same tensor names, dtypes and shapes, other values
    save_file({"embed.weight": np.ones((32, 16), dtype=np.float32)}, str(fake_model / "model.safetensors"))
    v3 = _version(tmp_path, doc)
    assert v3 != v2, "new weight values (a fine-tune) must change task_version"

    # the folder's location is not part of the model's identity
    moved = fake_model.rename(tmp_path / "moved-model")
    doc["model"]["path"] = str(moved)
    assert _version(tmp_path, doc) == v3


def test_task_version_of_a_missing_model_folder_is_a_clear_error(tmp_path) -> None:
    spec = load_spec(write_task(tmp_path, base_doc({"path": "no-such-model"})))
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        spec.task_version


def test_hub_model_version_follows_the_revision(tmp_path) -> None:
    doc = base_doc({"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": "a" * 40})
    v1 = _version(tmp_path, doc)
    doc["model"]["revision"] = "b" * 40
    assert _version(tmp_path, doc) != v1


def test_large_weight_files_are_sampled_and_a_fine_tune_still_shows(tmp_path) -> None:
    """Weights above a few MB are not read whole, yet new values across the file change the fingerprint."""
    from calscore.jobs.scoring.fingerprint import folder_fingerprint

    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    shape = (2048, 1536)  # 12 MiB of float32
    save_file({"w": np.zeros(shape, dtype=np.float32)}, str(folder / "model.safetensors"))
    base = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == base
    tuned = np.random.default_rng(0).normal(size=shape).astype(np.float32) * 1e-3
    save_file({"w": tuned}, str(folder / "model.safetensors"))
    assert folder_fingerprint(folder) != base
