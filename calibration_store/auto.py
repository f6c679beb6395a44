"""`auto`: pick the method with the lowest cross-validated NLL on the labeled rows.

Every candidate is cross-fitted (k folds, seeded) and scored by the weighted
NLL of its held-out predictions; the winner is refitted on all rows. With
fewer than `min_selection_labels` rows the comparison itself is noise, so the
one-parameter temperature scaling is used (Guo et al. 2017 found it hard to
beat). A candidate that cannot be fitted on some fold (say, too few rows of a
label) is left out, and its reason recorded. `to_dict` records the choice,
every candidate's CV NLL and the chosen calibrator itself.
"""
from __future__ import annotations

from numbers import Integral
from typing import Any, Mapping

import numpy as np

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.folds import cross_fit_with
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.metrics import nll
from calscore.calibration_store.validation import Interval, MethodList

FALLBACK = "temperature"


class AutoCalibrator(BaseCalibrator):
    """Choose among `methods` by cross-validated NLL; temperature scaling when labels are few.

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    methods : candidates, in order of preference on ties (simplest first).
    folds, seed : the cross-validation used for the choice.
    min_selection_labels : below this many labeled rows, use temperature scaling.
    """

    method = "auto"
    _parameter_constraints = {
        "methods": MethodList(tuple(CANDIDATES)),
        "folds": Interval(Integral, 2, 20),
        "seed": Interval(Integral, 0, None),
        "min_selection_labels": Interval(Integral, 10, None),
    }

    def __init__(
        self,
        labels,
        *,
        methods: tuple[str, ...] = tuple(CANDIDATES),
        folds: int = 5,
        seed: int = 0,
        min_selection_labels: int = 100,
    ):
        self.labels = labels
        self.methods = methods
        self.folds = folds
        self.seed = seed
        self.min_selection_labels = min_selection_labels

    @classmethod
    def chosen_by_evidence(cls, calibrator: BaseCalibrator, *, cv_nll: Mapping[str, float],
                           skipped: Mapping[str, str], folds: int, seed: int) -> "AutoCalibrator":
        """An `auto` calibrator whose choice was made outside, on an evidence base's out-of-fold NLL
        (`promotion.decide`): `calibrator` is the chosen method already fitted on every labeled row."""
        auto = cls(labels=calibrator.labels, folds=folds, seed=seed)
        auto._validate_params()
        auto.cv_nll_ = {str(k): float(v) for k, v in cv_nll.items()}
        auto.skipped_ = {str(k): str(v) for k, v in skipped.items()}
        auto.chosen_method_ = calibrator.method
        auto.reason_ = f"lowest {folds}-fold out-of-fold NLL ({auto.cv_nll_[calibrator.method]:.4f})"
        auto.calibrator_ = calibrator
        auto.n_fit_rows_ = calibrator.n_fit_rows_
        return auto

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        # the candidates get the label log-probabilities as given (platt_coverage reads their total mass)
        return x

    def _fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        n = int((w > 0).sum())
        self.cv_nll_: dict[str, float] = {}
        self.skipped_: dict[str, str] = {}
        if n < self.min_selection_labels:
            chosen = FALLBACK
            self.reason_ = f"{n} labeled rows < min_selection_labels={self.min_selection_labels}: temperature scaling"
        else:
            for name in self.methods:
                cls = CANDIDATES[name]
                try:
                    held_out = cross_fit_with(
                        lambda cls=cls: cls(labels=self.labels), x, y, w, self.n_labels, self.folds, self.seed
                    )
                except ValueError as exc:
                    self.skipped_[name] = str(exc)
                    continue
                self.cv_nll_[name] = nll(held_out, y, w)
            if self.cv_nll_:
                chosen = min(self.cv_nll_, key=lambda m: (self.cv_nll_[m], self.methods.index(m)))
                self.reason_ = f"lowest {self.folds}-fold cross-validated NLL ({self.cv_nll_[chosen]:.4f})"
            else:
                chosen = FALLBACK
                self.reason_ = "no candidate could be cross-fitted: temperature scaling"
        self.calibrator_ = CANDIDATES[chosen](labels=self.labels).fit(x, y, w)
        self.chosen_method_ = chosen

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self.calibrator_.predict_proba(x)

    def _get_state(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen_method_,
            "reason": self.reason_,
            "cv_nll": dict(self.cv_nll_),
            "skipped": dict(self.skipped_),
            "calibrator": self.calibrator_.to_dict(),
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        keys = {"chosen", "reason", "cv_nll", "skipped", "calibrator"}
        if set(state) != keys:
            raise ValueError(f"auto calibrator state needs exactly the keys {sorted(keys)}, got {sorted(state)}")
        chosen = state["chosen"]
        if chosen not in CANDIDATES:
            raise ValueError(f"auto calibrator chose an unknown method {chosen!r}")
        inner = CANDIDATES[chosen].from_dict(state["calibrator"])
        if inner.labels != self.labels:
            raise ValueError("auto calibrator's inner calibrator has other labels")
        cv = state["cv_nll"]
        if not isinstance(cv, Mapping) or not all(isinstance(v, (int, float)) for v in cv.values()):
            raise ValueError("auto calibrator cv_nll must map methods to numbers")
        self.chosen_method_ = chosen
        self.reason_ = str(state["reason"])
        self.cv_nll_ = {str(k): float(v) for k, v in cv.items()}
        self.skipped_ = {str(k): str(v) for k, v in dict(state["skipped"]).items()}
        self.calibrator_ = inner
