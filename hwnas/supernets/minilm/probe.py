"""The logistic-regression probe on sentence embeddings: fitted exactly, in milliseconds.

The probe is scikit-learn's ``LogisticRegression(C=c)`` on standardised embeddings (L2 penalty
on the weights, none on the intercept): for two classes it minimises

    c · Σ_i [log(1 + exp(z_i)) − y_i z_i] + ½ ‖w‖²,   z = X w + b,

a strictly convex function of (w, b). :func:`fit_probe` minimises it by Newton's method with a
backtracking line search in float64 — a (H+1)×(H+1) solve per step, converged to a gradient
below 1e-8 · c · N in about ten steps — instead of scikit-learn's L-BFGS, which stops at its
tolerance (1e-4) and costs a second of import. Both find the same minimiser (tested against
scikit-learn at a tight tolerance). More than two classes: scikit-learn's multinomial model.

``solver="lbfgs"`` is scikit-learn's fit at its default tolerance, kept for the importance order
(:mod:`~hwnas.supernets.minilm.importance`): FFN neurons' importances are near-ties, and the ~0.5%
difference between the two solvers' coefficients reorders most of them, so the stored order was
computed, and stays computed, with L-BFGS.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

MAX_STEPS = 100


def _binary_newton(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """(w [H], b) minimising the module doc's objective on x float64 [N, H], y in {0, 1} [N]."""
    n, h = x.shape
    a = np.hstack([x, np.ones((n, 1))])  # the intercept is the last coefficient
    penalty = np.ones(h + 1)
    penalty[-1] = 0.0
    beta = np.zeros(h + 1)

    def objective(b: np.ndarray) -> float:
        z = a @ b
        return float(c * np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * b * b))

    value = objective(beta)
    for _ in range(MAX_STEPS):
        p = 1.0 / (1.0 + np.exp(-(a @ beta)))
        gradient = c * (a.T @ (p - y)) + penalty * beta
        if np.max(np.abs(gradient)) <= 1e-8 * c * n:
            break
        hessian = c * (a.T * (p * (1.0 - p))) @ a + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient)
        t = 1.0
        while True:  # backtracking (Armijo): Newton's full step is taken near the optimum
            candidate = beta - t * step
            new = objective(candidate)
            if new <= value - 1e-4 * t * float(gradient @ step) or t < 1e-10:
                break
            t *= 0.5
        beta, value = candidate, new
    return beta[:h], float(beta[h])


def fit_probe(embeddings: np.ndarray, labels: np.ndarray, c: float = 1.0,
              solver: str = "newton") -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on standardised embeddings, folded back into one linear map.

    Args:
        embeddings: float [N, H]; labels: int [N] in {0, …, C-1}.
        c: inverse L2 strength (scikit-learn's ``C``).
        solver: "newton" (exact, two classes; more classes use scikit-learn) or "lbfgs"
            (scikit-learn's default fit).
    Returns:
        (weight float32 [C, H], bias float32 [C]) with ``logits = x @ weight.T + bias``, equal to the
        fitted model's decision function on raw embeddings (for two classes: ±half of it per class,
        so that softmax gives the model's probabilities).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    standard = (x - mean) / std
    classes = np.unique(labels)
    if solver not in ("newton", "lbfgs"):
        raise ValueError(f"unknown probe solver {solver!r}: use 'newton' or 'lbfgs'")
    if solver == "newton" and len(classes) == 2:
        with threadpool_limits(limits=1, user_api="blas"):  # (H+1)² problems: threads only cost
            w, b = _binary_newton(standard, (labels == classes[1]).astype(np.float64), c)
        coef, intercept = w[None, :], np.array([b])
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=2000).fit(standard, labels)
        coef, intercept = model.coef_, model.intercept_
    coef, intercept = coef / std, intercept - (coef / std) @ mean
    if coef.shape[0] == 1:  # binary: decision d → logits (-d/2, +d/2)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef.astype(np.float32), intercept.astype(np.float32)
