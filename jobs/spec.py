"""Task spec: one TOML file declares a scoring task; pydantic validates it.

Every error names the file, the field and what is wrong. Relative paths in the
file are resolved against the file's own folder, so a task file can be run from
anywhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Union, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from calscore.calibration_store.registry import METHODS
from calscore.jobs.common.config import StrictModel as _Strict
from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.scoring.prompting import PromptSpec
from calscore.jobs.scoring.registry import BACKENDS, DEFAULT_BACKEND, MODEL_CONFIGS, backend_for

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `[model]` is validated by its backend's config class (see calscore.jobs.scoring.registry).
ModelConfig = Annotated[Union[MODEL_CONFIGS], Field(discriminator="backend")]


class SpecError(CalscoreError, ValueError):
    """A task file that cannot be used, with every problem listed."""


class Bucket(_Strict):
    name: str
    min: float = Field(ge=0.0, le=1.0, description="inclusive lower bound on the confidence")


DEFAULT_BUCKETS = (
    Bucket(name="auto", min=0.90),
    Bucket(name="review", min=0.70),
    Bucket(name="manual_check", min=0.50),
    Bucket(name="manual", min=0.0),
)


class InputSpec(_Strict):
    location: str = Field(description="a folder of Parquet files or a glob; a path or a URI pyarrow.fs resolves")
    id_column: str = "id"
    text_column: str = "text"
    segment_column: str | None = None
    connect_timeout: float = Field(60.0, gt=0, description="seconds the location may take to answer when a run lists "
                                   "it: an object store or network filesystem that does not answer fails the run, "
                                   "naming it")


class WarehouseSpec(_Strict):
    path: Path


class CalibrationPolicy(_Strict):
    method: Literal[METHODS] = "auto"
    min_labels: int = Field(100, ge=10, description="labels needed before a calibrator may be promoted")
    refit_after_new_labels: int = Field(200, ge=1, description="new labels since the last fit that trigger a refit")
    min_holdout: int = Field(100, ge=30, description="labels a champion/challenger comparison needs "
                             "(why 100: calibration_store/promotion.py)")
    folds: int = Field(5, ge=2, le=20, description="folds of the evidence base: each label's out-of-fold prediction "
                       "comes from the recipe fitted on the other folds")
    certify_fraction: float = Field(0.2, ge=0.0, lt=0.9, description="share of the audit/random-sample labels kept "
                                    "out of every fit, to certify thresholds (0: only labels newer than the champion)")
    reapply_days: int = Field(7, ge=0, description="re-apply a new champion to the last N days of predictions (0: off)")
    reapply_max_rows: int | None = Field(None, ge=1, description="re-apply to at most the newest N rows of that "
                                         "window (none: every row)")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data):
        if isinstance(data, dict) and "holdout_fraction" in data:
            raise ValueError("holdout_fraction was removed: a promotion now compares out-of-fold predictions of every "
                             "label, with a forward check across nights (docs/calibration/promotion.md); delete "
                             "the line")
        return data


class HealthPolicy(_Strict):
    """When a night's figures raise a warning (compared with the champion's fit rows, else the nights before)."""

    coverage_drop: float = Field(0.10, gt=0.0, le=1.0, description="mean coverage this much below the reference")
    off_format_rise: float = Field(0.05, gt=0.0, le=1.0, description="off-format share this much above the reference")
    psi: float = Field(0.25, gt=0.0, description="population stability index of a label's raw share above this")
    quarantine_rise: float = Field(0.05, gt=0.0, le=1.0, description="quarantined share this much above the reference")
    min_bucket_labels: int = Field(30, ge=1, description="held-out labels a bucket needs before its accuracy is checked")


class ExecutionSpec(_Strict):
    """Where scoring runs: this process (`local`, one model load) or a Ray cluster (`ray`), and where it stages."""

    runner: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description='"auto", "host:port" or "ray://host:10001"; none: a local Ray')
    staging: str | None = Field(None, description="folder or URI workers and writer share; default beside the warehouse")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each scoring task asks Ray for")
    num_gpus: float | None = Field(None, ge=0, description="GPUs each scoring task asks for; default 1 on CUDA, else 0")
    max_retries: int = Field(2, ge=0, description="times Ray runs a scoring task again when its worker dies")
    connect_timeout: float = Field(60.0, gt=0, description="seconds the Ray cluster at ray_address may take to "
                                   "answer before the run fails (Ray's own client retries for many minutes)")


class LabelStudioSpec(_Strict):
    """Where `labels push` and `labels pull` find a team's Label Studio; the API token only ever comes from the
    environment, so it is never in a task file, the warehouse or a log."""

    url: str | None = Field(None, description="the server, e.g. http://labelstudio.internal:8080; none: "
                            "--url or $LABEL_STUDIO_URL")
    project: str | None = Field(None, description="a project's title (created when missing) or id; none: the task's name")
    api_key_env: str = Field("LABEL_STUDIO_API_KEY", description="the NAME of the variable holding the API token")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError("give the NAME of an environment variable (e.g. LABEL_STUDIO_API_KEY), never the token")
        return v


class TaskSpec(_Strict):
    name: str
    model: ModelConfig
    prompt: PromptSpec
    labels: dict[str, tuple[str, ...]] = Field(description="label -> answer-token variants (verbalizers), in order")
    buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS
    coverage_floor: float = Field(0.5, ge=0.0, le=1.0)
    input: InputSpec
    warehouse: WarehouseSpec
    calibration: CalibrationPolicy = CalibrationPolicy()
    health: HealthPolicy = HealthPolicy()
    execution: ExecutionSpec = ExecutionSpec()
    label_studio: LabelStudioSpec = LabelStudioSpec()
    source_path: Path | None = Field(None, exclude=True)

    @field_validator("model", mode="before")
    @classmethod
    def _default_backend(cls, v):
        if isinstance(v, dict) and "backend" not in v:
            return {"backend": DEFAULT_BACKEND, **v}
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("name must start with a letter and use only letters, digits, '_' or '-' (max 63)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if len(v) < 2:
            raise ValueError("at least two labels are needed")
        for label, variants in v.items():
            if not _NAME.match(label):
                raise ValueError(f"label {label!r}: use letters, digits, '_' or '-'")
            if not variants or any(not s for s in variants):
                raise ValueError(f"label {label!r}: give at least one non-empty answer variant")
        seen: dict[str, str] = {}
        for label, variants in v.items():
            for s in variants:
                if s in seen and seen[s] != label:
                    raise ValueError(f"variant {s!r} is given for both {seen[s]!r} and {label!r}")
                seen[s] = label
        return v

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v: tuple[Bucket, ...]) -> tuple[Bucket, ...]:
        if not v:
            raise ValueError("give at least one bucket")
        names = [b.name for b in v]
        if len(set(names)) != len(names):
            raise ValueError(f"bucket names must be unique: {names}")
        bounds = [b.min for b in v]
        if any(a <= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"bucket lower bounds must strictly decrease, highest first: {bounds}")
        if bounds[-1] != 0.0:
            raise ValueError("the last bucket takes the rest: its min must be 0")
        return v

    @model_validator(mode="after")
    def _combined_needs_both_signals(self) -> "TaskSpec":
        if self.calibration.method == "combined" and getattr(self.model, "method", None) != "combined":
            raise ValueError('[calibration] method = "combined" reads the agreement of sampled answers too: it needs '
                             '[model] method = "combined" (a scorer that gives both signals)')
        return self

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    @cached_property
    def task_version(self) -> str:
        """Stable hash of everything that changes the raw scores (not buckets, paths or policy).

        The backend says what of its `[model]` section counts (see `Backend.version_parts`);
        computed once per loaded spec (a model fingerprint reads the weight files).
        """
        payload = {
            **backend_for(self.model).version_parts(self.model),
            "prompt": self.prompt.model_dump(mode="json"),
            "labels": [[k, list(v)] for k, v in self.labels.items()],
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Resolve relative file paths in the raw TOML against the task file's folder."""
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        model["path"] = str((base / model["path"]).resolve())
    warehouse = raw.get("warehouse")
    if isinstance(warehouse, dict) and isinstance(warehouse.get("path"), str):
        warehouse["path"] = str((base / warehouse["path"]).resolve())
    execution = raw.get("execution")
    if isinstance(execution, dict) and isinstance(execution.get("staging"), str) and "://" not in execution["staging"]:
        execution["staging"] = str((base / execution["staging"]).resolve())
    inp = raw.get("input")
    if (isinstance(inp, dict) and isinstance(inp.get("location"), str) and "://" not in inp["location"]
            and not Path(inp["location"]).is_absolute()):
        inp["location"] = os.path.normpath(base.resolve() / inp["location"])
    return raw


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _backend_tag(loc: tuple) -> tuple[str | None, tuple]:
    """pydantic puts the backend's name into the location of `[model]` errors: take it out."""
    if len(loc) > 1 and loc[0] == "model" and loc[1] in BACKENDS:
        return loc[1], (loc[0], *loc[2:])
    return None, loc


def _allowed_fields(loc: tuple) -> list[str]:
    """The field names allowed in the table that `loc` points into (for 'unknown field' errors)."""
    backend, loc = _backend_tag(loc)
    model: type[BaseModel] = TaskSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is TaskSpec and part == "model" and backend is not None:
            model = BACKENDS[backend].config
            continue
        field = model.model_fields.get(part)
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return []
        model = models[0]
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid task spec ({err.error_count()} problem(s))"]
    for e in err.errors():
        field = ".".join(str(p) for p in _backend_tag(e["loc"])[1]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_fields(e["loc"])
            msg = "unknown field (a typo?)" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def check_resources(spec: TaskSpec) -> TaskSpec:
    """What the task file points at is usable (before any run starts): the model (its folder or
    table; computing task_version finds them) and the warehouse path. SpecError names the field."""
    where = spec.source_path or "task file"
    try:
        spec.task_version
    except (OSError, ValueError) as exc:
        raise SpecError(f"{where}: model: {exc}") from None
    warehouse = Path(spec.warehouse.path)
    parent = next((p for p in warehouse.parents if p.exists()), None)
    problem = None
    if warehouse.is_dir():
        problem = "is a folder, not a DuckDB file"
    elif parent is not None and not parent.is_dir():
        problem = f"{parent} is a file, not a folder"
    elif parent is not None and not os.access(parent, os.W_OK):
        problem = f"{parent} is not writable"
    if problem:
        raise SpecError(f"{where}: warehouse.path: {warehouse} cannot be used: {problem}")
    return spec


def check_answers(spec: TaskSpec) -> TaskSpec:
    """What scoring would refuse that the task file alone decides, checked with the model's tokenizer and no
    weights (answer variants that share a first token, a prompt the tokenizer cannot render): before a scoring
    run takes the lock. SpecError names the field, on one line."""
    from calscore.jobs.scoring.errors import ScorerError
    from calscore.jobs.scoring.prompting import PromptError
    from calscore.jobs.scoring.registry import check_scorer
    from calscore.jobs.scoring.verbalizers import VerbalizerError

    try:
        check_scorer(spec.model, spec.prompt, spec.labels)
    except ScorerError as exc:
        field = "labels" if isinstance(exc, VerbalizerError) else "prompt" if isinstance(exc, PromptError) else "model"
        raise SpecError(f"{spec.source_path or 'task file'}: {field}: {' '.join(str(exc).split())}") from None
    return spec


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate a task TOML file; raise SpecError naming file, field and problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: task file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the task file: {exc}") from None
    raw = _resolve_paths(raw, path.parent)
    try:
        return TaskSpec.model_validate({**raw, "source_path": path.resolve()})
    except ValidationError as exc:
        raise SpecError(_format_errors(path, exc)) from None
