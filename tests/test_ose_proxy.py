"""OSE's brief-training error estimate (hwnas.evaluation.ose_proxy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.evaluation.ose_proxy import BriefTraining, brief_training_loss
from hwnas.examples.mlp_digits import make_supernets
from hwnas.supernets.bert import make_bert_supernet

SMALL_OSE = {"A": 4, "D": 2, "H": 512, "I": 256}
MINI = {"D": 2, "A": [2, 2], "I": [256, 256]}


@pytest.fixture(scope="module")
def ose():
    return make_bert_supernet("bert-ose")


def test_deterministic_and_seed_dependent(ose):
    setting = BriefTraining(steps=3, batch=8, lr=5e-4, seed=0)
    first = brief_training_loss(ose, SMALL_OSE, setting)
    assert brief_training_loss(ose, SMALL_OSE, setting) == first
    assert brief_training_loss(ose, SMALL_OSE, BriefTraining(steps=3, batch=8, seed=1)) != first
    assert math.isfinite(first) and 0.3 < first < 1.5  # a cross-entropy near ln 2 for 2 classes


def test_more_steps_lower_the_loss():
    mini = make_bert_supernet("bert-mini", checkpoint=None)
    losses = [brief_training_loss(mini, MINI, BriefTraining(steps=s, batch=32)) for s in (0, 160, 320)]
    assert losses[0] > losses[1] > losses[2], losses
    assert abs(losses[0] - math.log(2)) < 0.02  # untrained: chance level for 2 balanced classes
    assert losses[2] < 0.5  # it learned something


def test_does_not_use_the_supernets_weights():
    """The estimate starts from its own seeded initialisation, not from trained weights."""
    trained = make_bert_supernet("bert-mini")
    fresh = make_bert_supernet("bert-mini", checkpoint=None, seed=3)
    setting = BriefTraining(steps=2, batch=8)
    assert brief_training_loss(trained, MINI, setting) == brief_training_loss(fresh, MINI, setting)


def test_per_layer_space_runs():
    linas = make_bert_supernet("bert-linas")
    config = {"D": 6, "A": [6] * 6, "I": [1024] * 6}
    loss = brief_training_loss(linas, config, BriefTraining(steps=1, batch=2))
    assert np.isfinite(loss)


def test_bad_input(ose):
    for bad in ({"steps": -1}, {"batch": 0}, {"lr": 0.0}, {"seed": 1.5}, {"steps": True}):
        with pytest.raises(InputError):
            BriefTraining(**bad)
    with pytest.raises(InputError, match="violates H divisible by A"):
        brief_training_loss(ose, {"A": 12, "D": 2, "H": 512, "I": 256}, BriefTraining(steps=1))
    mlp = make_supernets()[0]  # a task, but no brief_training_network hook
    with pytest.raises(InputError, match="'mlp-digits' has no brief-training loss"):
        brief_training_loss(mlp, {"D": 1, "W": [4]}, BriefTraining(steps=1))
