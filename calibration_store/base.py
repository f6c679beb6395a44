"""The calibrator estimator shape shared by every method.

A calibrator maps a row's K label log-probabilities (log p(label) from the
model, not normalised over the labels) to K calibrated probabilities. Every
method first reduces a row to its label distribution -- each label's share of
the label mass, s_k = p_k / sum_j p_j -- so calibration is independent of the
row's coverage (the total mass on label tokens; off-format rows are handled by
the bucketing, not here).

Estimator shape as in scikit-learn: `__init__` stores the arguments, `fit`
validates them (against the class's declared `_parameter_constraints`) and the
data, and returns self; fitted state ends in `_`. `to_dict` / `from_dict`
serialise hyper-parameters and fitted state as plain JSON numbers, and
`predict_proba` only ever reads that state, so a calibrator loaded from JSON
predicts bit-for-bit what the fitted one did.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar, Mapping

import numpy as np
from scipy.special import expit, log_expit, log_softmax, logsumexp, softmax
from threadpoolctl import ThreadpoolController

from calscore.calibration_store.validation import (
    BOOL,
    Interval,
    NoneOr,
    check_fit_data,
    check_labels,
    check_logprobs,
    normalised_weights,
    validate_params,
)


_BLAS: ThreadpoolController | None = None


def single_threaded_blas():
    """A context with BLAS limited to one thread.

    Calibration fits are tiny (a few parameters); BLAS threads only spin, and
    on a busy machine they slow L-BFGS down ten-fold (measured on 2 shared cores).
    """
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def log_shares(logprobs: np.ndarray) -> np.ndarray:
    """log s_k: each label's log share of the row's label mass (log-softmax over the K labels)."""
    return log_softmax(logprobs, axis=1)


def log_rest(ls: np.ndarray, k: int) -> np.ndarray:
    """log(1 - s_k), computed as log-sum-exp of the other labels' shares (exact for shares near 1)."""
    others = [j for j in range(ls.shape[1]) if j != k]
    return logsumexp(ls[:, others], axis=1)


class BaseCalibrator:
    """Common fit / predict / serialise logic; subclasses implement `_fit`, `_predict_log_odds` or `_predict`, and state I/O."""

    method: ClassVar[str]
    _parameter_constraints: ClassVar[dict[str, Any]] = {}
    # Fewer labeled rows than this cannot support any calibration map.
    min_labels: ClassVar[int] = 10

    labels: tuple[str, ...]

    # -- parameters -----------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (not labels, not fitted state), as passed to __init__."""
        return {name: getattr(self, name) for name in self._parameter_constraints}

    def _validate_params(self) -> None:
        self.labels = check_labels(self.labels)
        validate_params(self.get_params(), self._parameter_constraints, type(self).__name__)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}(labels={list(self.labels)!r}{', ' if args else ''}{args})"

    # -- fit / predict ----------------------------------------------------------------

    def fit(self, logprobs: Any, y: Any, sample_weight: Any = None) -> "BaseCalibrator":
        """Fit on (n, K) label log-probabilities and (n,) label indices; weights are e.g. inverse inclusion probabilities."""
        self._validate_params()
        x, t, w = check_fit_data(logprobs, y, sample_weight, self.n_labels, self.min_labels)
        with single_threaded_blas():
            self._fit(self._inputs(x), t, normalised_weights(w, t.shape[0]))
        self.n_fit_rows_ = int(t.shape[0])
        return self

    def predict_proba(self, logprobs: Any) -> np.ndarray:
        """(n, K) calibrated probabilities, rows summing to 1."""
        self._check_fitted()
        x = check_logprobs(logprobs, self.n_labels)
        return self._predict(self._inputs(x))

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        """What `_fit` and `_predict` read: the label log shares (a subclass may add columns)."""
        return log_shares(x)

    def predict(self, logprobs: Any) -> np.ndarray:
        """(n,) index of the calibrated prediction (argmax of predict_proba)."""
        return np.argmax(self.predict_proba(logprobs), axis=1)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_fit_rows_"):
            from sklearn.exceptions import NotFittedError  # where used: see the package docstring

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() or load it with from_dict()")

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe {"method", "labels", "params"}; params = hyper-parameters + fitted state."""
        self._check_fitted()
        params = dict(self.get_params())
        for key, value in params.items():
            if isinstance(value, tuple):
                params[key] = list(value)
        state = self._get_state()
        state["n_fit_rows"] = self.n_fit_rows_
        clash = set(params) & set(state)
        assert not clash, clash
        return {"method": self.method, "labels": list(self.labels), "params": {**params, **state}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BaseCalibrator":
        """Rebuild a fitted calibrator from `to_dict()` output; a malformed dict raises ValueError."""
        if not isinstance(data, Mapping) or set(data) != {"method", "labels", "params"}:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"a calibrator dict has exactly the keys method, labels, params; got {got}")
        if data["method"] != cls.method:
            raise ValueError(f"{cls.__name__} cannot load a {data['method']!r} calibrator")
        params = data["params"]
        if not isinstance(params, Mapping):
            raise ValueError("calibrator params must be a JSON object")
        missing = [k for k in cls._parameter_constraints if k not in params]
        if missing:
            raise ValueError(f"{cls.method} calibrator params miss {missing}")
        hyper = {k: params[k] for k in cls._parameter_constraints}
        cal = cls(labels=check_labels(data["labels"]), **hyper)
        cal._validate_params()
        state = {k: v for k, v in params.items() if k not in cls._parameter_constraints}
        n_fit = state.pop("n_fit_rows", None)
        if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit < 1:
            raise ValueError(f"{cls.method} calibrator params need n_fit_rows (a positive integer), got {n_fit!r}")
        cal._set_state(state)
        cal.n_fit_rows_ = n_fit
        return cal

    # -- subclass hooks -----------------------------------------------------------------

    def _fit(self, ls: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, ls: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class OneVsRestCalibrator(BaseCalibrator):
    """A binary calibration map per label, on that label's share against the rest, renormalised.

    With two labels one map is fitted, for label 1 against label 0, so its
    feature is exactly the log-odds log p(l1) - log p(l0); label 0 gets the
    complement. With K > 2 labels, map k sees log s_k and log(1 - s_k), and the
    K one-vs-rest probabilities are renormalised to sum to 1 (as in
    scikit-learn's CalibratedClassifierCV; Zadrozny & Elkan 2002).

    Subclasses fit one binary model on (log s, log(1 - s)) features and
    return, for prediction, its log-odds score (finite by construction).
    """

    def _targets(self) -> list[int]:
        return [1] if self.n_labels == 2 else list(range(self.n_labels))

    def _features(self, ls: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return ls[:, k], log_rest(ls, k)

    def _fit(self, ls: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        self.models_ = [
            self._fit_binary(*self._features(ls, k), (y == k).astype(np.float64), w) for k in self._targets()
        ]

    def _predict(self, ls: np.ndarray) -> np.ndarray:
        scores = [self._score_binary(*self._features(ls, k), model) for k, model in zip(self._targets(), self.models_)]
        if self.n_labels == 2:
            s = scores[0]
            # expit(-s) rather than 1 - expit(s): keeps the small side exact.
            return np.column_stack([expit(-s), expit(s)])
        return softmax(np.column_stack([log_expit(s) for s in scores]), axis=1)

    def _get_state(self) -> dict[str, Any]:
        return {"models": [{k: _jsonable(v) for k, v in m.items()} for m in self.models_]}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"models"}:
            raise ValueError(f"{self.method} calibrator state has exactly the key 'models', got {sorted(state)}")
        models = state["models"]
        if not isinstance(models, list) or len(models) != len(self._targets()):
            raise ValueError(f"{self.method} calibrator for {self.n_labels} labels needs {len(self._targets())} model(s)")
        self.models_ = [self._load_binary(m) for m in models]

    def _fit_binary(self, log_s, log_rest_, target, w) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_binary(self, log_s, log_rest_, model) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_binary(self, model: Any) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_numbers(model: Any, spec: Mapping[str, str], owner: str) -> dict[str, Any]:
    """Check one serialised model: exactly the keys of `spec` ('scalar', 'vector', 'vector_or_empty'), finite numbers."""
    if not isinstance(model, Mapping) or set(model) != set(spec):
        got = sorted(model) if isinstance(model, Mapping) else type(model).__name__
        raise ValueError(f"{owner} model needs exactly the keys {sorted(spec)}, got {got}")
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        value = model[key]
        if kind == "scalar":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{owner}.{key} must be a finite number, got {value!r}")
            out[key] = float(value)
        else:
            ok = isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
            arr = np.asarray(value, dtype=np.float64) if ok else np.empty((0, 0))
            min_len = 0 if kind == "vector_or_empty" else 1
            if arr.ndim != 1 or arr.shape[0] < min_len or not np.isfinite(arr).all():
                raise ValueError(f"{owner}.{key} must be a list of finite numbers (at least {min_len})")
            out[key] = arr
    return out


class LogisticOneVsRest(OneVsRestCalibrator):
    """One-vs-rest maps fitted by `logistic.fit_logistic` (Platt, beta): the same two regularisers."""

    _parameter_constraints = {
        "smoothing": BOOL,
        "C": NoneOr(Interval(Real, 0.0, None, closed="neither")),
    }

    def __init__(self, labels, *, smoothing: bool = True, C: float | None = None):
        self.labels = labels
        self.smoothing = smoothing
        self.C = C
