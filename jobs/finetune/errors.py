"""The one error type of fine-tuning: what cannot run, with why (the command line shows it as one line)."""
from __future__ import annotations

from calscore.jobs.common.errors import CalscoreError


class FinetuneError(CalscoreError, ValueError):
    """Fine-tuning cannot run for this task (wrong backend, already an adapter, too few labels)."""
