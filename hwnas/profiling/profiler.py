"""Measure a space on a device: every unique block, a calibration set of whole sub-networks,
and the noise floor; resumable, saved after every measurement.

Items: each distinct block of the space, exported alone (fixed shape), and a seeded calibration
set of whole sub-networks — the smallest, the largest and a uniform sample — exported exactly as
``hwnas export`` would (dynamic axes); for ``precision="int8"`` each is quantized as
``hwnas export --int8`` quantizes. Items are measured in interleaved rounds with reference
blocks through the run, and rounds touched by interference are measured again
(:mod:`hwnas.profiling.rounds`); a profile that could not be measured clean is marked noisy.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import hwnas
from hwnas.onnx_export import export_onnx_bytes
from hwnas.checks import check_int
from hwnas.errors import InputError
from hwnas.fileio import remove_stale_temporaries
from hwnas.interrupts import terminate_as_interrupt
from hwnas.locking import exclusive, refuse_if_locked
from hwnas.profiling.fingerprint import (
    device_fingerprint,
    device_id,
    fingerprint_differences,
)
from hwnas.profiling.precision import INT8_METHOD, check_precision, quantize_dynamic_int8
from hwnas.profiling.profile import Profile, load_profile
from hwnas.profiling.rounds import Estimate, Load, RoundsPolicy, Sample, Scheduler, estimate, new_state, noise_report
from hwnas.profiling.timing import (
    Timing,
    check_ep,
    make_session,
    nodes_by_provider,
    pinned,
    raised_priority,
    time_session,
)
from hwnas.space import Config, SearchSpace
from hwnas.supernets.base import Shape, Supernet


@dataclass(frozen=True)
class MeasurePolicy:
    """How long and how to measure. Times in seconds.

    Every item (block or calibration sub-network) is measured in ``rounds`` rounds over all
    items (see :mod:`hwnas.profiling.rounds`); each round is a new session with at least ``warmup``
    untimed runs adding up to ``warmup_seconds`` (but no more than 2 once they add up to
    ``warmup_cap_seconds``: :func:`~hwnas.profiling.timing.time_session`), then at least ``ceil(repeats / rounds)`` (and 3) timed runs, continuing until
    they add up to ``min_seconds / rounds`` (blocks) or ``calibration_min_seconds / rounds``
    (whole sub-networks). ``noise_blocks`` blocks are the reference blocks, each timed in a
    session kept open for the run for :data:`REFERENCE_SECONDS`, before every ``reference_every``-th
    sample through the run; when one is slower than its quiet level (the lower quartile of its
    measurements) by more than ``drift_rel`` (a slow spell of the machine), the profiler waits up to ``wait_seconds`` for the spell to pass before
    measuring the next sample. ``outlier_rel``, ``drift_rel``,
    ``interference_max`` (cores used by other processes on the measurement's cores),
    ``beside_max`` (cores they use beside them) and ``max_passes`` say when a round is touched by
    interference and how often it is measured again (:class:`RoundsPolicy`).
    """

    warmup: int = 5
    warmup_seconds: float = 0.05
    warmup_cap_seconds: float = 0.25
    repeats: int = 9
    min_seconds: float = 0.5
    calibration_size: int = 30
    calibration_min_seconds: float = 1.0
    noise_blocks: int = 6
    # The schedule's settings, flat so that the profile's settings record them; defaults are
    # RoundsPolicy's (one source).
    rounds: int = RoundsPolicy.rounds
    reference_every: int = RoundsPolicy.reference_every
    outlier_rel: float = RoundsPolicy.outlier_rel
    drift_rel: float = RoundsPolicy.drift_rel
    interference_max: float = RoundsPolicy.interference_max
    beside_max: float = RoundsPolicy.beside_max
    max_passes: int = RoundsPolicy.max_passes
    wait_seconds: float = RoundsPolicy.wait_seconds
    wait_step: float = RoundsPolicy.wait_step

    @classmethod
    def quick(cls) -> MeasurePolicy:
        return cls(warmup=2, repeats=10, min_seconds=0.1, calibration_size=10,
                   calibration_min_seconds=0.2, noise_blocks=3, reference_every=2, wait_seconds=0.5)

    def rounds_policy(self) -> RoundsPolicy:
        return RoundsPolicy(**{f.name: getattr(self, f.name) for f in fields(RoundsPolicy)})

    def round_repeats(self) -> int:
        """Timed runs of one round at least."""
        return max(3, math.ceil(self.repeats / max(self.rounds, 1)))

    def time_round(self, session: Any, feeds: dict[str, np.ndarray], total_seconds: float) -> Timing:
        """One round of an item in a new ``session``: the warm-up, then at least
        :meth:`round_repeats` timed runs adding up to ``total_seconds / rounds``."""
        return time_session(session, feeds, warmup=self.warmup, warmup_seconds=self.warmup_seconds,
                            warmup_cap_seconds=self.warmup_cap_seconds, repeats=self.round_repeats(),
                            min_seconds=total_seconds / max(self.rounds, 1))


#: Seconds of timed runs of one reference measurement (in its open session).
REFERENCE_SECONDS = 0.01

#: Scheduling niceness the profiler and :func:`time_models` measure at where the process may
#: raise its priority (:func:`~hwnas.profiling.timing.raised_priority`); None: normal priority.
MEASURE_NICENESS: int | None = -20


def schedule_rules(policy: MeasurePolicy, niceness: int | None) -> RoundsPolicy:
    """The schedule's rules for a measurement at ``niceness`` (None: at normal priority).

    At a raised priority, programs at normal priority do not take the cores from the
    measurement (they get what it leaves), so the CPU time they use is recorded in each sample
    but does not touch it, nor end re-measurement; a slowdown they still cause (memory
    bandwidth, caches) shows in the references (drift, waiting) and the outlier rule as before.
    Programs on the cores *beside* the measurement's (``beside_max``) are not kept away by any
    priority, so that rule stays.
    """
    rules = policy.rounds_policy()
    return replace(rules, interference_max=math.inf) if niceness is not None else rules

#: What a round keeps of its Timing besides the median (stored in the sample).
ROUND_FIELDS = ("q1_ms", "q3_ms", "p90_ms", "min_ms", "repeats", "run_seconds")


def round_sample(timing: Timing, load: Load) -> Sample:
    """A timed round as the scheduler's :class:`~hwnas.profiling.rounds.Sample`."""
    return Sample(timing.median_ms, load.ours, load.beside, {k: getattr(timing, k) for k in ROUND_FIELDS})


class ReferenceSessions:
    """The reference items' sessions, kept open for a run and warmed up once, as a round is;
    :meth:`time` takes one reference measurement (:data:`REFERENCE_SECONDS` of runs)."""

    def __init__(self, ep: str, threads: int, policy: MeasurePolicy):
        self.ep, self.threads, self.policy = ep, threads, policy
        self._sessions: dict[str, Any] = {}

    def open(self, key: str, model: bytes | str | os.PathLike, feeds: dict[str, np.ndarray]) -> Any:
        """The open session of ``key`` (made and warmed up on first use)."""
        if key not in self._sessions:
            session = make_session(model, self.ep, self.threads)
            time_session(session, feeds, warmup=self.policy.warmup, warmup_seconds=self.policy.warmup_seconds,
                         warmup_cap_seconds=self.policy.warmup_cap_seconds, repeats=1)
            self._sessions[key] = session
        return self._sessions[key]

    @staticmethod
    def time(session: Any, feeds: dict[str, np.ndarray]) -> Timing:
        return time_session(session, feeds, warmup=1, repeats=5, min_seconds=REFERENCE_SECONDS)


def default_threads() -> int:
    """Physical cores of this machine (intra-op threads used when none are given)."""
    return psutil.cpu_count(logical=False) or 1


def resolve_threads(threads: int | None) -> int:
    """``threads`` checked to be an integer from 1 to this machine's logical cores, or the
    default (physical cores) when None."""
    if threads is None:
        return default_threads()
    # More intra-op threads than logical cores only makes ONNX Runtime's threads contend.
    return check_int("--threads", threads, 1, os.cpu_count() or 1)


def calibration_configs(space: SearchSpace, n: int, seed: int = 0) -> list[Config]:
    """The smallest and largest configurations (all genes lowest/highest, when valid) and a
    seeded uniform sample, ``n`` distinct configurations in all."""
    picked: list[Config] = []
    keys: set[str] = set()
    for genes in (np.zeros(space.n_genes, dtype=np.int64), space.gene_upper_bounds):
        config = space.from_genes(genes, validate=False)
        if space.is_valid(config) and space.key(config) not in keys:
            picked.append(space.canonical(config))
            keys.add(space.key(config))
    rng = np.random.default_rng(seed)
    while len(picked) < n:
        (config,) = space.sample(1, seed=rng)
        if space.key(config) not in keys:
            picked.append(config)
            keys.add(space.key(config))
    return picked[:n]


def noise_block_keys(keys: list[str], k: int) -> list[str]:
    """``k`` block keys spread evenly over the sorted list (deterministic)."""
    if k <= 0 or not keys:
        return []
    picks = np.unique(np.linspace(0, len(keys) - 1, num=min(k, len(keys))).round().astype(int))
    return [keys[i] for i in picks]


class CpuMeter:
    """CPU used by other processes (in cores) over a window (:meth:`load`): on our cores, the
    busy CPU time of ``cores`` (the cores this process is pinned to; None: all) minus this
    process's, per wall second; beside them, the busy CPU time of the machine's other cores less
    what this process's threads that may run there used (0 when the process uses all cores). Windows shorter than ``min_window`` seconds are widened back in time (the
    clock-tick resolution of CPU times makes them unreliable)."""

    def __init__(self, cores: list[int] | None = None, min_window: float = 0.3):
        self.cores = cores
        self.min_window = min_window
        # (wall, busy s of our cores, own s, busy s of all cores, own s of threads not held to our cores)
        self.marks: list[tuple[float, float, float, float, float]] = []
        self.process = psutil.Process()

    def mark(self) -> None:
        """Take a snapshot (before a measurement)."""
        self.marks.append(self._now())
        if len(self.marks) > 64:
            del self.marks[:32]

    def _now(self) -> tuple[float, float, float, float, float]:
        every = psutil.cpu_times(percpu=True)
        ours = every if self.cores is None else [every[c] for c in self.cores if c < len(every)]

        def busy(times: list) -> float:
            return sum(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                       - getattr(t, "guest_nice", 0.0) for t in times)

        own = self.process.cpu_times()
        own_beside = self._own_beside() if len(ours) < len(every) else 0.0  # no cores beside: no scan
        return time.monotonic(), busy(ours), own.user + own.system, busy(every), own_beside

    def _own_beside(self) -> float:
        """CPU seconds of this process's threads that may run beside our cores: threads started
        before the process was pinned (e.g. PyTorch's pool, exporting) keep their old affinity,
        and their CPU time there is ours, not another program's."""
        ours, total = set(self.cores or ()), 0.0
        try:
            threads = self.process.threads()
        except psutil.Error:
            return 0.0
        for thread in threads:
            try:
                if not set(os.sched_getaffinity(thread.id)) <= ours:
                    total += thread.user_time + thread.system_time
            except OSError:  # the thread has ended
                continue
        return total

    def _window(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        now = self._now()
        start = next((m for m in reversed(self.marks) if now[0] - m[0] >= self.min_window),
                     self.marks[0] if self.marks else now)
        return start, now

    @staticmethod
    def _load(start: tuple[float, ...], now: tuple[float, ...]) -> Load:
        wall = now[0] - start[0]
        if wall <= 0:
            return Load(0.0, 0.0)
        ours, own, every = now[1] - start[1], now[2] - start[2], now[3] - start[3]
        own_beside = max(0.0, now[4] - start[4])  # threads that ended take their time with them
        return Load(max(0.0, (ours - own) / wall), max(0.0, (every - ours - own_beside) / wall))

    def load(self) -> Load:
        """Cores used by other processes since the last :meth:`mark` (or earlier, see above): on
        our cores and beside them."""
        return self._load(*self._window())

    def probe(self, seconds: float = 0.5) -> Load:
        """The :class:`~hwnas.profiling.rounds.Load` of other processes now, over ``seconds`` of
        this process sleeping."""
        start = self._now()
        time.sleep(seconds)
        return self._load(start, self._now())


ProgressFn = Callable[[str, str], None]  # (stage, key) after each item measured


class Profiler:
    """Measure ``supernet`` on ``ep`` into the profile file ``out`` (resuming it if present).

    Args:
        supernet: what to profile.
        out: profile path; an existing profile with the same space, settings and device is
            resumed, anything else there is refused (never overwritten).
        ep: ``"cpu"``, ``"cuda"`` or ``"openvino"``.
        threads: intra-op threads (default: physical cores).
        shape: overrides of the supernet's default shape, e.g. ``{"batch": 1, "seq_len": 128}``.
        policy: measurement policy (:meth:`MeasurePolicy.quick` for ``--quick``).
        calibration_seed: seed of the calibration sample (and of the rounds' shuffled orders).
        precision: ``"fp32"`` or ``"int8"`` (every block and calibration sub-network quantized
            as ``hwnas export --int8`` quantizes, :mod:`hwnas.profiling.precision`).
        niceness: scheduling niceness to measure at where permitted (:data:`MEASURE_NICENESS`;
            None: normal priority); what was granted is the profile's ``noise["niceness"]``.
    """

    def __init__(
        self,
        supernet: Supernet,
        out: str | os.PathLike,
        *,
        ep: str = "cpu",
        threads: int | None = None,
        shape: dict[str, int | None] | None = None,
        policy: MeasurePolicy | None = None,
        calibration_seed: int = 0,
        precision: str = "fp32",
        niceness: int | None = MEASURE_NICENESS,
    ):
        check_ep(ep)
        check_precision(precision)
        self.niceness = niceness
        self.supernet = supernet
        self.out = Path(out)
        self.ep = ep
        self.precision = precision
        self.threads = resolve_threads(threads)
        self.shape: Shape = supernet.resolve_shape(shape)
        supernet.example_inputs(self.shape)  # validates the shape against the supernet
        self.policy = policy or MeasurePolicy()
        self.settings: dict[str, Any] = {
            "ep": ep,
            "threads": self.threads,
            "shape": self.shape,
            "policy": asdict(self.policy),
            "calibration_seed": calibration_seed,
            "precision": precision,
        }
        if precision == "int8":
            self.settings["quantization"] = dict(INT8_METHOD)
        fingerprint = device_fingerprint(ep, self.threads, precision=precision)
        self.device = {**fingerprint, "id": device_id(fingerprint)}
        self.profile = self._open()

    # -- opening / resuming --------------------------------------------------------------------
    def _open(self) -> Profile:
        parent = self.out.resolve().parent
        if not parent.is_dir():
            raise InputError(f"directory of --out {str(self.out)!r} does not exist")
        if not os.access(parent, os.W_OK) or (self.out.exists() and not os.access(self.out, os.W_OK)):
            raise InputError(f"--out {str(self.out)!r} is not writable")
        if self.out.is_dir():
            raise InputError(f"--out {str(self.out)!r} is a directory; give a file name")
        refuse_if_locked(self.out)  # another profiler is writing it: refused before any work
        if not self.out.exists():
            fresh = Profile(space=self.supernet.name, device=self.device, settings=self.settings,
                            hwnas_version=hwnas.__version__)
            fresh.source = f"profile {str(self.out)!r}"
            return fresh
        existing = load_profile(self.out, space=self.supernet.name)
        existing.check_configs(self.supernet.space)
        existing_settings = {"precision": "fp32", **existing.settings}  # profiles before INT8 are FP32
        if existing_settings != self.settings:
            diffs = [
                f"{k}: {existing_settings.get(k)!r} in file vs {v!r} now"
                for k, v in self.settings.items() if existing_settings.get(k) != v
            ]
            raise InputError(f"profile {str(self.out)!r} was made with other settings ({'; '.join(diffs)}); "
                             "use another --out")
        differences = fingerprint_differences(existing.device, self.device)
        if differences:
            raise InputError(f"profile {str(self.out)!r} was measured on another device ({differences[0]}); "
                             "use another --out")
        return existing

    # -- work ----------------------------------------------------------------------------------
    def _items(self) -> dict[str, tuple[str, str, Config | None]]:
        """Every item of the profile: id → (stage, key, config or None for a block)."""
        items: dict[str, tuple[str, str, Config | None]] = {}
        for key in self.supernet.all_blocks(self.shape):
            items[f"block:{key}"] = ("block", key, None)
        for config in calibration_configs(self.supernet.space, self.policy.calibration_size,
                                          self.settings["calibration_seed"]):
            key = self.supernet.space.key(config)
            items[f"calibration:{key}"] = ("calibration", key, config)
        return items

    def _finished(self) -> set[str]:
        done = {f"block:{k}" for k in self.profile.blocks}
        done |= {f"calibration:{self.supernet.space.key(c['config'])}" for c in self.profile.calibration}
        return done

    def pending(self) -> dict[str, list]:
        """What is left to measure: block keys and calibration configs without a final
        measurement (some of their rounds may be measured already)."""
        finished = self._finished()
        left = [(i, v) for i, v in self._items().items() if i not in finished]
        return {"blocks": [k for _, (stage, k, _c) in left if stage == "block"],
                "calibration": [c for _, (stage, _k, c) in left if stage == "calibration"]}

    def reference_items(self) -> list[str]:
        """The reference blocks measured again through the run (drift detection)."""
        return [f"block:{k}" for k in noise_block_keys(self.supernet.all_blocks(self.shape), self.policy.noise_blocks)]

    def run(self, progress: ProgressFn | None = None, on_start: Callable[[int], None] | None = None) -> Profile:
        """Measure everything pending, saving after each measurement. Returns the profile.

        Holds the exclusive lock of ``out`` (:func:`hwnas.locking.exclusive`) throughout, and
        reopens the file under it (another process may have written it since this profiler was
        made); temporary files of ``out`` left by a profiler killed mid-save are removed. SIGTERM
        stops it like Ctrl-C (KeyboardInterrupt), after saving what was measured.

        Args:
            progress: called with (stage, key) after each measurement (one round of an item or
                of a reference block), measured or failed.
            on_start: called once with the number of measurements planned (re-measurements of
                touched rounds come on top).
        """
        with exclusive(self.out), terminate_as_interrupt():
            remove_stale_temporaries(self.out)  # left by a profiler killed mid-save; we hold the lock
            self.profile = self._open()
            with tempfile.TemporaryDirectory(prefix="hwnas-profile-") as tmp:
                self._tmp = Path(tmp)
                return self._run(progress, on_start)

    def _run(self, progress: ProgressFn | None, on_start: Callable[[int], None] | None) -> Profile:
        items = self._items()
        finished = self._finished()
        todo = [i for i in items if i not in finished]
        self._all_items = items
        self._models: dict[str, tuple[Path, dict[str, np.ndarray]]] = {}
        self._progress = progress
        self._meter = CpuMeter()
        state = self.profile.progress or new_state()
        self.profile.progress = state
        self._references = ReferenceSessions(self.ep, self.threads, self.policy)
        self._stats = {k: 0.0 for k in ("wall_seconds", "ort_run_seconds", "export_seconds", "session_seconds")}
        started = time.perf_counter()
        self._last_save = 0.0
        self.profile.failures = {}
        try:
            with pinned(self.threads) as cores, raised_priority(self.niceness) as niceness:
                self._meter.cores = cores  # interference: other processes on our cores
                rounds_policy = schedule_rules(self.policy, niceness)
                scheduler = Scheduler(todo, self.reference_items() if todo else [], self._timer, rounds_policy,
                                      seed=int(self.settings["calibration_seed"]), state=state,
                                      on_sample=lambda item, ref: self._save_soon(), probe=self._meter.probe,
                                      reference_timer=self._reference_timer, sleep=time.sleep)
                if on_start:
                    on_start(scheduler.planned())
                if todo:
                    scheduler.run()
                    self._finish(todo, rounds_policy, niceness)
        finally:
            self._stats["wall_seconds"] = time.perf_counter() - started
            for k, v in self._stats.items():
                self.profile.stats[k] = round(self.profile.stats.get(k, 0.0) + v, 3)
            left = self.pending()
            self.profile.complete = not any(left.values()) and not self.profile.failures
            self.profile.save(self.out)
        return self.profile

    def _save_soon(self) -> None:
        """Save after a measurement (at most every 2 s: a profile of a large space is ~100 kB)."""
        if time.perf_counter() - self._last_save >= 2.0:
            self.profile.save(self.out)
            self._last_save = time.perf_counter()

    def _finish(self, todo: list[str], rounds_policy: RoundsPolicy, niceness: int | None) -> None:
        """Write the final entries of measured items, the noise report (with the ``niceness``
        measured at, None: normal priority) and the noise floor."""
        state = self.profile.progress
        entries: dict[str, dict[str, Any]] = {}
        for item in todo:
            samples = state["samples"].get(item)
            if not samples or f"{self._all_items[item][0]}:{self._all_items[item][1]}" in self.profile.failures:
                continue
            entries[item] = _entry(estimate(samples, rounds_policy), samples, self.policy.warmup)
        for item, (stage, key, _config) in self._all_items.items():
            if item in entries and stage == "block":
                self.profile.blocks[key] = entries[item]
        order = list(self._all_items)
        calibration = {self.supernet.space.key(c["config"]): c for c in self.profile.calibration}
        for item in order:
            stage, key, config = self._all_items[item]
            if stage == "calibration" and item in entries:
                calibration[key] = {"config": config, **entries[item]}
        self.profile.calibration = [calibration[k] for k in
                                    (self._all_items[i][1] for i in order if self._all_items[i][0] == "calibration")
                                    if k in calibration]
        measured = [i for i in todo if i in entries]
        noise = noise_report(state, measured, rounds_policy)
        noise["niceness"] = niceness
        self.profile.noise = noise
        self.profile.noise_floor = {
            "method": "per item: (max - min) / median of its round medians",
            "median_rel_diff": noise["round_spread_median"],
            "max_rel_diff": noise["round_spread_max"],
            "reference_blocks": sorted({r["item"].split(":", 1)[1] for r in state["references"]}),
            "reference_drift_max": noise["reference_drift_max"],
        }
        placement: dict[str, int] = {}
        for counts in state.get("placement", {}).values():
            for provider, n in counts.items():
                placement[provider] = placement.get(provider, 0) + n
        if placement:
            self.profile.placement = {"method": "ONNX Runtime session profiling, one run per item",
                                      "nodes_by_provider": placement}
        self.profile.progress = {}

    # -- one measurement -----------------------------------------------------------------------

    def _timer(self, item: str) -> Sample | None:
        stage, key, config = self._all_items[item]
        try:
            path, feeds = self._model(item)
            self._meter.mark()
            timing = self._time(path, feeds, stage)
            load = self._meter.load()
        except (KeyboardInterrupt, InputError):
            raise
        except Exception as exc:  # a block that fails to export or run: report, carry on
            self.profile.failures[f"{stage}:{key}"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if self._progress:
                self._progress(stage, key)
            return None
        if self._progress:
            self._progress(stage, key)
        return round_sample(timing, load)

    def _reference_timer(self, item: str) -> Sample | None:
        """A reference block timed for :data:`REFERENCE_SECONDS` in a session kept open for the
        run: cheap enough to measure before every sample, and the same block in the same session
        every time, so only the machine's speed moves it."""
        stage, key, _config = self._all_items[item]
        try:
            path, feeds = self._model(item)
            session = self._references.open(item, path, feeds)
            self._meter.mark()
            timing = self._references.time(session, feeds)
            load = self._meter.load()
        except (KeyboardInterrupt, InputError):
            raise
        except Exception:  # noqa: BLE001 - a reference that cannot run is dropped by the scheduler
            return None
        self._stats["ort_run_seconds"] += timing.run_seconds
        if self._progress:
            self._progress(stage, key)
        return Sample(timing.median_ms, load.ours, load.beside)

    def _model(self, item: str) -> tuple[Path, dict[str, np.ndarray]]:
        """The item's model file (exported once per run, INT8-quantized for ``int8``) and feeds."""
        if item in self._models:
            return self._models[item]
        stage, key, config = self._all_items[item]
        t0 = time.perf_counter()
        if stage == "block":
            block = self.supernet.build_block(key, self.shape)
            model = export_onnx_bytes(block.module, block.feeds, block.output_names, dynamic_axes=block.dynamic_axes)
            feeds = block.feeds
        else:
            model, feeds = export_subnet(self.supernet, config, self.shape)
        path = self._tmp / f"item{len(self._models)}.onnx"
        path.write_bytes(model)
        if self.precision == "int8":
            int8_path = path.with_suffix(".int8.onnx")
            quantize_dynamic_int8(path, int8_path)
            path.unlink()
            path = int8_path
        self._stats["export_seconds"] += time.perf_counter() - t0
        placement = self.profile.progress.setdefault("placement", {})
        if self.ep != "cpu" and item not in placement:
            placement[item] = nodes_by_provider(path, self.ep, self.threads, feeds)
        self._models[item] = (path, feeds)
        return path, feeds

    def _time(self, path: Path, feeds: dict[str, np.ndarray], stage: str) -> Timing:
        t0 = time.perf_counter()
        session = make_session(path, self.ep, self.threads)
        self._stats["session_seconds"] += time.perf_counter() - t0
        p = self.policy
        timing = p.time_round(session, feeds, p.min_seconds if stage == "block" else p.calibration_min_seconds)
        self._stats["ort_run_seconds"] += timing.run_seconds
        return timing


def _entry(est: Estimate, samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """An item's saved measurement: the estimate (``median_ms``, what the predictor is fitted
    on) with quantiles as medians over the rounds it used, and every round's summary."""
    used = est.used

    def med(name: str) -> float:
        return float(np.median([s.get(name, s["ms"]) for s in used]))

    return {
        "median_ms": est.median_ms,
        "q1_ms": med("q1_ms"),
        "q3_ms": med("q3_ms"),
        "p90_ms": med("p90_ms"),
        "min_ms": float(min(s.get("min_ms", s["ms"]) for s in used)),
        "repeats": int(sum(s.get("repeats", 0) for s in used)),
        "warmup": warmup,
        "run_seconds": float(sum(s.get("run_seconds", 0.0) for s in samples)),
        "clean": est.clean,
        "round_spread": est.spread,
        "rounds": [{"ms": s["ms"], "status": s["status"], "pass": s["pass"], "seq": s["seq"],
                    "interference": round(s["interference"], 3)} for s in samples],
    }


def export_subnet(supernet: Supernet, config: Config, shape: Shape) -> tuple[bytes, dict[str, np.ndarray]]:
    """A whole sub-network exported as ``hwnas export`` does (dynamic axes), and its inputs."""
    feeds = supernet.example_inputs(shape)
    model = export_onnx_bytes(supernet.extract(config), feeds, supernet.output_names, dynamic_axes=supernet.dynamic_axes)
    return model, feeds


def measure_subnet(
    supernet: Supernet,
    config: Config,
    *,
    ep: str = "cpu",
    threads: int | None = None,
    shape: dict[str, int | None] | None = None,
    policy: MeasurePolicy | None = None,
) -> Timing:
    """Export and time one whole sub-network with the profiler's runner and policy."""
    check_ep(ep)
    threads = resolve_threads(threads)
    shape_ = supernet.resolve_shape(shape)
    policy = policy or MeasurePolicy()
    model, feeds = export_subnet(supernet, supernet.space.validate(config), shape_)
    return time_whole_model(model, feeds, ep=ep, threads=threads, policy=policy)


def time_whole_model(
    model: bytes | str | os.PathLike, feeds: dict[str, np.ndarray], *, ep: str, threads: int, policy: MeasurePolicy
) -> Timing:
    """Time an exported whole model (bytes or .onnx path) as the profiler times its calibration
    sub-networks: pinned threads, ``policy.rounds`` rounds, each a new session with the policy's
    warm-up and ``calibration_min_seconds / rounds`` of timed runs; rounds touched by other
    processes (the CPU meter) or more than ``outlier_rel`` slower than the model's typical round
    are measured again (up to ``max_passes`` passes), and the result is the median of the clean
    rounds' medians (:func:`hwnas.profiling.rounds.estimate`); the model itself, in an open
    session, is the reference (see :func:`time_models`). The rounds of one model follow each
    other; :func:`time_models` spreads them over several models."""
    return time_models({"model": (model, feeds)}, ep=ep, threads=threads, policy=policy)["model"]


def time_models(
    models: Mapping[str, tuple[bytes | str | os.PathLike, dict[str, np.ndarray]]], *, ep: str, threads: int,
    policy: MeasurePolicy, seed: int = 0, niceness: int | None = MEASURE_NICENESS,
) -> dict[str, Timing]:
    """Time several exported whole models (name -> (model, feeds)) as :func:`time_whole_model`
    times one, with the rounds interleaved as the profiler interleaves its items: each round
    visits every model in a seeded shuffled order, so a slow spell of the machine (seconds long
    on this project's VM) lands on different models in different rounds instead of on all the
    rounds of one model; and, as the profiler, with a reference (the first model, in an open
    session) timed before the rounds, whose slow spells are waited out (``wait_seconds``) and
    mark the rounds around them. At ``niceness`` where permitted, as the profiler measures."""
    with pinned(threads) as cores, raised_priority(niceness) as granted:
        rounds_policy = schedule_rules(policy, granted)
        meter = CpuMeter(cores)

        def one_round(name: str) -> Sample:
            model, feeds = models[name]
            session = make_session(model, ep, threads)
            meter.mark()
            timing = policy.time_round(session, feeds, policy.calibration_min_seconds)
            return round_sample(timing, meter.load())

        # The first model, in a session kept open, is the reference: timed before every round as
        # the profiler times its reference blocks, so slow spells are seen and waited out in the
        # same way and measured models compare with the profile's predictions.
        references = ReferenceSessions(ep, threads, policy)

        def reference(name: str) -> Sample:
            model, feeds = models[name]
            session = references.open(name, model, feeds)
            meter.mark()
            timing = references.time(session, feeds)
            load = meter.load()
            return Sample(timing.median_ms, load.ours, load.beside)

        names = list(models)
        state = Scheduler(names, names[:1], one_round, rounds_policy, seed=seed, reference_timer=reference,
                          sleep=time.sleep).run()
    timings = {}
    for name in models:
        samples = state["samples"][name]
        entry = _entry(estimate(samples, rounds_policy), samples, policy.warmup)
        timings[name] = Timing(**{f.name: entry[f.name] for f in fields(Timing)})
    return timings
