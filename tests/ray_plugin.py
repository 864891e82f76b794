"""Test plug-ins for the Ray tests: the example digits MLP with briefly trained weights
(``BRIEF``: a Ray worker trains them in well under a second instead of several; the tests
compare Ray runs with local runs, never accuracies), the same whose accuracy takes ``DELAY_S``
per configuration (so a worker can be killed while it is evaluating), and one whose evaluation
raises on one planted configuration. Imported by Ray workers too (tests/ is on their
PYTHONPATH)."""

from __future__ import annotations

import time

import numpy as np

from hwnas.examples.mlp_digits import ElasticMLP, TrainSettings
from hwnas.space import Config

DELAY_S = 0.15
#: The configuration ``make_failing``'s evaluation raises on (row 8 of an nsga2 seed-0, population-10 run).
FAIL_KEY = '{"D":2,"W":[4,4]}'
#: Training of the test plug-ins' shared weights (the example's default is 400 steps).
BRIEF = TrainSettings(steps=20)


class SlowDigits(ElasticMLP):
    """mlp-digits with a slow (``DELAY_S`` per configuration) weight-sharing accuracy."""

    fail_key: str | None = None

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        from hwnas.evaluation.accuracy import WeightSharingEvaluator

        if not hasattr(self, "_scorer"):
            self._scorer = WeightSharingEvaluator(self, self.accuracy_task())
        for config in configs:
            if self.fail_key is not None and self.space.key(config) == self.fail_key:
                raise RuntimeError(f"planted failure on {self.fail_key}")
            time.sleep(DELAY_S)
        return self._scorer.evaluate(configs)


def make_fast() -> list[ElasticMLP]:
    return [ElasticMLP(BRIEF)]


def make_slow() -> list[ElasticMLP]:
    return [SlowDigits(BRIEF)]


def make_failing() -> list[ElasticMLP]:
    net = SlowDigits(BRIEF)
    net.fail_key = FAIL_KEY
    return [net]
