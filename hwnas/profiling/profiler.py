"""Measure a space on a device: every unique block, a calibration set of whole sub-networks,
and the noise floor; resumable, saved after every measurement.

Order of work: (1) each distinct block of the space is exported alone (fixed shape) and timed;
(2) a seeded calibration set of whole sub-networks — the smallest, the largest and a uniform
sample — is exported exactly as ``hwnas export`` would (dynamic axes) and timed end to end;
(3) a few blocks are exported and timed again in new sessions, to record how much a median
moves between two independent sessions on this machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
from hwnas.profiling.profile import Profile, load_profile
from hwnas.profiling.timing import (
    Timing,
    check_ep,
    make_session,
    noise_floor,
    pin_threads,
    time_session,
)
from hwnas.space import Config, SearchSpace
from hwnas.supernets.base import Shape, Supernet


@dataclass(frozen=True)
class MeasurePolicy:
    """How long to measure. Times in seconds.

    Each measurement does ``warmup`` untimed runs, then at least ``repeats`` timed runs and
    keeps going until the timed runs add up to ``min_seconds`` (blocks) or
    ``calibration_min_seconds`` (whole sub-networks).
    """

    warmup: int = 5
    repeats: int = 20
    min_seconds: float = 1.0
    calibration_size: int = 30
    calibration_min_seconds: float = 2.0
    noise_blocks: int = 6

    @classmethod
    def quick(cls) -> MeasurePolicy:
        return cls(warmup=2, repeats=10, min_seconds=0.1, calibration_size=10,
                   calibration_min_seconds=0.2, noise_blocks=3)


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


ProgressFn = Callable[[str, str], None]  # (stage, key) after each item measured


class Profiler:
    """Measure ``supernet`` on ``ep`` into the profile file ``out`` (resuming it if present).

    Args:
        supernet: what to profile.
        out: profile path; an existing profile with the same space, settings and device is
            resumed, anything else there is refused (never overwritten).
        ep: ``"cpu"`` or ``"cuda"``.
        threads: intra-op threads (default: physical cores).
        shape: overrides of the supernet's default shape, e.g. ``{"batch": 1, "seq_len": 128}``.
        policy: measurement policy (:meth:`MeasurePolicy.quick` for ``--quick``).
        calibration_seed: seed of the calibration sample.
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
    ):
        check_ep(ep)
        self.supernet = supernet
        self.out = Path(out)
        self.ep = ep
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
        }
        fingerprint = device_fingerprint(ep, self.threads)
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
            return Profile(space=self.supernet.name, device=self.device, settings=self.settings,
                           hwnas_version=hwnas.__version__)
        existing = load_profile(self.out, space=self.supernet.name)
        existing.check_configs(self.supernet.space)
        if existing.settings != self.settings:
            diffs = [
                f"{k}: {existing.settings.get(k)!r} in file vs {v!r} now"
                for k, v in self.settings.items() if existing.settings.get(k) != v
            ]
            raise InputError(f"profile {str(self.out)!r} was made with other settings ({'; '.join(diffs)}); "
                             "use another --out")
        differences = fingerprint_differences(existing.device, self.device)
        if differences:
            raise InputError(f"profile {str(self.out)!r} was measured on another device ({differences[0]}); "
                             "use another --out")
        return existing

    # -- work ----------------------------------------------------------------------------------
    def pending(self) -> dict[str, list]:
        """What is left to measure: block keys, calibration configs, noise-floor block keys."""
        blocks = self.supernet.all_blocks(self.shape)
        measured_configs = {self.supernet.space.key(c["config"]) for c in self.profile.calibration}
        calib = [
            c for c in calibration_configs(self.supernet.space, self.policy.calibration_size,
                                           self.settings["calibration_seed"])
            if self.supernet.space.key(c) not in measured_configs
        ]
        done_noise = set(self.profile.noise_floor.get("blocks", {}))
        noise = [k for k in noise_block_keys(blocks, self.policy.noise_blocks) if k not in done_noise]
        return {"blocks": [k for k in blocks if k not in self.profile.blocks], "calibration": calib, "noise": noise}

    def run(self, progress: ProgressFn | None = None, on_start: Callable[[int], None] | None = None) -> Profile:
        """Measure everything pending, saving after each item. Returns the profile.

        Holds the exclusive lock of ``out`` (:func:`hwnas.locking.exclusive`) throughout, and
        reopens the file under it (another process may have written it since this profiler was
        made); temporary files of ``out`` left by a profiler killed mid-save are removed. SIGTERM
        stops it like Ctrl-C (KeyboardInterrupt), after saving what was measured.

        Args:
            progress: called with (stage, key) after each item, measured or failed.
            on_start: called once with the number of items to measure.
        """
        with exclusive(self.out), terminate_as_interrupt():
            remove_stale_temporaries(self.out)  # left by a profiler killed mid-save; we hold the lock
            self.profile = self._open()
            return self._run(progress, on_start)

    def _run(self, progress: ProgressFn | None, on_start: Callable[[int], None] | None) -> Profile:
        pending = self.pending()
        self._noise_keys = set(pending["noise"])
        self._exported: dict[str, tuple[bytes, dict[str, np.ndarray]]] = {}
        if on_start:
            on_start(sum(len(v) for v in pending.values()))
        pin_threads(self.threads)
        stats = {k: 0.0 for k in ("wall_seconds", "ort_run_seconds", "export_seconds", "session_seconds")}
        started = time.perf_counter()
        self.profile.failures = {}
        try:
            for key in pending["blocks"]:
                self._measure(stats, "block", key, lambda k=key: self._time_block(k, stats),
                              lambda t, k=key: self.profile.blocks.__setitem__(k, t.to_dict()))
                if progress:
                    progress("block", key)
            for config in pending["calibration"]:
                label = self.supernet.space.key(config)
                self._measure(stats, "calibration", label, lambda c=config: self._time_subnet(c, stats),
                              lambda t, c=config: self.profile.calibration.append({"config": c, **t.to_dict()}))
                if progress:
                    progress("calibration", label)
            for key in pending["noise"]:
                self._measure(stats, "noise", key, lambda k=key: self._time_block(k, stats), self._record_noise(key))
                if progress:
                    progress("noise", key)
        finally:
            stats["wall_seconds"] = time.perf_counter() - started
            for k, v in stats.items():
                self.profile.stats[k] = round(self.profile.stats.get(k, 0.0) + v, 3)
            left = self.pending()
            self.profile.complete = not any(left.values()) and not self.profile.failures
            self.profile.save(self.out)
        return self.profile

    def _measure(self, stats, stage: str, key: str, measure: Callable[[], Timing], record: Callable[[Timing], None]) -> None:
        try:
            timing = measure()
        except (KeyboardInterrupt, InputError):
            raise
        except Exception as exc:  # a block that fails to export or run: report, carry on
            self.profile.failures[f"{stage}:{key}"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            return
        record(timing)
        self.profile.save(self.out)  # after every item, so an interrupted run resumes here

    def _record_noise(self, key: str) -> Callable[[Timing], None]:
        def record(again: Timing) -> None:
            first = Timing.from_dict(self.profile.blocks[key])
            blocks = self.profile.noise_floor.setdefault("blocks", {})
            blocks[key] = {"first_ms": first.median_ms, "second_ms": again.median_ms,
                           "rel_diff": noise_floor(first, again)}
            diffs = [b["rel_diff"] for b in blocks.values()]
            self.profile.noise_floor.update(median_rel_diff=float(np.median(diffs)), max_rel_diff=float(max(diffs)))
        return record

    def _time(self, model_bytes: bytes, feeds: dict[str, np.ndarray], min_seconds: float, stats) -> Timing:
        t0 = time.perf_counter()
        session = make_session(model_bytes, self.ep, self.threads)
        stats["session_seconds"] += time.perf_counter() - t0
        p = self.policy
        timing = time_session(session, feeds, warmup=p.warmup, repeats=p.repeats, min_seconds=min_seconds)
        stats["ort_run_seconds"] += timing.run_seconds
        return timing

    def _time_block(self, key: str, stats) -> Timing:
        cached = self._exported.pop(key, None)  # the noise stage times a block's first export again
        t0 = time.perf_counter()
        if cached is None:
            block = self.supernet.build_block(key, self.shape)
            model = export_onnx_bytes(block.module, block.feeds, block.output_names, dynamic_axes=block.dynamic_axes)
            cached = (model, block.feeds)
            if key in self._noise_keys:
                self._exported[key] = cached
        stats["export_seconds"] += time.perf_counter() - t0
        return self._time(cached[0], cached[1], self.policy.min_seconds, stats)

    def _time_subnet(self, config: Config, stats) -> Timing:
        t0 = time.perf_counter()
        model, feeds = export_subnet(self.supernet, config, self.shape)
        stats["export_seconds"] += time.perf_counter() - t0
        return self._time(model, feeds, self.policy.calibration_min_seconds, stats)


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
    """Time an exported whole model (bytes or .onnx path) in a new session, as the profiler times
    its calibration sub-networks: pinned threads, the policy's warm-up and repeats, and at least
    ``policy.calibration_min_seconds`` of timed runs."""
    pin_threads(threads)
    session = make_session(model, ep, threads)
    return time_session(session, feeds, warmup=policy.warmup, repeats=policy.repeats,
                        min_seconds=policy.calibration_min_seconds)
