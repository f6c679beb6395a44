"""Scoring backends by name, and the one factory everything gets its scorer from.

    scorer = make_scorer(spec.model, spec.prompt, spec.labels)

Adding a backend: write one module under `backends/` with a pydantic `config` class
(its `backend` field a Literal of the name, and a `describe()` naming the model),
`version_parts`, `provenance` and `load` (see `scorer.Backend`), and add it to
`_BACKENDS` below. The task file then takes
`[model] backend = "<name>"` and the spec validates the section with its config.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from calscore.jobs.scoring.backends.local_sampling import TRANSFORMERS_SAMPLING
from calscore.jobs.scoring.backends.lookup import LOOKUP
from calscore.jobs.scoring.backends.openai_compatible import OPENAI_COMPATIBLE
from calscore.jobs.scoring.backends.transformers import TRANSFORMERS
from calscore.jobs.scoring.prompting import PromptSpec
from calscore.jobs.scoring.scorer import Backend, Scorer

_BACKENDS: tuple[Backend, ...] = (TRANSFORMERS, LOOKUP, OPENAI_COMPATIBLE, TRANSFORMERS_SAMPLING)
BACKENDS: dict[str, Backend] = {backend.name: backend for backend in _BACKENDS}
DEFAULT_BACKEND = TRANSFORMERS.name
MODEL_CONFIGS: tuple[type[BaseModel], ...] = tuple(backend.config for backend in _BACKENDS)


def backend_for(config: BaseModel) -> Backend:
    return BACKENDS[config.backend]


def check_scorer(config: BaseModel, prompt: PromptSpec, labels: Mapping[str, Sequence[str]]) -> None:
    """What building the scorer would refuse that the task file alone decides (e.g. answer variants that share
    a first token), checked without loading a model; raises ScorerError. A backend without `check` has none."""
    check = getattr(backend_for(config), "check", None)
    if check is not None:
        check(config, prompt, labels)


def make_scorer(config: BaseModel, prompt: PromptSpec, labels: Mapping[str, Sequence[str]], **options: Any) -> Scorer:
    """Build the scorer a `[model]` section names; raises ScorerError (or a subclass) with the reason."""
    return backend_for(config).load(config, prompt, labels, **options)
