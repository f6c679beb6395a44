"""The contract every scoring backend meets, and how a task names its backend.

A **scorer** turns texts into raw label scores for one task (prompt + labels):

    scorer = make_scorer(spec.model, spec.prompt, spec.labels)   # calscore.jobs.scoring.registry
    table = scorer.score(["a text", ...])     # pyarrow.Table in SCORE_SCHEMA, one row per text, input order
    scorer.explain("a text", top_k=10)        # an Explanation: top first tokens, label sums, prediction
    scorer.describe()                         # provenance: backend, model, precision actually used, ...

Streaming is one function for every backend (`calscore.jobs.scoring.streaming.iter_scores`),
so a backend only writes `score`, `explain` and `describe`.

A **backend** is the factory behind `[model] backend = "..."` in a task file: its
pydantic `config` class validates that section, `version_parts(config)` says what
it contributes to `task_version` and `provenance(config)` what a run records --
both without loading anything -- and `load(config, prompt, labels)` builds the
scorer. Backends are registered by name in `calscore.jobs.scoring.registry`.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel

from calscore.jobs.scoring.explain import Explanation
from calscore.jobs.scoring.prompting import PromptSpec


@runtime_checkable
class Scorer(Protocol):
    labels: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> pa.Table:
        """One row per text, in input order, with the columns of `schema.SCORE_SCHEMA`."""

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        """Every number behind one text's score, for `calscore explain`."""

    def describe(self) -> dict[str, Any]:
        """Provenance: backend, model reference, device, the precision actually used, version parts."""


class Backend(Protocol):
    name: str
    config: type[BaseModel]

    def version_parts(self, config: BaseModel) -> dict[str, Any]:
        """What changes this backend's raw scores (model identity, precision, ...): part of task_version."""

    def provenance(self, config: BaseModel) -> dict[str, Any]:
        """What a run records about the model, resolved without loading it."""

    def load(self, config: BaseModel, prompt: PromptSpec, labels: Mapping[str, Sequence[str]], **options: Any) -> Scorer:
        """A ready scorer; `options` are the backend's runtime knobs (never part of task_version)."""
