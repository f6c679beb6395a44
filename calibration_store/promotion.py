"""Champion / challenger on a time split, and manual promote / rollback.

`decide` holds out the newest labels (the newest `holdout_fraction`, keeping
only labels that arrived after the champion's fit window, so neither
calibrator has seen them), fits the challenger on all the other labels, and
scores both on the held-out slice -- the champion, or the raw scores when
there is no champion yet. The challenger is promoted only when its held-out
NLL is lower, its ECE is not worse beyond noise (the guard: the larger of
`ece_tolerance` and half the width of the baseline's bootstrap ECE interval,
since a few hundred held-out rows cannot resolve smaller ECE changes), and it
was fitted on at least the policy's `min_labels`. Weights (inverse inclusion
probabilities) enter the fit and every figure.

`record_decision` stores exactly the calibrator that was evaluated and
records the decision with its figures; `promote` and `rollback` are the
manual levers, recorded as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from calscore.calibration_store import metrics
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import build_document, load_document
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import (
    CHAMPION_EVENTS,
    champion,
    list_events,
    record_event,
    save_calibrator,
    set_champion,
    transaction,
)
from calscore.calibration_store.validation import check_labels, check_logprobs, check_targets, check_weights

# The figures kept in a decision event (the bins stay in the document).
_SUMMARY = ("n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low", "ece_ci_high", "mce", "nll", "brier", "auroc")


@dataclass(frozen=True)
class Decision:
    """The outcome of one champion/challenger comparison."""

    promote: bool
    reason: str
    challenger_metrics: dict[str, Any] | None  # reliability report on the held-out slice
    champion_metrics: dict[str, Any] | None  # the champion's, or the raw scores' when there is no champion
    n_holdout: int
    n_train: int = 0
    task_version: str = ""
    baseline: str = "raw"  # "raw" or "champion:<version>"
    fit_window: tuple[str, str] | None = None  # label times the challenger was fitted on
    holdout_window: tuple[str, str] | None = None
    holdout_index: np.ndarray | None = field(default=None, repr=False, compare=False)  # rows of the held-out slice
    challenger: BaseCalibrator | None = field(default=None, repr=False, compare=False)

    def figures(self) -> dict[str, Any]:
        """JSON-safe summary recorded with the decision event."""

        def summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
            return None if report is None else {k: report[k] for k in _SUMMARY}

        return {
            "promote": self.promote,
            "reason": self.reason,
            "baseline": self.baseline,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "holdout_window": list(self.holdout_window) if self.holdout_window else None,
            "challenger": summary(self.challenger_metrics),
            "baseline_metrics": summary(self.champion_metrics),
        }


def _utc_datetime64(times: Any, n: int) -> np.ndarray:
    """Times as naive-UTC datetime64[us]; aware datetimes and ISO strings are converted, naive ones taken as UTC."""
    if isinstance(times, (pa.Array, pa.ChunkedArray)):
        times = times.to_pylist()
    arr = np.asarray(times)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"times must be a 1-D sequence of {n} label times, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        out = arr.astype("datetime64[us]")
    else:
        out = np.array([_to_naive_utc(t) for t in arr.tolist()], dtype="datetime64[us]")
    if np.isnat(out).any():
        raise ValueError("times must not be missing (NaT/None)")
    return out


def _to_naive_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"times must be datetimes or ISO 8601 strings, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _iso(t: np.datetime64) -> str:
    return t.astype("datetime64[us]").item().replace(tzinfo=timezone.utc).isoformat()


def verdict(
    challenger: Mapping[str, Any], baseline: Mapping[str, Any], ece_tolerance: float, against: str = "the champion"
) -> tuple[bool, str]:
    """The promotion rule on held-out figures: lower NLL, and ECE not worse than the baseline's beyond noise."""
    ch_nll, base_nll = challenger["nll"], baseline["nll"]
    ch_ece, base_ece = challenger["ece"], baseline["ece"]
    if not ch_nll < base_nll:
        return False, f"held-out NLL {ch_nll:.4f} is not better than {against} ({base_nll:.4f})"
    noise = (baseline["ece_ci_high"] - baseline["ece_ci_low"]) / 2 if baseline.get("ece_ci_high") is not None else 0.0
    margin = max(ece_tolerance, noise)
    if ch_ece > base_ece + margin:
        return False, (
            f"held-out NLL improves ({ch_nll:.4f} < {base_nll:.4f}) but ECE fails the guard: "
            f"{ch_ece:.4f} > {base_ece:.4f} of {against} + margin {margin:.4f} (tolerance or bootstrap noise)"
        )
    return True, f"held-out NLL {ch_nll:.4f} < {base_nll:.4f} of {against}, ECE {ch_ece:.4f} vs {base_ece:.4f}"


def decide(
    logprobs: Any,
    y: Any,
    times: Any,
    *,
    labels: Sequence[str],
    task_version: str,
    method: str = "auto",
    champion_document: Mapping[str, Any] | None = None,
    weights: Any = None,
    holdout_fraction: float = 0.2,
    min_labels: int = 100,
    min_holdout: int = 30,
    ece_tolerance: float = 0.01,
    n_bins: int = metrics.DEFAULT_N_BINS,
    **params: Any,
) -> Decision:
    """Fit a `method` challenger on all but the newest labels and compare it with the champion (or raw) on them.

    `times` are the labels' arrival times (e.g. labels.imported_at); the champion's
    document gives its fit window and is loaded only if it belongs to `task_version`.
    """
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    ts = _utc_datetime64(times, x.shape[0])
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    for name, value in (("min_labels", min_labels), ("min_holdout", min_holdout)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not ece_tolerance >= 0:
        raise ValueError(f"ece_tolerance must be >= 0, got {ece_tolerance!r}")
    make_calibrator(method, labels, **params)  # a bad method or parameter fails before any work

    champ: BaseCalibrator | None = None
    baseline = "raw"
    n = x.shape[0]
    newest = np.argsort(ts, kind="stable")[n - max(1, math.ceil(holdout_fraction * n)) :]
    if champion_document is not None:
        champ = load_document(champion_document, task_version)
        fit_end = np.datetime64(_to_naive_utc(champion_document["fit_window"]["end"]), "us")
        newest = newest[ts[newest] > fit_end]  # the champion has seen labels up to its fit window's end
        baseline = f"champion:{champion_document['version']}"
    holdout = np.zeros(n, dtype=bool)
    holdout[newest] = True
    train = ~holdout
    n_hold, n_train = int(holdout.sum()), int(train.sum())
    common = dict(
        n_holdout=n_hold,
        n_train=n_train,
        task_version=task_version,
        baseline=baseline,
        holdout_index=np.flatnonzero(holdout),
    )

    def refuse(reason: str, **more: Any) -> Decision:
        return Decision(promote=False, reason=reason, challenger_metrics=None, champion_metrics=None, **common, **more)

    if n_hold < min_holdout:
        where = "after the champion's fit window" if champ is not None else "in the newest slice"
        return refuse(f"only {n_hold} held-out labels {where} (< min_holdout={min_holdout}): no comparison")
    if n_train < min_labels:
        return refuse(f"the challenger would be fitted on {n_train} labels (< policy min_labels={min_labels})")
    w_train = None if w is None else w[train]
    w_hold = None if w is None else w[holdout]
    try:
        challenger = make_calibrator(method, labels, **params).fit(x[train], t[train], w_train)
    except ValueError as exc:
        return refuse(f"the challenger could not be fitted: {exc}")

    challenger_report = metrics.reliability_report(challenger.predict_proba(x[holdout]), t[holdout], w_hold, n_bins)
    base_probs = metrics.raw_probs(x[holdout]) if champ is None else champ.predict_proba(x[holdout])
    base_report = metrics.reliability_report(base_probs, t[holdout], w_hold, n_bins)
    promote, reason = verdict(challenger_report, base_report, ece_tolerance, "the champion" if champ is not None else "the raw scores")
    if promote:
        reason += f"; {n_train} fit labels, {n_hold} held-out"
    return Decision(
        promote=promote,
        reason=reason,
        challenger_metrics=challenger_report,
        champion_metrics=base_report,
        fit_window=(_iso(ts[train].min()), _iso(ts[train].max())),
        holdout_window=(_iso(ts[holdout].min()), _iso(ts[holdout].max())),
        challenger=challenger,
        **common,
    )


def record_decision(
    con: duckdb.DuckDBPyConnection, decision: Decision, *, task_name: str, actor: str
) -> str | None:
    """Store the evaluated challenger and record the decision (promoted or rejected) with its figures.

    Returns the challenger's version, or None when no challenger was fitted
    (nothing to store; the decision's reason says why).
    """
    if decision.challenger is None:
        return None
    heldout = {
        "evaluation": "time split",
        "baseline": decision.baseline,
        "holdout_window": list(decision.holdout_window),
        **decision.challenger_metrics,
    }
    doc = build_document(
        decision.challenger, task_name, decision.task_version, decision.fit_window, decision.n_train, heldout
    )
    with transaction(con):
        version = save_calibrator(con, doc, actor=actor, reason="challenger, time split")
        if decision.promote:
            set_champion(con, version, actor=actor, reason=decision.reason, event="promoted", metrics=decision.figures())
        else:
            record_event(con, decision.task_version, version, "rejected", actor, decision.reason, decision.figures())
    return version


def promote(con: duckdb.DuckDBPyConnection, version: str, actor: str, reason: str) -> str | None:
    """Make a stored calibrator the champion by hand (recorded as manual_promote); return the retired version."""
    if not reason:
        raise ValueError("a manual promotion needs a reason")
    row = con.execute("SELECT status FROM calibrators WHERE version = ?", [version]).fetchone()
    if row is None:
        raise ValueError(f"no calibrator {version!r} in the store")
    if row[0] == "champion":
        raise ValueError(f"calibrator {version} already is the champion")
    return set_champion(con, version, actor=actor, reason=reason, event="manual_promote")


def champion_history(con: duckdb.DuckDBPyConnection, task_version: str) -> list[str]:
    """The stack of champions, oldest first, from the event log (a rollback pops the current one)."""
    stack: list[str] = []
    for e in list_events(con, task_version):
        if e["event"] not in CHAMPION_EVENTS:
            continue
        if e["event"] == "rollback":
            while stack and stack[-1] != e["version"]:
                stack.pop()
            if not stack:
                stack.append(e["version"])
        elif not stack or stack[-1] != e["version"]:
            stack.append(e["version"])
    return stack


def rollback(con: duckdb.DuckDBPyConnection, task_version: str, actor: str, reason: str) -> str:
    """Make the previous champion the champion again (recorded as rollback); return its version."""
    if not reason:
        raise ValueError("a rollback needs a reason")
    current = champion(con, task_version)
    if current is None:
        raise ValueError(f"task_version {task_version} has no champion to roll back")
    stack = champion_history(con, task_version)
    if not stack or stack[-1] != current["version"]:
        raise ValueError(
            f"the event log of task_version {task_version} does not end with the current champion "
            f"{current['version']}; promote the intended version by hand instead"
        )
    if len(stack) < 2:
        raise ValueError(f"task_version {task_version} has no previous champion to roll back to")
    previous = stack[-2]
    set_champion(con, previous, actor=actor, reason=reason, event="rollback")
    return previous
