"""Which confidence signal is worth most on held-out labels: the first-token log-probabilities
alone, the agreement of sampled answers alone, or both combined (`combined.CombinedCalibrator`)?

    compare_signals(labels, logprobs, agree_lp, y)   # {"logprobs": report, "agreement": ..., "combined": ...}
    signal_comparison_markdown(result)               # the table the recalibration report shows
"""
from __future__ import annotations

from typing import Any, Sequence

from calscore.calibration_store import metrics
from calscore.calibration_store.combined import stack_signals
from calscore.calibration_store.evaluation import cross_fit
from calscore.calibration_store.validation import check_labels, check_logprobs, check_targets, check_weights


def compare_signals(labels: Sequence[str], logprobs: Any, agreement: Any, y: Any, weights: Any = None,
                    folds: int = 5, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Held-out reliability of Platt on each signal alone and of the combined map, on the same rows.

    Cross-fitted (every row predicted by maps fitted on the other folds, the same folds for all
    three), weighted like the fits. Keys: "logprobs", "agreement", "combined".
    """
    labels = check_labels(labels)
    x, a = check_logprobs(logprobs, len(labels)), check_logprobs(agreement, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    probs = {"logprobs": cross_fit("platt", labels, x, t, w, folds, seed),
             "agreement": cross_fit("platt", labels, a, t, w, folds, seed),
             "combined": cross_fit("combined", labels, stack_signals(x, a), t, w, folds, seed)}
    return {name: {**metrics.reliability_report(p, t, w, seed=seed), "evaluation": f"{folds}-fold cross-fitting"}
            for name, p in probs.items()}


def signal_comparison_markdown(result: dict[str, dict[str, Any]]) -> str:
    """The comparison as a Markdown table (for the recalibration report)."""
    lines = ["| signal | n | accuracy | ECE | NLL | Brier | AUROC |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in result.items():
        auroc = "-" if r.get("auroc") is None else f"{r['auroc']:.3f}"
        lines.append(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['ece']:.3f} | {r['nll']:.3f} | "
                     f"{r['brier']:.3f} | {auroc} |")
    return "\n".join(lines)
