"""The latency predictor on synthetic profiles with a known truth, and `hwnas predict`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.predictors.latency import MIN_CALIBRATION, LatencyPredictor
from hwnas.profiling.fingerprint import device_fingerprint, device_id
from hwnas.profiling.profile import Profile
from hwnas.supernets.base import Supernet

SHAPE = {"batch": 1, "seq_len": 32}


def _here() -> dict:
    fingerprint = device_fingerprint("cpu", 1)
    return {**fingerprint, "id": device_id(fingerprint)}


def _truth(net, configs, block_ms: dict[str, float]) -> np.ndarray:
    """Additive blocks plus a per-block and a per-session overhead: 1.25·LUT + 0.04·blocks + 0.3 ms."""
    out = []
    for config in configs:
        keys = net.blocks(config, SHAPE)
        out.append(1.25 * sum(block_ms[k] for k in keys) + 0.04 * len(keys) + 0.3)
    return np.array(out)


def _synthetic_profile(net, n_calibration: int, device: dict | None = None) -> tuple[Profile, dict[str, float]]:
    rng = np.random.default_rng(7)
    block_ms = {k: float(rng.uniform(0.05, 2.0)) for k in net.all_blocks(SHAPE)}
    configs = net.space.sample(n_calibration, seed=11, unique=True)
    truth = _truth(net, configs, block_ms)
    profile = Profile(
        space=net.name, device=device or _here(),
        settings={"ep": "cpu", "threads": 1, "shape": SHAPE, "policy": {}, "calibration_seed": 0},
        blocks={k: {"median_ms": v} for k, v in block_ms.items()},
        calibration=[{"config": c, "median_ms": float(t)} for c, t in zip(configs, truth)],
        complete=True,
    )
    return profile, block_ms


def test_lut_sum_is_the_sum_of_block_medians(bert_nets):
    net = bert_nets("bert-mini")
    profile, block_ms = _synthetic_profile(net, 0)
    predictor = LatencyPredictor(profile, net)
    configs = net.space.sample(40, seed=1)
    expected = [sum(block_ms[k] for k in net.blocks(c, SHAPE)) for c in configs]
    np.testing.assert_allclose(predictor.lut_sum(configs), expected, rtol=1e-12)
    # The vectorized block counts agree with the protocol's generic per-configuration loop.
    genes = np.stack([net.space.to_genes(c) for c in configs])
    generic = Supernet.block_counts(net, genes, predictor.keys, SHAPE)
    np.testing.assert_array_equal(net.block_counts(genes, predictor.keys, SHAPE), generic)


@pytest.mark.parametrize("name", ["bert-mini", "bert-linas"])
def test_calibration_recovers_additive_truth_with_overhead_exactly(bert_nets, name):
    net = bert_nets(name)
    profile, block_ms = _synthetic_profile(net, 12)
    predictor = LatencyPredictor(profile, net)
    assert predictor.calibrated and predictor.choice is not None
    assert predictor.choice.cv_rmspe[predictor.choice.name] < 1e-6
    held_out = net.space.sample(200, seed=99)
    np.testing.assert_allclose(predictor.predict(held_out), _truth(net, held_out, block_ms), rtol=1e-6)
    # The raw LUT sum misses the overheads: it must be off by the known amount.
    lut = predictor.lut_sum(held_out)
    assert np.all(_truth(net, held_out, block_ms) > 1.2 * lut)
    # A gene matrix and a list of configurations give the same prediction.
    genes = np.stack([net.space.to_genes(c) for c in held_out])
    np.testing.assert_array_equal(predictor.predict(genes), predictor.predict(held_out))


def test_too_small_calibration_set_falls_back_to_lut_sum(bert_nets):
    net = bert_nets("bert-mini")
    profile, _ = _synthetic_profile(net, MIN_CALIBRATION - 1)
    predictor = LatencyPredictor(profile, net)
    configs = net.space.sample(5, seed=2)
    assert not predictor.calibrated
    np.testing.assert_array_equal(predictor.predict(configs), predictor.lut_sum(configs))


def test_profile_of_another_space_or_config_outside_space_is_refused(bert_nets):
    profile, _ = _synthetic_profile(bert_nets("bert-mini"), 6)
    with pytest.raises(InputError, match="bert-mini"):
        LatencyPredictor(profile, bert_nets("bert-linas"))
    predictor = LatencyPredictor(profile, bert_nets("bert-mini"))
    with pytest.raises(InputError, match="A"):
        predictor.predict([{"D": 1, "A": [3], "I": [128]}])


def test_fingerprint_mismatch_is_warned(bert_nets):
    device = _here()
    assert LatencyPredictor(_synthetic_profile(bert_nets("bert-mini"), 6, device)[0], bert_nets("bert-mini")).device_warnings() == []
    other = {**device, "cpu_model": "Imaginary CPU 9000", "id": "cpu-000000000000"}
    warnings = LatencyPredictor(_synthetic_profile(bert_nets("bert-mini"), 6, other)[0], bert_nets("bert-mini")).device_warnings()
    assert warnings and "Imaginary CPU 9000" in " ".join(warnings)


def _predict_cli(profile_path, config: str):
    """`hwnas predict` through main() in this process (tests/inprocess.py)."""
    from inprocess import hwnas

    return hwnas("predict", "--profile", str(profile_path), "--config", config, "--json")


def test_predict_cli_warns_on_other_device_and_without_calibration(bert_nets, tmp_path):
    net = bert_nets("bert-mini")
    config = {"D": 2, "A": [4, 1], "I": [512, 128]}
    other = {**_here(), "cpu_model": "Imaginary CPU 9000", "id": "cpu-000000000000"}
    profile, block_ms = _synthetic_profile(net, 8, other)
    profile.save(tmp_path / "p.json")
    done = _predict_cli(tmp_path / "p.json", json.dumps(config))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["predicted_ms"] == pytest.approx(_truth(net, [config], block_ms)[0], rel=1e-6)
    assert "another device" in done.stderr and "Imaginary CPU 9000" in done.stderr

    bare, _ = _synthetic_profile(net, 0)
    bare.save(tmp_path / "bare.json")
    done = _predict_cli(tmp_path / "bare.json", json.dumps(config))
    assert done.returncode == 0 and "no calibration" in done.stderr
    assert json.loads(done.stdout)["predicted_ms"] == json.loads(done.stdout)["lut_sum_ms"]


@pytest.mark.parametrize("config, needle", [
    ('{"D": 7, "A": [1], "I": [128]}', "D"),
    ('{"D": 1, "A": [1], "I": [100]}', "100"),
    ("{oops", "JSON"),
])
def test_predict_cli_bad_config_exits_2(bert_nets, tmp_path, config, needle):
    profile, _ = _synthetic_profile(bert_nets("bert-mini"), 6)
    profile.save(tmp_path / "p.json")
    done = _predict_cli(tmp_path / "p.json", config)
    assert done.returncode == 2 and needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_predict_cli_missing_profile_exits_2(tmp_path):
    done = _predict_cli(tmp_path / "none.json", "{}")
    assert done.returncode == 2 and "none.json" in done.stderr
