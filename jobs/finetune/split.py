"""Labeled rows split by time into train / validation / held-out, and the hash of what was trained on.

    split = time_split(times, row_ids, holdout_since=night_2_start)   # or the newest holdout_fraction
    split.train, split.validation, split.heldout                      # index arrays into the rows
    split.record(row_ids)                                             # counts, time bounds, id hashes

Rows are ordered by the time they were scored, then by row id (rows of one batch share a time).
Held-out: the rows scored at or after `holdout_since`, else the newest `holdout_fraction`; of the
rest, the newest `validation_fraction` validate, the older ones train. So the adapter learns
from the past and is judged on what came after, as it will be used; held-out rows are never
seen by training, early stopping or the fine-tuned calibrator.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from calscore.jobs.finetune.errors import FinetuneError

MIN_TRAIN_ROWS = 8
MIN_VALIDATION_ROWS = 4


class SplitError(FinetuneError):
    """Too few labeled rows for one of the three parts."""


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    heldout: np.ndarray
    times: np.ndarray  # datetime64 per row, what the split ordered by
    rule: dict

    def record(self, row_ids: np.ndarray) -> dict:
        """What the manifest keeps: the rule, and per part its rows, time bounds and id hash."""
        parts = {}
        for name in ("train", "validation", "heldout"):
            index = getattr(self, name)
            t = self.times[index]
            parts[name] = {
                "rows": int(len(index)),
                "first_scored_at": str(t.min()) if len(t) else None,
                "last_scored_at": str(t.max()) if len(t) else None,
                "row_ids_sha256": ids_hash(row_ids[index]),
            }
        return {**self.rule, "order": "scored_at, then row_id", "parts": parts}

    def row_ids(self, row_ids: np.ndarray) -> dict[str, list[str]]:
        return {name: sorted(str(r) for r in row_ids[getattr(self, name)]) for name in ("train", "validation", "heldout")}


def ids_hash(row_ids) -> str:
    return hashlib.sha256("\n".join(sorted(str(r) for r in row_ids)).encode()).hexdigest()


def labels_hash(row_ids, labels, texts) -> str:
    """sha256 of the (row id, label, text) triples, order-free: the training data's identity."""
    lines = sorted(f"{r}\t{lab}\t{hashlib.sha256(t.encode()).hexdigest()}" for r, lab, t in zip(row_ids, labels, texts))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def time_split(
    times: np.ndarray,
    row_ids: np.ndarray,
    *,
    validation_fraction: float = 0.25,
    holdout_fraction: float = 0.2,
    holdout_since: datetime | None = None,
) -> Split:
    """Train / validation / held-out index arrays by scoring time (see the module docstring)."""
    if not 0 < validation_fraction < 1 or not 0 < holdout_fraction < 1:
        raise SplitError("validation_fraction and holdout_fraction must be between 0 and 1")
    times = np.asarray(times).astype("datetime64[us]")
    row_ids = np.asarray(row_ids, dtype=object)
    order = np.lexsort((row_ids.astype(str), times))
    if holdout_since is not None:
        # times are UTC without a zone (as DuckDB's TIMESTAMPTZ arrive); a naive cut is taken as UTC
        aware = holdout_since if holdout_since.tzinfo else holdout_since.replace(tzinfo=timezone.utc)
        cut = np.datetime64(aware.astimezone(timezone.utc).replace(tzinfo=None), "us")
        n_held = int((times[order] >= cut).sum())
        rule = {"holdout_since": aware.isoformat()}
    else:
        n_held = int(round(holdout_fraction * len(order)))
        rule = {"holdout_fraction": holdout_fraction}
    rest = order[: len(order) - n_held]
    n_val = int(round(validation_fraction * len(rest)))
    split = Split(train=np.sort(rest[: len(rest) - n_val]), validation=np.sort(rest[len(rest) - n_val:]),
                  heldout=np.sort(order[len(order) - n_held:]), times=times,
                  rule={**rule, "validation_fraction": validation_fraction})
    problems = [f"{name}: {len(getattr(split, name))} rows (need {need})"
                for name, need in (("train", MIN_TRAIN_ROWS), ("validation", MIN_VALIDATION_ROWS), ("heldout", 1))
                if len(getattr(split, name)) < need]
    if problems:
        raise SplitError(f"too few labeled rows for a time split of {len(order)} rows: " + "; ".join(problems))
    return split
