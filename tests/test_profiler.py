"""The profiler on real ONNX Runtime sessions: what it measures, resume, refusals, failures."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.profiling.profile import load_profile
from hwnas.profiling.profiler import (
    MeasurePolicy,
    Profiler,
    calibration_configs,
    noise_block_keys,
)
from hwnas.supernets.bert import BERT_MINI

# As short as a real measurement can be: the tests check bookkeeping, not timings.
# Interference from the other developers' processes on this shared machine is not what these
# tests check (tests/test_rounds.py does, on a fake timer): the meter's threshold is out of reach.
TINY = MeasurePolicy(warmup=1, repeats=2, min_seconds=0.0, calibration_size=5,
                     calibration_min_seconds=0.0, noise_blocks=2, rounds=2, max_passes=1, interference_max=64.0,
                     beside_max=64.0, warmup_seconds=0.0, wait_seconds=0.0)
SHAPE = {"batch": 1, "seq_len": 8}


def _profiler(net, out, **kwargs):
    return Profiler(net, out, ep="cpu", threads=1, shape=SHAPE, policy=kwargs.pop("policy", TINY), **kwargs)


@pytest.fixture(scope="module")
def mini_profile(tmp_path_factory, bert_nets):
    out = tmp_path_factory.mktemp("prof") / "mini.json"
    _profiler(bert_nets("bert-mini"), out).run()
    return out


def test_full_run_measures_every_block_calibration_and_noise(mini_profile, bert_nets):
    net = bert_nets("bert-mini")
    profile = load_profile(mini_profile, space="bert-mini")
    assert profile.complete and not profile.failures and not profile.progress
    assert sorted(profile.blocks) == net.all_blocks(SHAPE) and len(profile.blocks) == 11
    assert all(b["median_ms"] > 0 and b["repeats"] >= 3 for b in profile.blocks.values())
    keys = [BERT_MINI.key(c["config"]) for c in profile.calibration]
    assert keys == [BERT_MINI.key(c) for c in calibration_configs(BERT_MINI, 5, 0)]
    assert len(set(keys)) == 5
    for entry in [*profile.blocks.values(), *profile.calibration]:
        rounds = entry["rounds"]
        assert {r["round"] if "round" in r else None for r in rounds} <= {None}  # saved summary only
        assert sum(r["pass"] == 0 for r in rounds) == TINY.rounds  # every item in every round
        clean = sorted(r["ms"] for r in rounds if r["status"] == "clean")
        if entry["clean"]:  # the statistic fitted on: the median of the clean rounds' medians
            assert entry["median_ms"] == pytest.approx(float(np.median(clean)))
    assert set(profile.noise_floor["reference_blocks"]) == set(noise_block_keys(sorted(profile.blocks), 2))
    assert profile.noise["references"] >= 2 and profile.noise["items"] == 16
    assert profile.noise_floor["median_rel_diff"] >= 0
    assert profile.settings["shape"] == SHAPE and profile.settings["threads"] == 1
    assert profile.settings["precision"] == "fp32" and profile.device["precision"] == "fp32"
    assert 0 < profile.stats["ort_run_seconds"] < profile.stats["wall_seconds"]


def test_calibration_set_holds_smallest_and_largest():
    configs = calibration_configs(BERT_MINI, 6, seed=3)
    depths = [c["D"] for c in configs]
    assert depths[0] == 1 and depths[1] == 6
    assert configs[1]["A"] == [4] * 6 and configs[1]["I"] == [512] * 6
    assert calibration_configs(BERT_MINI, 6, seed=3) == configs


def test_resume_after_interruption_keeps_measured_rounds(tmp_path, bert_nets):
    net = bert_nets("bert-mini")
    out = tmp_path / "p.json"
    seen: list[str] = []

    def interrupt(stage: str, key: str) -> None:
        seen.append(key)
        if len(seen) == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _profiler(net, out).run(progress=interrupt)
    partial = load_profile(out, space="bert-mini")
    assert not partial.complete and not partial.blocks
    saved = partial.progress["samples"]
    # saved on interruption: every measurement but the one interrupted inside its progress call
    assert sum(map(len, saved.values())) + len(partial.progress["references"]) == 8

    profile = _profiler(net, out).run()
    assert profile.complete and not profile.progress
    final = {f"block:{k}": v for k, v in profile.blocks.items()}
    final |= {f"calibration:{BERT_MINI.key(c['config'])}": c for c in profile.calibration}
    for item, samples in saved.items():  # kept, not measured again
        kept = {(r["seq"], r["ms"]) for r in final[item]["rounds"]}
        assert {(s["seq"], s["ms"]) for s in samples} <= kept
    for entry in final.values():  # no round of the first pass measured twice
        assert sum(r["pass"] == 0 for r in entry["rounds"]) == TINY.rounds

    nothing_left: list[str] = []
    _profiler(net, out).run(progress=lambda s, k: nothing_left.append(k))
    assert nothing_left == []


def test_other_settings_or_space_refused_and_file_kept(mini_profile, bert_nets, tmp_path):
    before = mini_profile.read_bytes()
    with pytest.raises(InputError, match="other settings.*seq_len"):
        Profiler(bert_nets("bert-mini"), mini_profile, threads=1, shape={"seq_len": 16}, policy=TINY)
    with pytest.raises(InputError, match="bert-mini"):
        Profiler(bert_nets("bert-linas"), mini_profile, threads=1, policy=TINY)
    assert mini_profile.read_bytes() == before


@pytest.mark.parametrize("content, needle", [
    ("{not json", "corrupt"),
    ('{"schema": "hwnas-profile/99"}', "hwnas-profile/99"),
    ("[1, 2]", "profile"),
])
def test_corrupt_or_foreign_profile_refused_and_kept(tmp_path, bert_nets, content, needle):
    out = tmp_path / "bad.json"
    out.write_text(content)
    with pytest.raises(InputError, match=needle):
        _profiler(bert_nets("bert-mini"), out)
    assert out.read_text() == content


def test_cuda_without_gpu_is_refused(bert_nets, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA EP is present here")
    with pytest.raises(InputError, match="cuda"):
        Profiler(bert_nets("bert-mini"), tmp_path / "p.json", ep="cuda", threads=1, policy=TINY)
    assert not (tmp_path / "p.json").exists()


FAILING_PLUGIN = """
from hwnas.supernets.bert import make_bert_supernet

class Failing(type(make_bert_supernet("bert-mini"))):
    def build_block(self, key, shape):
        if key.startswith("head/"):
            raise RuntimeError("no kernel for this block")
        return super().build_block(key, shape)

def make():
    net = make_bert_supernet("bert-mini")
    net.__class__ = Failing
    return net
"""


def test_failed_block_is_reported_by_key_and_the_rest_measured(tmp_path, monkeypatch):
    from inprocess import hwnas  # main() in this process

    (tmp_path / "failing_plugin.py").write_text(textwrap.dedent(FAILING_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "failing_plugin", raising=False)
    # --quick as it is, but with the interference threshold out of reach and no re-measurement
    # passes (as TINY): on a loaded machine they made this bookkeeping test take minutes.
    quick = dataclasses.replace(MeasurePolicy.quick(), interference_max=64.0, beside_max=64.0, max_passes=0,
                                wait_seconds=0.0)
    monkeypatch.setattr(MeasurePolicy, "quick", classmethod(lambda cls: quick))
    out = tmp_path / "p.json"
    done = hwnas("profile", "--supernet", "failing_plugin:make", "--space", "bert-mini", "--ep", "cpu",
                 "--threads", "1", "--seq-len", "8", "--quick", "--out", str(out), "--json")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert list(summary["failures"]) == ["block:head/H=128"]
    assert "failed block:head/H=128: RuntimeError: no kernel" in done.stderr
    profile = load_profile(out, space="bert-mini")
    assert len(profile.blocks) == 10 and not profile.complete
    # Calibration still ran for the whole sub-networks (their export does not use build_block).
    assert len(profile.calibration) == MeasurePolicy.quick().calibration_size


def test_profile_cli_bad_input_exits_2(tmp_path):
    from inprocess import hwnas  # main() in this process (the CLI as a process: test_cli_foundation)

    def run(*args):
        return hwnas("profile", *args)

    unknown = run("--space", "nope", "--out", str(tmp_path / "p.json"))
    assert unknown.returncode == 2 and "'nope'" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    missing_dir = run("--space", "bert-mini", "--out", str(tmp_path / "no" / "p.json"))
    assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr
    threads = run("--space", "bert-mini", "--threads", "0", "--out", str(tmp_path / "p.json"))
    assert threads.returncode == 2 and "--threads" in threads.stderr
    assert not (tmp_path / "p.json").exists()


def test_time_models_interleaves_rounds_and_gives_each_model_its_clean_median(bert_nets, monkeypatch):
    import hwnas.profiling.profiler as profiler

    net = bert_nets("bert-mini")
    shape = net.resolve_shape(SHAPE)
    small, large = calibration_configs(net.space, 2)
    models = {name: profiler.export_subnet(net, config, shape) for name, config in (("small", small), ("large", large))}
    sessions = []
    real = profiler.make_session

    def spy(model, ep, threads):
        sessions.append(next(n for n, (m, _f) in models.items() if m is model))
        return real(model, ep, threads)

    monkeypatch.setattr(profiler, "make_session", spy)
    timings = profiler.time_models(models, ep="cpu", threads=1, policy=TINY)
    assert set(timings) == {"small", "large"} and timings["large"].median_ms > timings["small"].median_ms > 0
    # the first session is the reference's (the first model, kept open); then a new session per
    # round, and every round visits both models before the next round starts
    assert sessions[0] == "small"
    for r in range(TINY.rounds):
        assert set(sessions[1 + 2 * r : 3 + 2 * r]) == {"small", "large"}
