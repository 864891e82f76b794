"""Latency of a configuration on a profiled device: LUT sum, corrected by calibration.

The raw prediction is the sum of the profile's block medians over the blocks a configuration
is made of (its *LUT sum*). Whole sub-networks do not cost exactly that — a session runs one
graph, blocks share caches, and each block measured alone pays the per-run overhead — so the
profile's calibration set (whole sub-networks measured end to end) fits a small correction.
Candidates, chosen by leave-one-out cross-validation of the relative error:

* ``scale``: ``t = a·lut + c``
* ``blocks``: ``t = a·lut + b·n_blocks + c`` (per-block overhead removed)
* ``ridge``: ridge regression on ``[lut, n_blocks, supernet features]`` (standardized)

Fitted by weighted least squares with weights ``1/t²``, i.e. minimizing relative error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hwnas.errors import InputError
from hwnas.profiling.fingerprint import device_fingerprint, fingerprint_differences
from hwnas.profiling.profile import Profile, load_profile
from hwnas.space import Config
from hwnas.supernets.base import Supernet

MIN_CALIBRATION = 5


@dataclass(frozen=True)
class CalibrationChoice:
    """The chosen correction and the cross-validated relative RMS error of each candidate."""

    name: str
    cv_rmspe: dict[str, float]


def _candidates() -> dict[str, object]:
    return {
        "scale": LinearRegression(),
        "blocks": LinearRegression(),
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
    }


class LatencyPredictor:
    """Predicts end-to-end latency (ms) of configurations on the device of a profile.

    Args:
        profile: a measured profile of ``supernet``'s space.
        supernet: the supernet the profile was made for.
        calibrate: fit the calibration correction when the profile has a calibration set.
    """

    def __init__(self, profile: Profile, supernet: Supernet, calibrate: bool = True):
        if profile.space != supernet.name:
            raise InputError(f"profile is for space {profile.space!r}, not {supernet.name!r}")
        profile.check_configs(supernet.space)  # a calibration entry that is no configuration: refused
        self.profile = profile
        self.supernet = supernet
        self.shape = profile.shape
        self.keys = sorted(profile.blocks)
        self.block_ms = np.array([profile.block_ms(k) for k in self.keys])
        self.model: object | None = None
        self.choice: CalibrationChoice | None = None
        if calibrate and len(profile.calibration) >= MIN_CALIBRATION:
            self._fit()

    @classmethod
    def load(cls, path: str, supernet: Supernet, calibrate: bool = True) -> LatencyPredictor:
        return cls(load_profile(path, space=supernet.name), supernet, calibrate)

    @property
    def calibrated(self) -> bool:
        return self.model is not None

    # -- features ------------------------------------------------------------------------------
    def genes(self, configs: Sequence[Config] | np.ndarray) -> np.ndarray:
        """Gene matrix int [N, n_genes] of configurations (validated) or of a gene matrix."""
        if isinstance(configs, np.ndarray):
            return np.atleast_2d(configs).astype(np.int64)
        space = self.supernet.space
        return np.stack([space.to_genes(c) for c in configs]) if len(configs) else np.zeros((0, space.n_genes), np.int64)

    def lut_sum(self, configs: Sequence[Config] | np.ndarray) -> np.ndarray:
        """Sum of block medians per configuration, float64 [N] in ms."""
        counts = self.supernet.block_counts(self.genes(configs), self.keys, self.shape)
        return counts @ self.block_ms

    def _design(self, name: str, genes: np.ndarray) -> np.ndarray:
        counts = self.supernet.block_counts(genes, self.keys, self.shape)
        lut = counts @ self.block_ms
        if name == "scale":
            return lut[:, None]
        n_blocks = counts.sum(axis=1)
        if name == "blocks":
            return np.column_stack([lut, n_blocks])
        return np.column_stack([lut, n_blocks, self.supernet.feature_matrix(genes)])

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self) -> None:
        cal = self.profile.calibration
        genes = self.genes([c["config"] for c in cal])
        y = np.array([c["median_ms"] for c in cal])
        weights = 1.0 / y**2
        scores: dict[str, float] = {}
        for name, model in _candidates().items():
            X = self._design(name, genes)
            fit_params = self._weight_param(model, weights)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predicted = cross_val_predict(model, X, y, cv=LeaveOneOut(), params=fit_params)
            scores[name] = float(np.sqrt(np.mean(((predicted - y) / y) ** 2)))
        best = min(scores, key=scores.get)
        model = _candidates()[best]
        model.fit(self._design(best, genes), y, **self._weight_param(model, weights))
        self.model = model
        self.choice = CalibrationChoice(best, scores)
        self._design_name = best

    @staticmethod
    def _weight_param(model: object, weights: np.ndarray) -> dict[str, np.ndarray]:
        if hasattr(model, "steps"):  # pipeline: route the weights to its last step
            return {f"{model.steps[-1][0]}__sample_weight": weights}
        return {"sample_weight": weights}

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, configs: Sequence[Config] | np.ndarray) -> np.ndarray:
        """Predicted latency in ms, float64 [N]: calibrated when possible, else the LUT sum."""
        genes = self.genes(configs)
        if self.model is None:
            return self.lut_sum(genes)
        return np.asarray(self.model.predict(self._design(self._design_name, genes)), dtype=np.float64)

    def device_warnings(self) -> list[str]:
        """How this machine differs from the profiled device (empty when it is the same)."""
        here = device_fingerprint(self.profile.ep, int(self.profile.settings["threads"]),
                                  precision=self.profile.precision)
        return fingerprint_differences(self.profile.device, here)
