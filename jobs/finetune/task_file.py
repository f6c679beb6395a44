"""The fine-tuned task: the base task with `[model] adapter`, as a spec and as a TOML file.

    tuned = tuned_spec(spec, folder)               # a TaskSpec whose task_version includes the adapter
    write_task_file(spec, folder, folder / "task.toml")

The file is the base task file's content with every path made absolute (it lives in the
adapter's folder, not beside the base file) and the adapter added, so `calscore score --task
<adapter>/task.toml` scores with the fine-tuned model into the same warehouse, under its own
task_version.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from calscore.jobs.spec import TaskSpec


def tuned_spec(spec: TaskSpec, adapter: Path) -> TaskSpec:
    data = spec.model_dump(mode="json", exclude_none=True)
    data["model"]["adapter"] = str(Path(adapter).resolve())
    return TaskSpec.model_validate({**data, "source_path": spec.source_path})


def _value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)  # strings (escaped), numbers and booleans are spelled alike in TOML and JSON


def _table(lines: list[str], name: str, body: dict) -> None:
    plain = {k: v for k, v in body.items() if not _is_array_of_tables(v)}  # nested tables go inline
    lines.append(f"\n[{name}]")
    lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in plain.items()]
    for key, value in body.items():
        if _is_array_of_tables(value):
            for item in value:
                lines.append(f"\n[[{name}.{key}]]")
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in item.items()]


def _is_table(v) -> bool:
    return isinstance(v, dict)


def _is_array_of_tables(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(i, dict) for i in v)


def write_task_file(spec: TaskSpec, adapter: Path, path: Path) -> Path:
    """Write the fine-tuned task file (absolute paths, `[model] adapter`); return its path."""
    data = tuned_spec(spec, adapter).model_dump(mode="json", exclude_none=True)
    data["input"]["location"] = str(Path(data["input"]["location"]).resolve())
    lines = ["# The task with a fine-tuned LoRA adapter, written by calscore finetune (paths absolute)."]
    lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in data.items() if not _is_table(v) and not _is_array_of_tables(v)]
    for key, value in data.items():
        if _is_table(value):
            _table(lines, key, value)
        elif _is_array_of_tables(value):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in item.items()]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # a writer bug must fail here, not in tomorrow's nightly run
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)
