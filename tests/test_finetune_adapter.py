"""LoRA adapters on a tiny local model: training, the artifact, loading, task_version and refusals."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from finetune_fixtures import one_torch_thread, train_tiny, write_tiny_adapter, yes_no_rows
from tiny_models import build_tiny_model, tiny_spec, write_tiny_task

from calscore.jobs.finetune.task_file import tuned_spec, write_task_file
from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
from calscore.jobs.scoring.fingerprint import ADAPTER_MANIFEST, AdapterError, read_adapter_manifest
from calscore.jobs.scoring.model_loading import LoadedModel, load_model
from calscore.jobs.scoring.registry import backend_for
from calscore.jobs.spec import SpecError, TaskSpec, check_resources, load_spec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """(base spec, TrainResult, adapter folder) trained once for the module."""
    spec = tiny_spec(tiny_model)
    result = train_tiny(spec)
    folder = write_tiny_adapter(spec, tmp_path_factory.mktemp("adapters"), result)
    return spec, result, folder


def _label_logprobs(scorer, texts) -> np.ndarray:
    return np.array(scorer.score(texts)["label_logprobs"].to_pylist())


TEXTS = yes_no_rows(12, start=500)[0]


def test_training_lowers_validation_nll(trained):
    _, result, _ = trained
    history = result.history
    assert result.best_epoch >= 1
    assert history[result.best_epoch]["validation_nll"] < history[0]["validation_nll"] - 0.05
    assert [h["epoch"] for h in history] == list(range(len(history)))


def test_same_seed_same_adapter_bytes(trained, tmp_path):
    spec, _, folder = trained
    again = write_tiny_adapter(spec, tmp_path, train_tiny(spec, seed=0))
    assert again.name == folder.name  # named by the content hash
    assert (again / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()


def test_artifact_is_safetensors_and_json(trained):
    _, _, folder = trained
    names = {p.name for p in folder.iterdir()}
    assert names == {"adapter_config.json", "adapter_model.safetensors", ADAPTER_MANIFEST, "split.json"}
    manifest = read_adapter_manifest(folder)
    assert folder.name.endswith(manifest["content_sha256"][:12])
    assert manifest["base_model"]["fingerprint"].startswith("folder:")
    assert manifest["lora"]["r"] == 8 and manifest["lora"]["target_modules"]


def test_saved_adapter_round_trips_to_identical_scores(trained):
    spec, result, folder = trained
    in_memory = FirstTokenScorer(LoadedModel(result.peft_model.get_base_model(), load_model(spec.model).tokenizer,
                                             "cpu", "float32", "in memory"), spec.prompt, spec.labels)
    tuned = tuned_spec(spec, folder)
    unmerged = FirstTokenScorer(load_model(tuned.model, merge_adapter=False), spec.prompt, spec.labels)
    merged = FirstTokenScorer(load_model(tuned.model), spec.prompt, spec.labels)
    base = FirstTokenScorer(load_model(spec.model), spec.prompt, spec.labels)

    expected = _label_logprobs(in_memory, TEXTS)
    np.testing.assert_array_equal(_label_logprobs(unmerged, TEXTS), expected)
    np.testing.assert_allclose(_label_logprobs(merged, TEXTS), expected, rtol=0, atol=1e-5)
    assert np.abs(_label_logprobs(base, TEXTS) - expected).max() > 0.1  # the adapter does change the scores


def test_task_version_includes_the_adapter(trained, tmp_path):
    spec, _, folder = trained
    tuned = tuned_spec(spec, folder)
    assert tuned.task_version != spec.task_version
    assert "adapter" not in backend_for(spec.model).version_parts(spec.model)  # base versions stay as they were
    assert backend_for(tuned.model).version_parts(tuned.model)["adapter"] == read_adapter_manifest(folder)["content_sha256"]
    other = write_tiny_adapter(spec, tmp_path, train_tiny(spec, seed=1))
    assert other.name != folder.name
    assert tuned_spec(spec, other).task_version not in {spec.task_version, tuned.task_version}


def test_task_file_names_the_adapter(trained, tmp_path):
    spec, _, folder = trained
    base_file = write_tiny_task(tmp_path / "task.toml", spec.model.path)
    base = load_spec(base_file)
    (tmp_path / "tuned").mkdir()
    written = load_spec(write_task_file(base, folder, tmp_path / "tuned" / "task.toml"))
    assert written.model.adapter == folder.resolve()
    assert written.task_version == tuned_spec(base, folder).task_version
    assert written.warehouse.path == base.warehouse.path and written.input.location == base.input.location


def test_adapter_for_another_base_model_is_refused(trained, tmp_path):
    spec, _, folder = trained
    other_model = build_tiny_model(tmp_path / "other", arch="llama", seed=1)
    data = tiny_spec(other_model).model_dump(mode="json", exclude_none=True)
    data["model"]["adapter"] = str(folder)
    wrong = TaskSpec.model_validate(data)
    with pytest.raises(AdapterError, match="trained on another base model"):
        wrong.task_version
    with pytest.raises(AdapterError, match="trained on another base model"):
        load_model(wrong.model)
    with pytest.raises(SpecError, match="another base model"):
        check_resources(TaskSpec.model_validate(data))


@pytest.mark.parametrize("tamper, message", [
    (lambda f: f.joinpath("adapter_model.safetensors").write_bytes(
        f.joinpath("adapter_model.safetensors").read_bytes()[:-4] + b"\x00\x00\x80\x3f"), "changed after it was written"),
    (lambda f: f.joinpath("adapter_config.json").write_text(
        f.joinpath("adapter_config.json").read_text().replace('"r": 8', '"r": 4')), "changed after it was written"),
    (lambda f: f.joinpath("adapter_model.bin").write_bytes(b"pickle"), "pickle files"),
    (lambda f: f.joinpath(ADAPTER_MANIFEST).unlink(), "not a calscore adapter"),
    (lambda f: f.joinpath("adapter_model.safetensors").unlink(), "incomplete"),
])
def test_tampered_adapter_is_refused(trained, tmp_path, tamper, message):
    spec, _, folder = trained
    copy = Path(shutil.copytree(folder, tmp_path / folder.name))
    tamper(copy)
    data = spec.model_dump(mode="json", exclude_none=True)
    data["model"]["adapter"] = str(copy)
    with pytest.raises(AdapterError, match=message):
        TaskSpec.model_validate(data).task_version
    with pytest.raises(AdapterError, match=message):
        load_model(TaskSpec.model_validate(data).model)


def test_a_relative_adapter_path_is_refused(tiny_model, tmp_path):
    path = write_tiny_task(tmp_path / "task.toml", tiny_model)
    path.write_text(path.read_text().replace("[model]\n", '[model]\nadapter = "adapters/x"\n'))
    with pytest.raises(SpecError, match="adapter must be an absolute path"):
        load_spec(path)


def test_manifest_edits_do_not_change_the_version(trained, tmp_path):
    """Figures added after writing (held-out metrics) leave the content, and so task_version, alone."""
    spec, _, folder = trained
    copy = Path(shutil.copytree(folder, tmp_path / folder.name))
    manifest = json.loads((copy / ADAPTER_MANIFEST).read_text())
    manifest["metrics"]["heldout"] = {"accuracy": 0.9}
    (copy / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    assert tuned_spec(spec, copy).task_version == tuned_spec(spec, folder).task_version
