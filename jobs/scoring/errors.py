"""The one error type for everything that stops a scorer from being built or from scoring."""
from __future__ import annotations

from calscore.jobs.common.errors import CalscoreError


class ScorerError(CalscoreError, ValueError):
    """A scorer cannot be built or cannot score these texts; the message says why and what to do."""
