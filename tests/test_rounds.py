"""The interleaved measurement schedule on a fake timer with injected bursts (no ONNX Runtime:
the schedule and its statistics are pure; the profiler's use of them is tested in
tests/test_profiler.py on real sessions)."""

from __future__ import annotations

import copy
import json

from dataclasses import replace

import numpy as np
import pytest

from hwnas.profiling.rounds import Load, RoundsPolicy, Sample, Scheduler, describe_noise, estimate, noise_report

TRUE_MS = {f"item{i}": 1.0 + 0.5 * i for i in range(12)}
REFS = ["item0", "item6"]
POLICY = RoundsPolicy(rounds=3, reference_every=4, outlier_rel=0.10, drift_rel=0.10, interference_max=0.3,
                      max_passes=2)


class FakeTimer:
    """True latency × (1 ± 1% jitter) × the slowdown of the burst active at this call number;
    ``interference`` (and ``beside``) reported during bursts that are visible to the CPU meter on
    the measurement's cores (beside them)."""

    def __init__(self, bursts=(), seed=0):
        # (first_call, last_call, slowdown, visible_cores[, cores_beside])
        self.bursts = [tuple(b) + (0.0,) * (5 - len(b)) for b in bursts]
        self.calls: list[str] = []
        self.rng = np.random.default_rng(seed)

    def factor(self, n):
        for first, last, slowdown, cores, beside in self.bursts:
            if first <= n <= last:
                return slowdown, cores, beside
        return 1.0, 0.0, 0.0

    def __call__(self, item):
        n = len(self.calls)
        self.calls.append(item)
        slowdown, cores, beside = self.factor(n)
        return Sample(TRUE_MS[item] * slowdown * (1 + self.rng.uniform(-0.01, 0.01)), cores, beside)

    def probe(self):
        _, cores, beside = self.factor(len(self.calls))
        return Load(cores, beside)


def run(timer, state=None, policy=POLICY, on_sample=None):
    scheduler = Scheduler(list(TRUE_MS), REFS, timer, policy, seed=7, state=state, on_sample=on_sample,
                          probe=timer.probe)
    return scheduler.run()


def errors(state, policy=POLICY):
    return {i: estimate(state["samples"][i], policy).median_ms / TRUE_MS[i] - 1 for i in TRUE_MS}


def test_quiet_run_measures_each_item_once_per_round_in_shuffled_orders():
    timer = FakeTimer()
    state = run(timer)
    for item, samples in state["samples"].items():
        assert sorted(s["round"] for s in samples) == [0, 1, 2] and all(s["status"] == "clean" for s in samples)
    non_ref = [c for c in timer.calls if c not in REFS]
    first, second = non_ref[:10], non_ref[10:20]
    assert first != second  # each round in its own order
    assert max(abs(e) for e in errors(state).values()) < 0.011
    noise = noise_report(state, list(TRUE_MS), POLICY)
    assert not noise["noisy"] and noise["remeasured"] == 0 and noise["references"] >= 36 // 4


def test_burst_on_some_rounds_does_not_bias_and_touched_rounds_are_remeasured():
    # A 60% slowdown the CPU meter does not see, over 12 calls in the middle of the run: it hits
    # some rounds of some items (and a reference).
    timer = FakeTimer(bursts=[(14, 25, 1.6, 0.0)])
    state = run(timer)
    errs = errors(state)
    assert max(abs(e) for e in errs.values()) < 0.011, errs  # without the rule: up to +60%
    touched = {i for i, ss in state["samples"].items() if any(s["status"] != "clean" for s in ss)}
    assert touched
    for item in touched:  # every touched item got new samples in a re-measurement pass
        samples = state["samples"][item]
        assert any(s["pass"] > 0 for s in samples)
        assert sum(s["status"] == "clean" for s in samples) >= POLICY.rounds
    assert not noise_report(state, list(TRUE_MS), POLICY)["noisy"]


def test_a_burst_on_most_rounds_of_an_item_is_still_recognised_by_the_references():
    # Two long bursts, invisible to the CPU meter: many items have 2 of their 3 first-pass
    # rounds slowed by 25%, so their own typical level is the slowed one; the references,
    # measured before every sample (the default), show the slow spells.
    policy = replace(POLICY, reference_every=1)
    timer = FakeTimer(bursts=[(0, 27, 1.25, 0.0), (56, 83, 1.25, 0.0)])
    state = run(timer, policy=policy)
    assert max(abs(e) for e in errors(state, policy).values()) < 0.011


def test_drift_seen_by_references_touches_the_items_measured_next_to_them():
    # A 9% slowdown (below the outlier rule's 10%) visible to no CPU meter: only the reference
    # blocks drifting shows it.
    timer = FakeTimer(bursts=[(20, 39, 1.09, 0.0)])
    policy = RoundsPolicy(rounds=3, reference_every=1, outlier_rel=0.10, drift_rel=0.05, max_passes=2)
    state = run(timer, policy=policy)
    drifted = [s for ss in state["samples"].values() for s in ss if s["status"] == "drift"]
    assert drifted
    slowed = [s for ss in state["samples"].values() for s in ss if s["pass"] == 0 and 20 <= s["seq"] - 1 <= 39]
    assert slowed
    # every sample measured during the slowdown, but the references, is marked (seq counts refs too)
    assert all(s["status"] == "drift" for s in slowed if s["status"] != "outlier")
    assert max(abs(e) for e in errors(state, policy).values()) < 0.011
    assert noise_report(state, list(TRUE_MS), policy)["reference_drift_max"] > 0.05


def test_persistent_interference_ends_marked_noisy_saying_how_noisy():
    # Another program uses a whole core through the run and everything is 50% slower.
    timer = FakeTimer(bursts=[(0, 10_000, 1.5, 1.0)])
    state = run(timer)
    noise = noise_report(state, list(TRUE_MS), POLICY)
    assert noise["noisy"] and noise["unclean_count"] == len(TRUE_MS)
    assert noise["touched"] == {"interference": 36} and noise["remeasured"] == 0  # the probe saw it: no retries
    assert "1.00 cores" in noise["stopped"]
    line = describe_noise(noise)
    assert "12 of 12 items" in line and "1.00 cores" in line
    assert len(timer.calls) < 36 * 1.5  # no second full pass under the same load


def test_a_program_beside_the_measurement_touches_the_rounds_it_ran_beside():
    # A memory-bound program on a core the measurement does not use: it takes none of the
    # measurement's CPU (interference 0) but slows it by 20% for 12 calls; only the meter of the
    # cores beside sees it (1 core). Touched as "beside", re-measured, unbiased.
    timer = FakeTimer(bursts=[(14, 25, 1.2, 0.0, 1.0)])
    state = run(timer)
    statuses = {s["status"] for ss in state["samples"].values() for s in ss}
    assert "beside" in statuses and "interference" not in statuses
    assert max(abs(e) for e in errors(state).values()) < 0.011  # without the rule: up to +20%
    noise = noise_report(state, list(TRUE_MS), POLICY)
    assert not noise["noisy"] and noise["beside_cores"]["max"] == 1.0 and noise["remeasured"] > 0


def test_a_persistent_program_beside_the_measurement_ends_marked_noisy_naming_it():
    # The same program through the whole run: every round is slowed alike, so no rule but the
    # meter of the cores beside can see it; the profile must not come out clean.
    timer = FakeTimer(bursts=[(0, 10_000, 1.2, 0.0, 1.0)])
    state = run(timer)
    noise = noise_report(state, list(TRUE_MS), POLICY)
    assert noise["noisy"] and noise["touched"] == {"beside": 36} and noise["remeasured"] == 0
    assert "1.00 beside" in noise["stopped"]
    assert "beside the profiler's" in describe_noise(noise) and "up to 1.00 cores, median 1.00" in describe_noise(noise)
    # Half a core beside is within the rule (a background daemon): clean.
    quiet_neighbour = run(FakeTimer(bursts=[(0, 10_000, 1.0, 0.0, 0.4)]))
    assert not noise_report(quiet_neighbour, list(TRUE_MS), POLICY)["noisy"]


def test_interference_that_ends_is_remeasured_clean():
    timer = FakeTimer(bursts=[(0, 15, 1.5, 1.0)])
    state = run(timer)
    noise = noise_report(state, list(TRUE_MS), POLICY)
    assert not noise["noisy"] and noise["touched"].get("interference", 0) > 0 and noise["remeasured"] > 0
    assert max(abs(e) for e in errors(state).values()) < 0.011


def test_resume_measures_nothing_twice_and_ends_where_a_full_run_ends():
    full_timer = FakeTimer(bursts=[(14, 25, 1.6, 0.0)])
    full = run(full_timer)

    timer = FakeTimer(bursts=[(14, 25, 1.6, 0.0)])
    saved: list[dict] = []

    def save_then_stop(item, is_reference):
        saved.append(json.loads(json.dumps(timer_state[0])))  # the JSON round trip a profile file does
        if len(timer.calls) == 20:
            raise KeyboardInterrupt

    timer_state = [None]
    scheduler = Scheduler(list(TRUE_MS), REFS, timer, POLICY, seed=7, on_sample=save_then_stop, probe=timer.probe)
    timer_state[0] = scheduler.state
    with pytest.raises(KeyboardInterrupt):
        scheduler.run()
    state = copy.deepcopy(saved[-1])
    measured = sum(len(v) for v in state["samples"].values()) + len(state["references"])
    assert measured == 20
    resumed = run(timer, state=state)
    assert timer.calls == full_timer.calls  # the same measurements in the same order, none repeated
    assert errors(resumed) == pytest.approx(errors(full))
    again = FakeTimer()
    run(again, state=resumed)
    assert again.calls == []  # a finished state measures nothing


def test_under_load_that_never_lets_up_the_least_disturbed_rounds_are_used():
    # One core taken by another program all along (seen by the meter), with bursts on top
    # that slow some rounds further: noisy, but the estimate ignores the burst rounds.
    timer = FakeTimer(bursts=[(10, 21, 2.0, 1.0), (0, 10_000, 1.2, 1.0)])
    state = run(timer)
    assert noise_report(state, list(TRUE_MS), POLICY)["noisy"]
    errs = errors(state)
    assert all(0.18 < e < 0.22 for e in errs.values()), errs  # the load's 20%, not the bursts' 140%


def test_a_slow_spell_seen_by_a_reference_is_waited_out_before_measuring():
    # The machine is 1.7x slower for a spell that no CPU meter sees; each sleep lets the fake
    # clock (the call count) move on. With a sleep the scheduler waits the spell out instead of
    # measuring into it; without one it measures on and the spell's samples must be re-measured.
    policy = replace(POLICY, reference_every=1, wait_seconds=3.0, wait_step=0.25)

    def slowed(state):
        return sum(1 for item, ss in state["samples"].items() for s in ss if s["ms"] > 1.5 * TRUE_MS[item])

    timer = FakeTimer(bursts=[(20, 45, 1.7, 0.0)])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        timer.calls.append("<sleep>")  # time passes

    waited = Scheduler(list(TRUE_MS), REFS, timer, policy, seed=7, sleep=sleep).run()
    assert slept and waited["waited_seconds"] == sum(slept)
    assert max(abs(e) for e in errors(waited, policy).values()) < 0.011
    assert not noise_report(waited, list(TRUE_MS), policy)["noisy"]

    plain = Scheduler(list(TRUE_MS), REFS, FakeTimer(bursts=[(20, 45, 1.7, 0.0)]), policy, seed=7).run()
    assert plain.get("waited_seconds", 0.0) == 0.0
    assert max(abs(e) for e in errors(plain, policy).values()) < 0.011  # re-measured instead
    assert slowed(waited) < slowed(plain) and slowed(plain) >= 5


def test_a_persistent_load_is_waited_for_once_then_measured_through_until_it_ends():
    # Another program takes a core from call 10 to call 60 (the CPU meter sees it): a wait runs
    # out once, then the scheduler stops waiting (each wait would cost wait_seconds for nothing)
    # until a reference is back at its quiet level; it waits again for a later, short spell.
    policy = replace(POLICY, reference_every=1, wait_seconds=3.0, wait_step=0.25)
    timer = FakeTimer(bursts=[(10, 60, 1.5, 1.0)])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        timer.calls.append("<sleep>")

    state = Scheduler(list(TRUE_MS), REFS, timer, policy, seed=7, sleep=sleep, probe=timer.probe).run()
    assert state["waits_given_up"] == 1
    assert sum(slept) == pytest.approx(3.0)  # one wait that ran out, not one per sample
    noise = noise_report(state, list(TRUE_MS), policy)
    assert noise["waits_given_up"] == 1 and noise["waited_seconds"] == pytest.approx(3.0)
    assert not state["waiting_suspended"]  # the load ended, and a reference saw it end
    assert max(abs(e) for e in errors(state, policy).values()) < 0.011  # the loaded samples were re-measured
