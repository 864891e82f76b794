"""Interference-robust measurement schedule and statistics; pure (no ONNX Runtime), driven by a
timer function, so it is tested on a fake timer with injected bursts.

The profiler measures every item (block or calibration sub-network) in ``rounds`` short rounds;
each round visits all items in a seeded shuffled order, so a burst of background load lands on
different items in different rounds instead of on one item's whole measurement. Reference items
(a few blocks) are measured again every ``reference_every`` items through the whole run, so a
change of the machine's speed over time (drift) is seen while it happens.

A *sample* is one round of one item: the median of that round's timed runs (ms), with the CPU
that other processes used meanwhile on the measurement's cores (``interference``, in cores) and
on the machine's other cores (``beside``, in cores). A sample is **touched** when

* ``interference``: other processes used more than ``interference_max`` cores of the
  measurement's cores during it;
* ``beside``: other processes used more than ``beside_max`` cores *beside* the measurement's
  (when it is pinned to fewer cores than the machine has) — they do not take its cores, but they
  share its caches and memory bandwidth, which no priority keeps away: on this project's 2-core
  VM a numpy copy loop on the other core slowed a 1-thread 112×112 MobileNetV3 block by 1.23x (a
  CPU-bound loop: 1.01x; ``tools/bench_session_noise.py neighbour``), while the slowdown is the
  same all through the run, so neither the references nor the outlier rule can see it;
* ``drift``: the references measured just before and after it both ran more than ``drift_rel``
  slower than their quiet level (the lower quartile of their measurements), or one did and the
  sample is itself more than ``drift_rel`` slower than its item's fastest (see :func:`classify`);
* ``outlier``: it is more than ``outlier_rel`` slower than its item's typical level (the median
  of its samples).

The anchors are typical levels (medians; the lower quartile for the references), not the
fastest measurements: on this project's
2-core VM a 2-thread ONNX Runtime session runs a 30 µs block at 19-21 µs in a minority of
rounds and at 35-40 µs in the rest, so the fastest round is a rare state, and anchoring to it
called most of a quiet machine's rounds disturbed. A burst that hits most rounds of an item is
seen by the references, which are cheap (a few ms in an open session) and measured before every
sample by default; when one says the machine is in a slow spell, the scheduler waits up to
``wait_seconds`` for it to pass before measuring (the host of this VM slows a core ~1.7x in
spells of a few seconds); a wait that runs out means a persistent load, and waiting stops until
a reference is back at its quiet level. Touched
samples are re-measured in up to ``max_passes`` further passes (shuffled, references
interleaved), until every item has ``rounds`` clean samples; a pass where most re-measurements
are touched again, or a ``probe`` that finds other processes still using more than
``interference_max`` cores (or more than ``beside_max`` beside them) before a pass, ends
re-measurement early (the load is persistent:
measuring again would cost a whole profile and be touched again).

**The statistic the predictor is fitted on** is the item's ``median_ms``: the median of its clean
samples' medians (each the median of one round's runs). Not the minimum of rounds: the minimum
is biased low by the run-to-run spread (the luckiest of several rounds), while exported models
are timed once by their median; the median of clean rounds is an estimate of that same quantity
which a burst in a minority of rounds (the outlier rule) cannot move. An item is *clean* with at least ``ceil(rounds / 2)`` clean samples; otherwise its
estimate is the median of its samples within ``outlier_rel`` of its fastest (the least
disturbed of what could be had) and the profile is marked noisy.

The state is a JSON-able dict (saved in the profile while it is being measured), so an
interrupted run resumes without measuring again what it has: ``{"samples": {item: [sample]},
"references": [ref], "seq": n, "passes_done": k}``; a sample is ``{"ms", "interference",
"beside", "seq", "round", "pass", "status"}`` (``beside`` is absent from states saved before it
was metered, and read as 0) (status None until its pass is classified, then "clean" or
the reason it was touched).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class RoundsPolicy:
    """How items are scheduled and when a sample counts as touched.

    Attributes:
        rounds: clean samples wanted per item.
        reference_every: measure one reference item after this many samples.
        outlier_rel: a sample this much slower than its item's typical level (median) is an outlier (0.20: 20%).
        drift_rel: a reference this much slower than its quiet level marks its neighbours drifted.
        interference_max: other processes using more cores than this of the measurement's cores
            during a sample touch it.
        beside_max: other processes using more cores than this on the cores beside the
            measurement's during a sample touch it (0.5: half a core, e.g. one program that is
            busy half the time; background daemons use far less).
        max_passes: re-measurement passes at most.
        wait_seconds: when a reference says the machine is in a slow spell (slower than its
            quiet level by more than ``drift_rel``) before a sample, wait up to this long (in steps
            of ``wait_step`` seconds, re-measuring the reference) for the spell to pass, when
            the scheduler is given a ``sleep``; 0: never wait.
    """

    rounds: int = 3
    reference_every: int = 1
    outlier_rel: float = 0.20
    drift_rel: float = 0.25
    interference_max: float = 0.30
    beside_max: float = 0.50
    max_passes: int = 3
    wait_seconds: float = 3.0
    wait_step: float = 0.25


@dataclass(frozen=True)
class Sample:
    """What a timer returns for one round of one item: ``ms`` (the round's median, ms),
    ``interference`` (cores other processes used meanwhile on the measurement's cores),
    ``beside`` (cores they used on the machine's other cores) and ``extra`` (stored as is, e.g.
    the round's quantiles)."""

    ms: float
    interference: float = 0.0
    beside: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Load(NamedTuple):
    """Cores other processes use: on the measurement's cores (``ours``) and beside them."""

    ours: float
    beside: float = 0.0


#: ``timer(item) -> Sample``, or None when the item failed (it is then measured no more).
Timer = Callable[[str], "Sample | None"]


def new_state() -> dict[str, Any]:
    """An empty schedule state."""
    return {"samples": {}, "references": [], "seq": 0, "passes_done": 0}


def order(items: Sequence[str], seed: int, round_: int, pass_: int = 0) -> list[str]:
    """The items of one round in a seeded shuffled order (the same on resume)."""
    rng = np.random.default_rng([seed, round_, pass_])
    return [items[i] for i in rng.permutation(len(items))]


class Scheduler:
    """Runs the rounds and re-measurement passes over ``items`` with ``timer`` into ``state``.

    Args:
        items: item ids to measure.
        references: item ids measured again through the run (may be among ``items``).
        timer: measures one round of an item (see :data:`Timer`).
        policy: see :class:`RoundsPolicy`.
        seed: seed of the shuffled orders.
        state: a state to resume (:func:`new_state` for a new run); updated in place.
        on_sample: called with (item, is_reference) after each measurement, e.g. to save.
        probe: returns the :class:`Load` other processes put on the machine right now
            (checked before each re-measurement pass); None: not checked.
        reference_timer: measures a reference (default ``timer``); a cheap one (an open
            session, a few ms of runs) lets references be measured before every sample.
        sleep: ``sleep(seconds)``, used to wait out a slow spell (see
            :attr:`RoundsPolicy.wait_seconds`); None: never wait.
    """

    def __init__(self, items: Sequence[str], references: Sequence[str], timer: Timer, policy: RoundsPolicy,
                 *, seed: int = 0, state: dict[str, Any] | None = None,
                 on_sample: Callable[[str, bool], None] | None = None,
                 probe: Callable[[], float] | None = None, reference_timer: Timer | None = None,
                 sleep: Callable[[float], None] | None = None):
        self.items = list(items)
        self.reference_timer = reference_timer or timer
        self.sleep = sleep
        self.references = list(references)
        self.timer = timer
        self.policy = policy
        self.seed = seed
        self.state = state if state is not None else new_state()
        self.on_sample = on_sample or (lambda item, ref: None)
        self.probe = probe
        self.failed: set[str] = set()

    # -- measuring -----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.state["seq"] += 1
        return self.state["seq"]

    def _reference(self, key: str | None = None) -> dict[str, Any] | None:
        """Measure a reference (the next in turn, or ``key``); returns its record."""
        if not self.references:
            return None
        refs = self.state["references"]
        key = key or self.references[len(refs) % len(self.references)]
        sample = self.reference_timer(key)
        if sample is None:
            self.references = [r for r in self.references if r != key]
            return None
        record = {"item": key, "ms": float(sample.ms), "interference": float(sample.interference),
                  "beside": float(sample.beside), "seq": self._next_seq()}
        refs.append(record)
        self.on_sample(key, True)
        return record

    def _slow(self, record: dict[str, Any]) -> bool:
        """Whether a reference measurement says the machine is in a slow spell now (slower than
        that reference's quiet level so far, :func:`quiet_level`, by more than ``drift_rel``)."""
        quiet = quiet_level([r["ms"] for r in self.state["references"] if r["item"] == record["item"]])
        return record["ms"] > quiet * (1 + self.policy.drift_rel) or load_reason(record, self.policy) is not None

    def _wait_out_slow_spell(self, record: dict[str, Any] | None) -> None:
        """While the last reference says the machine is slow, wait and measure it again, up to
        ``wait_seconds`` (the waiting is recorded in the state's ``waited_seconds``).

        A wait that runs out with the machine still slow means a persistent load (another
        program on the cores, not one of the host's short spells): waiting before every sample
        would then add ``wait_seconds`` to each of them for nothing, so the scheduler stops
        waiting (``state["waiting_suspended"]``, counted in ``waits_given_up``) until a
        reference is measured at its quiet level again. The samples measured meanwhile are
        classified and re-measured as usual."""
        if record is None or self.sleep is None:
            return
        if not self._slow(record):
            self.state["waiting_suspended"] = False
            return
        if self.state.get("waiting_suspended"):
            return
        waited = 0.0
        while self._slow(record) and waited + self.policy.wait_step <= self.policy.wait_seconds + 1e-9:
            self.sleep(self.policy.wait_step)
            waited += self.policy.wait_step
            record = self._reference(record["item"])
            if record is None:
                break
        self.state["waited_seconds"] = self.state.get("waited_seconds", 0.0) + waited
        if record is not None and self._slow(record):
            self.state["waiting_suspended"] = True
            self.state["waits_given_up"] = self.state.get("waits_given_up", 0) + 1

    def _measure(self, item: str, round_: int, pass_: int) -> None:
        refs = self.state["references"]
        if not refs or self.state["seq"] - refs[-1]["seq"] >= self.policy.reference_every:
            # from the state, so a resumed run interleaves where it left off
            self._wait_out_slow_spell(self._reference())
        sample = self.timer(item)
        if sample is None:
            self.failed.add(item)
            return
        self.state["samples"].setdefault(item, []).append({
            "ms": float(sample.ms), "interference": float(sample.interference), "beside": float(sample.beside),
            "seq": self._next_seq(),
            "round": round_, "pass": pass_, "status": None, **sample.extra})
        self.on_sample(item, False)

    def _live(self) -> list[str]:
        return [i for i in self.items if i not in self.failed]

    def planned(self) -> int:
        """Measurements of the main rounds still to do (references included, roughly)."""
        todo = sum(1 for r in range(self.policy.rounds) for i in self.items
                   if not any(s["round"] == r and s["pass"] == 0 for s in self.state["samples"].get(i, [])))
        return todo + (todo // max(self.policy.reference_every, 1) + 1 if self.references else 0)

    def run(self) -> dict[str, Any]:
        """Measure what is left: the main rounds, then re-measurement passes. Returns the state."""
        for round_ in range(self.policy.rounds):
            for item in order(self._live(), self.seed, round_):
                if item in self.failed:
                    continue
                if not any(s["round"] == round_ and s["pass"] == 0 for s in self.state["samples"].get(item, [])):
                    self._measure(item, round_, 0)
        self._close_pass(0)
        while self.state["passes_done"] < self.policy.max_passes:
            pass_ = self.state["passes_done"] + 1
            wanted = {i: self.policy.rounds - clean_count(self.state["samples"].get(i, []), before=pass_)
                      for i in self._live()}
            wanted = {i: n for i, n in wanted.items() if n > 0}
            if not wanted:
                break
            if self.probe is not None and not any(s["pass"] == pass_ for i in wanted
                                                  for s in self.state["samples"].get(i, [])):
                load = self.probe()
                if load.ours > self.policy.interference_max or load.beside > self.policy.beside_max:
                    self.state["stopped"] = (f"other processes used {load.ours:.2f} cores (and {load.beside:.2f} "
                                             f"beside the measurement's) before pass {pass_}")
                    break
            for slot in range(max(wanted.values())):
                for item in order(sorted(wanted), self.seed, slot, pass_):
                    done = sum(1 for s in self.state["samples"].get(item, []) if s["pass"] == pass_)
                    if done < wanted[item] and done <= slot and item not in self.failed:
                        self._measure(item, slot, pass_)
            persistent = self._close_pass(pass_)
            if persistent:
                break
        self.state["passes_done"] = max(self.state["passes_done"], self.policy.max_passes)
        return self.state

    # -- classifying ---------------------------------------------------------------------------
    def _close_pass(self, pass_: int) -> bool:
        """Classify the samples of pass ``pass_``; True when most of them were touched (a
        persistent load: stop re-measuring)."""
        if pass_ > 0:
            self.state["passes_done"] = pass_
        closed = self.state.setdefault("closed", [])
        if pass_ in closed:
            return False
        closed.append(pass_)
        if self.references and self.state["references"]:
            # a closing reference, so the last samples of the pass have one after them
            self._reference()
        classify(self.state, self.policy)
        fresh = [s for samples in self.state["samples"].values() for s in samples if s["pass"] == pass_]
        touched = sum(1 for s in fresh if s["status"] != "clean")
        return pass_ > 0 and bool(fresh) and touched > len(fresh) / 2


def clean_count(samples: Sequence[dict[str, Any]], before: int | None = None) -> int:
    """Clean samples (of passes before ``before`` when given)."""
    return sum(1 for s in samples if s["status"] == "clean" and (before is None or s["pass"] < before))


def reference_baselines(state: dict[str, Any]) -> dict[str, float]:
    """Quiet level of each reference item: the lower quartile of its measurements (ms) — not the
    fastest (a rare fast state, see the module doc), not the median (a machine slowed for most
    of the run would make the slow level typical)."""
    by_item: dict[str, list[float]] = {}
    for ref in state["references"]:
        by_item.setdefault(ref["item"], []).append(ref["ms"])
    return {item: quiet_level(ms) for item, ms in by_item.items()}


def quiet_level(ms: Sequence[float]) -> float:
    """The lower quartile of a reference's measurements (ms)."""
    return float(np.percentile(np.asarray(ms, dtype=np.float64), 25))


def reference_drifts(state: dict[str, Any]) -> tuple[list[int], list[float]]:
    """The references' sequence numbers (ascending) and each one's slowdown against its quiet
    level (``drift``, relative: 0.5 = 50% slower)."""
    refs = sorted(state["references"], key=lambda r: r["seq"])
    base = reference_baselines(state)
    drifts = [r["ms"] / base[r["item"]] - 1 if base[r["item"]] > 0 else 0.0 for r in refs]
    return [r["seq"] for r in refs], drifts


def neighbour_drifts(seq: int, ref_seqs: list[int], drifts: list[float]) -> list[float]:
    """Drifts of the references measured just before and just after sequence number ``seq``
    (one of them at the ends of the run, none without references)."""
    i = bisect.bisect_left(ref_seqs, seq)
    return [drifts[j] for j in (i - 1, i) if 0 <= j < len(drifts)]


def load_reason(record: dict[str, Any], policy: RoundsPolicy) -> str | None:
    """``"interference"`` or ``"beside"`` when the CPU other processes used during a measurement
    (a sample or reference record) touches it under ``policy``, else None."""
    if record["interference"] > policy.interference_max:
        return "interference"
    if record.get("beside", 0.0) > policy.beside_max:  # absent from states saved before it was metered
        return "beside"
    return None


def classify(state: dict[str, Any], policy: RoundsPolicy) -> None:
    """Give every unclassified or clean sample its status ("clean", "interference", "beside",
    "drift" or "outlier"); touched samples stay touched. Clean ones are checked again because a later round
    may be faster than every earlier one (the earlier rounds were all slowed) or a later reference
    may show a slow spell around them; the status is a function of the state, so a resumed run
    classifies the same.

    Drift: the references just before and after the sample were both slowed by more than
    ``drift_rel`` (the machine was slow all around it, which its own item's samples cannot show
    when most rounds of the item were slowed), or one of them was and the sample is itself more
    than ``drift_rel`` slower than its item's fastest round. A sample next to one slowed reference
    that matches its item's fastest was measured before or after the slow spell, so it stays clean
    (on this project's 2-core VM the host slows a core by ~1.7x in spells of a few seconds).
    """
    ref_seqs, drifts = reference_drifts(state)
    for samples in state["samples"].values():
        typical = float(np.median([s["ms"] for s in samples]))
        fastest = min(s["ms"] for s in samples)
        for s in samples:
            if s["status"] not in (None, "clean"):
                continue
            slowed = [d > policy.drift_rel for d in neighbour_drifts(s["seq"], ref_seqs, drifts)]
            loaded = load_reason(s, policy)
            if loaded is not None:
                s["status"] = loaded
            elif (slowed and all(slowed)) or (any(slowed) and s["ms"] > fastest * (1 + policy.drift_rel)):
                s["status"] = "drift"
            elif s["ms"] > typical * (1 + policy.outlier_rel):
                s["status"] = "outlier"
            else:
                s["status"] = "clean"


@dataclass(frozen=True)
class Estimate:
    """The result for one item: ``median_ms`` (what the predictor is fitted on), the samples it
    was taken from, and whether the item is clean."""

    median_ms: float
    used: list[dict[str, Any]]
    clean: bool
    samples: int
    touched: int
    spread: float  # (max - min) / median of the used samples' ms


def estimate(samples: Sequence[dict[str, Any]], policy: RoundsPolicy) -> Estimate:
    """The item's estimate: the median of its clean samples when it has at least half of
    ``rounds`` of them; else (not clean) the median of the samples within ``outlier_rel`` of its
    fastest — under a load that never let up, the least disturbed of what was measured."""
    clean = [s for s in samples if s["status"] == "clean"]
    ok = len(clean) >= math.ceil(policy.rounds / 2)
    fastest = min(s["ms"] for s in samples)
    used = clean if ok else [s for s in samples if s["ms"] <= fastest * (1 + policy.outlier_rel)]
    ms = np.array([s["ms"] for s in used], dtype=np.float64)
    median = float(np.median(ms))
    spread = float((ms.max() - ms.min()) / median) if median > 0 else 0.0
    return Estimate(median, used, ok, len(samples), len(samples) - len(clean), spread)


def noise_report(state: dict[str, Any], items: Sequence[str], policy: RoundsPolicy) -> dict[str, Any]:
    """How noisy the measurement was, for the profile's ``noise`` field.

    ``noisy`` (some item has no clean majority), ``unclean_items`` (their ids, at most 20) and
    ``unclean_count``, ``items``, ``samples``, ``touched`` (by reason), ``remeasured`` (samples
    of passes after the first), ``interference_cores`` and ``beside_cores`` (median / max over
    all samples and references),
    ``reference_drift_max`` (largest slowdown of a reference against its fastest), and
    ``round_spread_median`` / ``round_spread_max`` ((max - min) / median of all the samples of
    each item: how far apart its rounds were), ``waited_seconds`` (slow spells waited out) and
    ``waits_given_up`` (waits that ran out: a persistent load).
    """
    all_samples = [s for i in items for s in state["samples"].get(i, [])]
    estimates = {i: estimate(state["samples"][i], policy) for i in items if state["samples"].get(i)}
    unclean = [i for i, e in estimates.items() if not e.clean]
    reasons: dict[str, int] = {}
    for s in all_samples:
        if s["status"] not in (None, "clean"):
            reasons[s["status"]] = reasons.get(s["status"], 0) + 1
    interference = [s["interference"] for s in all_samples] + [r["interference"] for r in state["references"]]
    beside = [s.get("beside", 0.0) for s in all_samples] + [r.get("beside", 0.0) for r in state["references"]]
    base = reference_baselines(state)
    drifts = [r["ms"] / base[r["item"]] - 1 for r in state["references"] if base.get(r["item"])]
    spreads = []
    for i in estimates:
        ms = [s["ms"] for s in state["samples"][i]]
        spreads.append((max(ms) - min(ms)) / float(np.median(ms)) if np.median(ms) > 0 else 0.0)
    return {
        "noisy": bool(unclean),
        "unclean_count": len(unclean),
        "unclean_items": unclean[:20],
        "items": len(estimates),
        "samples": len(all_samples),
        "touched": reasons,
        "remeasured": sum(1 for s in all_samples if s["pass"] > 0),
        "stopped": state.get("stopped"),
        "references": len(state["references"]),
        "interference_cores": {"median": float(np.median(interference)) if interference else 0.0,
                               "max": float(max(interference)) if interference else 0.0},
        "beside_cores": {"median": float(np.median(beside)) if beside else 0.0,
                         "max": float(max(beside)) if beside else 0.0},
        "reference_drift_max": float(max(drifts)) if drifts else 0.0,
        "round_spread_median": float(np.median(spreads)) if spreads else 0.0,
        "round_spread_max": float(max(spreads)) if spreads else 0.0,
        "waited_seconds": float(state.get("waited_seconds", 0.0)),
        "waits_given_up": int(state.get("waits_given_up", 0)),
    }


def describe_noise(noise: dict[str, Any]) -> str:
    """One line saying how noisy a noisy profile is (for the warning)."""
    touched = ", ".join(f"{n} {reason}" for reason, n in sorted(noise.get("touched", {}).items())) or "none"
    beside = noise.get("beside_cores", {})
    beside_text = (f"; other processes on the cores beside the profiler's (sharing its caches and memory "
                   f"bandwidth) used up to {beside.get('max', 0):.2f} cores, median {beside.get('median', 0):.2f}"
                   if beside.get("max", 0) > 0 else "")
    return (f"{noise.get('unclean_count', '?')} of {noise.get('items', '?')} items have no clean measurement "
            f"(touched samples: {touched}; other processes used up to "
            f"{noise.get('interference_cores', {}).get('max', 0):.2f} cores, median "
            f"{noise.get('interference_cores', {}).get('median', 0):.2f}{beside_text}; reference blocks drifted up to "
            f"{noise.get('reference_drift_max', 0):.0%}; round-to-round spread median "
            f"{noise.get('round_spread_median', 0):.1%}, max {noise.get('round_spread_max', 0):.1%})")
