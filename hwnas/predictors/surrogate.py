"""Surrogates of any expensive objective (accuracy, OSE loss): the cheap predictors LINAS fits
on everything validated so far for its inner search.

LINAS refits a predictor after every validated batch and then queries it ~20,000 times, so
both fitting and prediction must be cheap. Candidates (all on standardised features, the target
standardised too):

* ``ridge`` — ridge regression, its penalty chosen by efficient leave-one-out (``RidgeCV``);
* ``svr`` — support vector regression with an RBF kernel (C=1, ε=0.05 on the standardised target);
* ``gbt`` — a small gradient-boosted tree ensemble (50 trees of depth 3, learning rate 0.2,
  row subsampling 0.8, seeded).

The one with the lowest K-fold cross-validated RMSE (K = min(5, n)) is refitted on everything
and used; with fewer than :data:`MIN_CV` samples ridge is used without cross-validation.
Prediction works on whole populations at once (float64 [N, n_features] → [N]). Fitting and
prediction run with scikit-learn's per-call parameter validation and finiteness checks off
(inputs are checked once here), which is a third of the cost of a small tree ensemble.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.svm import SVR

from hwnas.errors import InputError

CANDIDATES = ("ridge", "svr", "gbt")
MIN_CV = 8


def _fast():
    """scikit-learn without per-call parameter validation and finiteness checks."""
    return sklearn.config_context(skip_parameter_validation=True, assume_finite=True)


def _make(name: str, seed: int):
    if name == "ridge":
        return RidgeCV(alphas=np.logspace(-3, 3, 13))
    if name == "svr":
        return SVR(kernel="rbf", C=1.0, epsilon=0.05, gamma="scale")
    if name == "gbt":
        return GradientBoostingRegressor(n_estimators=50, max_depth=3, learning_rate=0.2, subsample=0.8,
                                         random_state=seed)
    raise InputError(f"unknown predictor {name!r} (known: {', '.join(CANDIDATES)})")


@dataclass
class Standardizer:
    """Mean/scale of the columns of a matrix (constant columns keep scale 1)."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))

    def fit(self, X: np.ndarray) -> Standardizer:
        self.mean = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


class ObjectivePredictor:
    """Regressor of one objective from supernet features, chosen by cross-validation.

    Args:
        candidates: model names to choose from (see module doc).
        folds: K of the K-fold cross-validation.
        seed: seeds the folds and the tree ensemble (fits are deterministic).

    Attributes (after :meth:`fit`):
        chosen: name of the model in use.
        cv_rmse: cross-validated RMSE of each candidate, in the target's unit.
    """

    def __init__(self, candidates: Sequence[str] = CANDIDATES, folds: int = 5, seed: int = 0):
        for name in candidates:
            _make(name, seed)
        if not candidates:
            raise InputError("an objective predictor needs at least one candidate model")
        self.candidates = tuple(candidates)
        self.folds = folds
        self.seed = seed
        self.chosen: str | None = None
        self.cv_rmse: dict[str, float] = {}
        self._model = None
        self._x = Standardizer()
        self._y_mean, self._y_scale = 0.0, 1.0

    def fit(self, X: np.ndarray, y: np.ndarray) -> ObjectivePredictor:
        """Fit on features float [N, F] and targets float [N] (N ≥ 1)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.shape[0] != y.size or y.size == 0:
            raise ValueError(f"need matching non-empty X [N, F] and y [N], got {X.shape} and {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("predictor features and targets must be finite")
        with _fast():
            return self._fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> ObjectivePredictor:
        self._x.fit(X)
        Xs = self._x(X)
        self._y_mean = float(y.mean())
        self._y_scale = float(y.std()) or 1.0
        ys = (y - self._y_mean) / self._y_scale
        self.cv_rmse = {}
        if y.size < MIN_CV or len(self.candidates) == 1:
            self.chosen = "ridge" if "ridge" in self.candidates else self.candidates[0]
        else:
            k = min(self.folds, y.size)
            splits = list(KFold(n_splits=k, shuffle=True, random_state=self.seed).split(Xs))
            for name in self.candidates:
                errors = np.empty(y.size)
                for train, test in splits:
                    model = _make(name, self.seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(Xs[train], ys[train])
                    errors[test] = model.predict(Xs[test]) - ys[test]
                self.cv_rmse[name] = float(np.sqrt(np.mean(errors**2)) * self._y_scale)
            self.chosen = min(self.cv_rmse, key=self.cv_rmse.get)
        self._model = _make(self.chosen, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._model.fit(Xs, ys)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values, float64 [N] (natural unit of the target)."""
        if self._model is None:
            raise RuntimeError("predictor is not fitted")
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[0] == 0:
            return np.zeros(0)
        if not np.isfinite(X).all():
            raise ValueError("predictor features must be finite")
        with _fast():
            return np.asarray(self._model.predict(self._x(X)), dtype=np.float64) * self._y_scale + self._y_mean
