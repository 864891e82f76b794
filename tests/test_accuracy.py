"""Accuracy evaluation (hwnas.evaluation.accuracy), checkpoints and supernet training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hwnas.errors import InputError
from hwnas.evaluation.accuracy import (
    Evaluator,
    PluginEvaluator,
    WeightSharingEvaluator,
    batches,
    get_evaluator,
    split_accuracy,
)
from hwnas.evaluation.training import (
    TrainingSettings,
    largest_config,
    smallest_config,
    train_supernet,
)
from hwnas.supernets.base import Supernet
from hwnas.supernets.bert import make_bert_supernet
from hwnas.supernets.bert.sentiment import TextSplit, default_task
from hwnas.supernets.checkpoint import (
    packaged_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

SUBSET = 400


def _head(split: TextSplit, n: int) -> TextSplit:
    return TextSplit(split.input_ids[:n], split.attention_mask[:n], split.labels[:n], split.name)


@pytest.fixture(scope="module")
def mini():
    """The bert-mini supernet with the shipped checkpoint."""
    return make_bert_supernet("bert-mini")


@pytest.fixture(scope="module")
def small_task():
    task = default_task()
    return dataclasses.replace(task, validation=_head(task.validation, SUBSET), test=_head(task.test, SUBSET))


def test_shipped_checkpoint_loads_and_gives_a_real_tradeoff(mini, small_task):
    path = packaged_checkpoint("bert-mini")
    assert path is not None and path.is_file() and path.stat().st_size <= 10_000_000
    evaluator = get_evaluator(mini)
    assert isinstance(evaluator, Evaluator) and "validation" in evaluator.description
    assert mini.checkpoint_meta is not None and mini.checkpoint_meta["seed"] == 0
    sub = WeightSharingEvaluator(mini, small_task)
    big, small = sub.evaluate([largest_config(mini.space), smallest_config(mini.space)])
    assert big >= 0.88 and big - small >= 0.10, (big, small)


def test_full_validation_accuracy_matches_the_checkpoint_record(mini):
    """The code that runs the weights is the code that trained them: same number as recorded."""
    recorded = mini.checkpoint_meta["accuracies"]["largest"]
    got = get_evaluator(mini).evaluate([recorded["config"]])[0]
    assert abs(got - recorded["validation"]) <= 0.002
    assert got >= 0.90


def test_extracted_subnetwork_gives_the_same_accuracy_as_weight_sharing(mini, small_task):
    evaluator = WeightSharingEvaluator(mini, small_task)
    data = batches(small_task.validation)
    configs = mini.space.sample(3, seed=21, unique=True) + [smallest_config(mini.space)]
    shared = evaluator.evaluate(configs)
    names = mini.input_names
    for config, acc in zip(configs, shared):
        module = mini.extract(config)
        standalone = split_accuracy(lambda f, m=module: m(*(torch.as_tensor(f[n]) for n in names)), data)
        assert standalone == acc, config
        feeds, _ = data[0]
        with torch.inference_mode():
            torch.testing.assert_close(module(*(torch.as_tensor(feeds[n]) for n in names)),
                                       mini.forward(feeds, config), rtol=1e-4, atol=1e-5)
    # accuracies depend on the configuration: not all sub-networks score the same
    assert len(set(shared.tolist())) > 1


def test_trimming_padding_does_not_change_logits(mini, small_task):
    val = small_task.validation
    config = mini.space.sample(1, seed=4)[0]
    full = tuple(torch.as_tensor(a[:50]) for a in (val.input_ids, val.attention_mask, np.zeros_like(val.input_ids)))
    (inputs, labels), = batches(_head(val, 50), size=50)
    assert inputs["input_ids"].shape[1] < full[0].shape[1]
    with torch.inference_mode():
        padded = mini.forward(full, config)
        cut = mini.forward(inputs, config)
    order = np.argsort(val.attention_mask[:50].sum(axis=1), kind="stable")
    torch.testing.assert_close(cut, padded[torch.as_tensor(order)], rtol=1e-4, atol=1e-5)
    assert np.array_equal(labels, val.labels[:50][order])


def test_cache_does_not_recompute(mini, small_task):
    evaluator = WeightSharingEvaluator(mini, small_task)
    calls = {"n": 0}
    original = mini.forward

    def counting(inputs, config):
        calls["n"] += 1
        return original(inputs, config)

    a = {"D": 1, "A": [2], "I": [256]}
    a_long = {"D": 1, "A": [2, 4, 4], "I": [256, 512, 128]}  # same sub-network, extra genes
    b = {"D": 2, "A": [1, 4], "I": [128, 512]}
    mini.forward = counting
    try:
        first = evaluator.evaluate([a, b, a])
        after_first = calls["n"]
        second = evaluator.evaluate([b, a_long])
        assert calls["n"] == after_first  # nothing recomputed
        test = evaluator.test_accuracy([a])
        assert calls["n"] > after_first  # the test split has its own cache
    finally:
        del mini.forward
    n_batches = len(evaluator.data("validation"))
    assert after_first == 2 * n_batches  # a evaluated once, b once
    assert evaluator.computed == 3
    assert second.tolist() == [first[1], first[0]] and first[0] == first[2]
    assert test.shape == (1,) and 0 <= test[0] <= 1
    with pytest.raises(InputError, match="invalid value"):
        evaluator.evaluate([{"D": 1, "A": [3], "I": [128]}])


def _ckpt_net(path):
    return make_bert_supernet("bert-mini", checkpoint=path)


def test_corrupt_checkpoint_is_an_input_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(InputError, match=r"broken\.pt.*corrupt"):
        get_evaluator(_ckpt_net(path))
    good = packaged_checkpoint("bert-mini").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=r"truncated\.pt.*corrupt"):
        _ckpt_net(truncated).module()


def test_checkpoint_for_another_space_or_schema_is_an_input_error(tmp_path, mini):
    state = mini.module().state_dict()
    other = save_checkpoint(tmp_path / "other.pt", "bert-linas", state, {})
    with pytest.raises(InputError, match=r"other\.pt is for space 'bert-linas', not 'bert-mini'"):
        get_evaluator(_ckpt_net(other))
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    with pytest.raises(InputError, match=r"plain\.pt is not an hwnas-checkpoint/1 file"):
        get_evaluator(_ckpt_net(plain))
    wrong = save_checkpoint(tmp_path / "wrong.pt", "bert-mini", {"head.pooler.weight": torch.zeros(3, 3)}, {})
    with pytest.raises(InputError, match=r"wrong\.pt: checkpoint does not fit space 'bert-mini'"):
        get_evaluator(_ckpt_net(wrong))
    # a good file round-trips
    again = save_checkpoint(tmp_path / "again.pt", "bert-mini", state, {"seed": 7})
    loaded, meta = read_checkpoint(again, "bert-mini")
    assert meta == {"seed": 7} and all(torch.equal(loaded[k], v) for k, v in state.items())


def test_missing_checkpoint_means_no_evaluator_but_the_supernet_still_works(tmp_path):
    missing = tmp_path / "nowhere" / "bert-mini.pt"
    net = _ckpt_net(missing)
    with pytest.raises(InputError, match=rf"checkpoint {missing} is missing"):
        get_evaluator(net)
    logits = net.forward(net.example_inputs({"batch": 2, "seq_len": 8}), smallest_config(net.space))
    assert logits.shape == (2, 2)


@pytest.mark.parametrize("space", ["bert-ose", "bert-linas"])
def test_spaces_without_accuracy_raise(space):
    with pytest.raises(InputError, match=rf"space '{space}' has no accuracy evaluator \(no trained checkpoint\)"):
        get_evaluator(make_bert_supernet(space))
    with pytest.raises(InputError, match="no accuracy evaluator"):
        get_evaluator(make_bert_supernet("bert-mini", checkpoint=None))


_STUBS = {name: (lambda self, *args: None) for name in Supernet.__abstractmethods__}


class _Plugin(type("Stubs", (Supernet,), _STUBS)):
    """A plug-in with its own evaluate: accuracy = 0.5 + 0.01·depth; counts how often it is asked."""

    def __init__(self):
        self.space = make_bert_supernet("bert-mini").space
        self.asked: list[int] = []

    def evaluate(self, configs):
        self.asked.append(len(configs))
        return np.array([0.5 + 0.01 * c["D"] for c in configs])


class _PluginWithTest(_Plugin):
    def test_evaluate(self, configs):
        return [0.4] * len(configs)


def test_plugin_evaluate_is_wrapped_and_cached():
    plugin = _Plugin()
    evaluator = get_evaluator(plugin)
    assert isinstance(evaluator, PluginEvaluator) and isinstance(evaluator, Evaluator)
    a, b = {"D": 2, "A": [1, 1], "I": [128, 128]}, {"D": 3, "A": [1, 1, 1], "I": [128, 128, 128]}
    np.testing.assert_allclose(evaluator.evaluate([a, b, a]), [0.52, 0.53, 0.52])
    np.testing.assert_allclose(evaluator.evaluate([b]), [0.53])
    assert plugin.asked == [2]
    assert evaluator.test_accuracy([a]) is None
    with_test = get_evaluator(_PluginWithTest())
    np.testing.assert_allclose(with_test.test_accuracy([a, b]), [0.4, 0.4])


def test_plugin_without_evaluate_or_with_bad_values_raises():
    bare = type("NoEval", (Supernet,), _STUBS)()  # a complete plug-in that keeps the default evaluate
    bare.space = make_bert_supernet("bert-mini").space
    with pytest.raises(InputError, match="no accuracy evaluator"):
        get_evaluator(bare)
    plugin = _Plugin()
    plugin.evaluate = lambda configs: [1.5] * len(configs)
    with pytest.raises(InputError, match=r"want one value in \[0, 1\]"):
        get_evaluator(plugin).evaluate([{"D": 1, "A": [1], "I": [128]}])


def test_training_is_deterministic_and_moves_the_weights():
    task = default_task()
    small = dataclasses.replace(task, train=_head(task.train, 256))
    settings = TrainingSettings(steps=3, batch=16, seed=5)
    states = []
    for _ in range(2):
        net = make_bert_supernet("bert-mini", seed=5, checkpoint=None)
        before = {k: v.clone() for k, v in net.module().state_dict().items()}
        stats = train_supernet(net, small, settings)
        states.append(net.module().state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(before["layers.0.query.weight"], states[1]["layers.0.query.weight"])
    # layers deeper than the smallest sub-network are trained too (largest and random ones)
    assert not torch.equal(before["layers.5.ffn_in.weight"], states[1]["layers.5.ffn_in.weight"])
    assert stats["settings"]["steps"] == 3 and np.isfinite(stats["train_loss_largest"])
    with pytest.raises(InputError, match="distill"):
        TrainingSettings(distill=2.0)
