"""The base of every task-file section: unknown fields are errors (typos surface) and values are frozen."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
