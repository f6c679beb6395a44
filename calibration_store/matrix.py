"""Full matrix scaling with ODIR regularisation (Kull et al. 2019).

p = softmax(W log s + b): a K x K matrix W and K intercepts b on the label
log-shares log s (the inputs of vector scaling, which is the special case of a
diagonal W). Every label's calibrated logit reads every label's share, so the
map can undo a confusion between two labels, which per-label maps cannot. The
log-shares are the log-probabilities of a K-label distribution, so in the terms
of Kull, Perello-Nieto, Kängsepp, Silva Filho, Song & Flach, "Beyond temperature
scaling: Obtaining well-calibrated multi-class probabilities with Dirichlet
calibration" (NeurIPS 2019), this is their Dirichlet calibration map, a
multinomial logistic regression on log q; they call the same map on a
network's logits matrix scaling.

Regularisation is theirs, ODIR (off-diagonal and intercept regularisation),
with their normalisation. Minimised, over rows i with weights w_i:

    sum_i w_i NLL_i / sum_i w_i  +  lambda / (K (K-1)) * sum_{k != j} W_kj^2  +  mu / K * sum_k b_k^2

- the off-diagonal entries of W are pulled towards 0 (`reg_lambda`, their
  lambda): a label's logit reads the other labels' shares only where the data
  show it pays;
- the intercepts b are pulled towards 0 (`reg_mu`, their mu);
- the diagonal of W is not penalised at all: each label's own scale is free,
  so very strong penalties leave per-label scaling without biases.

The data term is the weighted mean NLL, as theirs, so integer weights are
exactly repeated rows. With both strengths 0 it is the unpenalised maximum
likelihood fit (then the predictions are unique, the parameters not: adding a
constant to a column of W, or to every b_k, changes nothing). With K = 2 it is
a 2 x 2 map; a column's one off-diagonal entry can always be moved onto the
diagonal, so only mu constrains what is predicted.
"""
from __future__ import annotations

import warnings
from numbers import Real
from typing import Any, Mapping

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from calscore.calibration_store.base import BaseCalibrator, load_numbers
from calscore.calibration_store.validation import Interval

# A line search that stops (L-BFGS-B's "ABNORMAL" at a flat optimum) where the mean
# loss's largest gradient is below this has converged, as in logistic.fit_logistic.
_MEAN_GRADIENT_TOL = 1e-6
# Kull et al. choose lambda and mu by cross-validation; these defaults were chosen on the shared data
# (bench/bench_matrix.py's AG News and TREC scores, 10 random splits at 100 to 800 fit rows): held-out
# NLL is flat for lambda 0.1 to 0.3 at 300 to 800 rows, where 0.1 keeps accuracy and ECE nearest the
# unregularised fit (0.3 is better by up to 0.04 nats at 100 rows, where `auto` may prefer vector
# scaling anyway). An intercept penalty of 1e-2 cost a point of accuracy on AG News (the model leans
# hard towards some labels, so the intercepts are large); 1e-4 costs nothing and makes them unique.
DEFAULT_LAMBDA = 0.1
DEFAULT_MU = 1e-4


class MatrixCalibrator(BaseCalibrator):
    """A full linear map of the label log-shares, then softmax; ODIR-regularised.

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    reg_lambda : lambda, the L2 strength on W's off-diagonal entries (0 = unpenalised).
    reg_mu : mu, the L2 strength on the intercepts b (0 = unpenalised).
    """

    method = "matrix"
    _parameter_constraints = {
        "reg_lambda": Interval(Real, 0.0, None, closed="left"),
        "reg_mu": Interval(Real, 0.0, None, closed="left"),
    }

    def __init__(self, labels, *, reg_lambda: float = DEFAULT_LAMBDA, reg_mu: float = DEFAULT_MU):
        self.labels = labels
        self.reg_lambda = reg_lambda
        self.reg_mu = reg_mu

    def _fit(self, ls: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        k = self.n_labels
        onehot = np.eye(k)[y]
        off = 1.0 - np.eye(k)
        # the objective times sum(w): a sum over rows, whose gradient the convergence rule below reads
        lam = float(w.sum()) * self.reg_lambda / (k * (k - 1))
        mu = float(w.sum()) * self.reg_mu / k

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W, b = theta[: k * k].reshape(k, k), theta[k * k:]
            logp = log_softmax(ls @ W.T + b, axis=1)
            W_off = W * off
            loss = -float(w @ (logp * onehot).sum(axis=1)) + lam * float((W_off**2).sum()) + mu * float(b @ b)
            g = w[:, None] * (np.exp(logp) - onehot)
            grad_W = g.T @ ls + 2.0 * lam * W_off
            return loss, np.concatenate([grad_W.ravel(), g.sum(axis=0) + 2.0 * mu * b])

        # From the identity map (the raw label shares). ftol near machine precision: the loss is flat along
        # W's redundant directions, and at 1e-12 the fit stopped up to 1e-5 short in probability.
        theta0 = np.concatenate([np.eye(k).ravel(), np.zeros(k)])
        res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-8})
        mean_grad = float(np.abs(loss_grad(res.x)[1]).max()) / max(1.0, float(w.sum()))
        if not res.success and mean_grad > _MEAN_GRADIENT_TOL:
            from sklearn.exceptions import ConvergenceWarning  # where used: see the package docstring

            warnings.warn(f"matrix scaling fit did not converge: {res.message} (largest gradient of the mean "
                          f"loss {mean_grad:.2g})", ConvergenceWarning, stacklevel=3)
        self.weights_ = res.x[: k * k].reshape(k, k).copy()
        self.intercept_ = res.x[k * k:].copy()

    def _predict(self, ls: np.ndarray) -> np.ndarray:
        return softmax(ls @ self.weights_.T + self.intercept_, axis=1)

    def _get_state(self) -> dict[str, Any]:
        # one entry per label: its calibrated logit = weights . log s + intercept
        return {"logits": [{"weights": row.tolist(), "intercept": float(b)}
                           for row, b in zip(self.weights_, self.intercept_)]}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        logits = state.get("logits") if set(state) == {"logits"} else None
        if not isinstance(logits, list) or len(logits) != self.n_labels:
            raise ValueError(f"matrix calibrator state needs exactly the key 'logits', a list of {self.n_labels} "
                             f"logits (one per label), got {sorted(state)}")
        rows = [load_numbers(m, {"weights": "vector", "intercept": "scalar"}, "matrix") for m in logits]
        if any(r["weights"].shape != (self.n_labels,) for r in rows):
            raise ValueError(f"matrix calibrator logits need {self.n_labels} weights each")
        self.weights_ = np.stack([r["weights"] for r in rows])
        self.intercept_ = np.array([r["intercept"] for r in rows])
