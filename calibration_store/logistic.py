"""Weighted binary logistic regression, the fitting core of Platt, beta and scaling-binning.

Minimises  sum_i w_i * CE(t_i, sigmoid(x_i . coef + intercept)) + ||coef - center||^2 / (2 C)
with L-BFGS-B and an exact gradient. Two explicit regularisers:

- Platt's targets (Platt 1999, section 2.2): t+ = (N+ + 1) / (N+ + 2) and
  t- = 1 / (N- + 2) instead of 1 and 0 -- a prior that keeps the map finite
  on separable data or a label with no examples. N+ and N- are weighted counts
  (weights rescaled to mean 1, so they stay on the scale of the labeled rows),
  as in scikit-learn's `_sigmoid_calibration`.
- An optional L2 penalty (strength 1 / C, None = off) pulling the slopes
  towards `center` (the identity map); the intercept is never penalised, so
  a lean towards one label is always free to be corrected.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


def platt_targets(target: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Platt 1999, section 2.2: smoothed 0/1 targets from the (weighted) class counts."""
    n_pos = float(w[target == 1].sum())
    n_neg = float(w[target == 0].sum())
    return np.where(target == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))


def fit_logistic(
    X: np.ndarray,
    target: np.ndarray,
    w: np.ndarray,
    *,
    smoothing: bool,
    C: float | None,
    center: np.ndarray,
    nonnegative: bool = False,
) -> tuple[np.ndarray, float]:
    """Return (coef, intercept) of the weighted logistic fit of 0/1 `target` on features X (n, d)."""
    n, d = X.shape
    t = platt_targets(target, w) if smoothing else target.astype(np.float64)
    center = np.asarray(center, dtype=np.float64)

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, intercept = theta[:d], theta[d]
        s = X @ coef + intercept
        # CE(t, sigmoid(s)) = t * softplus(-s) + (1 - t) * softplus(s)
        loss = float(w @ (t * np.logaddexp(0.0, -s) + (1.0 - t) * np.logaddexp(0.0, s)))
        g = w * (expit(s) - t)
        grad = np.append(X.T @ g, g.sum())
        if C is not None:
            diff = coef - center
            loss += float(diff @ diff) / (2.0 * C)
            grad[:d] += diff / C
        return loss, grad

    n_pos = float(w[target == 1].sum())
    n_neg = float(w[target == 0].sum())
    theta0 = np.append(center, np.log((n_pos + 1.0) / (n_neg + 1.0)))
    bounds = [(0.0, None)] * d + [(None, None)] if nonnegative else None
    res = minimize(
        loss_grad,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8},
    )
    # The loss is a sum over rows: a line search that stops where the mean loss's (projected) gradient is below 1e-6
    # (L-BFGS-B's "ABNORMAL" at a flat optimum, the loss changing only in its last digits) has converged.
    grad = loss_grad(res.x)[1]
    if nonnegative:  # at the bound 0 a slope whose gradient pushes below it is where it should be
        grad[:d][(res.x[:d] <= 0) & (grad[:d] > 0)] = 0.0
    mean_grad = float(np.abs(grad).max()) / max(1.0, float(w.sum()))
    if not res.success and mean_grad > 1e-6:
        from sklearn.exceptions import ConvergenceWarning  # where used: see the package docstring

        warnings.warn(f"logistic calibration fit did not converge: {res.message} (largest gradient of the mean "
                      f"loss {mean_grad:.2g})", ConvergenceWarning, stacklevel=3)
    return res.x[:d].copy(), float(res.x[d])
