"""Test accuracy of an exported ONNX file, on the test split of the evaluator's task.

The file itself runs in ONNX Runtime (CPU) over ``evaluator.task.test`` (a
:class:`hwnas.task.Split`), rows in order, in chunks of the deployment batch: INT8 dynamic
quantization computes its activation scales over the whole batch, so its accuracy depends on the
batching. Inputs come from :meth:`~hwnas.task.Split.feeds` untrimmed (exactly what a deployed
model receives, in the split's dtypes) and labels from ``split.labels``, so nothing here knows
what the inputs are. The evaluator's own ``test_accuracy`` (PyTorch) is recorded beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from hwnas.errors import InputError
from hwnas.supernets.base import Supernet
from hwnas.task import Split


@dataclass
class AccuracySource:
    """Where test accuracy comes from.

    ``split`` set: the exported file is run over it (:func:`onnx_predictions`) in batches of
    ``batch`` examples, and ``evaluator.test_accuracy`` of the PyTorch sub-network is recorded
    beside it as a cross-check. ``split`` None but an evaluator: ``evaluator.test_accuracy`` only
    (e.g. plug-ins without a task). Neither: no accuracy, ``note`` says why.
    """

    evaluator: Any = None
    split: Split | None = None
    note: str | None = None
    batch: int = 1

    def describe(self) -> dict[str, Any]:
        """The manifest's ``accuracy``: method, evaluator, task, task_seed, examples, batch, note."""
        if self.split is not None:
            method = "onnxruntime on the test split (the exported file itself)"
        elif self.evaluator is not None:
            method = "Evaluator.test_accuracy (PyTorch, the supernet's own test split)"
        else:
            method = None
        task = getattr(self.evaluator, "task", None)
        return {"method": method,
                "evaluator": getattr(self.evaluator, "description", None),
                "task": getattr(task, "name", None), "task_seed": getattr(task, "seed", None),
                "examples": len(self.split) if self.split is not None else None,
                "batch": self.batch if self.split is not None else None,
                "note": self.note}


def accuracy_source(supernet: Supernet, evaluator: Any = "auto", batch: int = 1) -> AccuracySource:
    """The accuracy source for ``supernet``: ``evaluator="auto"`` asks
    :func:`hwnas.evaluation.accuracy.get_evaluator`; None turns accuracy off; any object with
    the Evaluator protocol is used as given. ``batch``: examples per ONNX Runtime call (use the
    deployment batch, ``measurement.shape["batch"]``). The evaluator's ``task.test`` is used
    when its feeds hold every input of the model; for a supernet with its own ``evaluate`` (no
    task), :meth:`~hwnas.supernets.base.Supernet.deployment_test_split`."""
    note = None
    if isinstance(evaluator, str) and evaluator == "auto":
        from hwnas.evaluation.accuracy import get_evaluator

        try:
            evaluator = get_evaluator(supernet)
        except InputError as exc:
            evaluator, note = None, str(exc)
    elif evaluator is None:
        note = "accuracy not requested"
    # A weight-sharing evaluator scores a Task, whose test split the file itself can run on; a
    # plug-in's own evaluate() has no task (its test accuracy comes from test_evaluate only).
    split = getattr(getattr(evaluator, "task", None), "test", None)
    if split is None and evaluator is not None:  # a supernet with its own evaluate(): its test examples, if any
        split = supernet.deployment_test_split()
    if split is not None and (len(split) == 0 or not set(supernet.input_names) <= set(split.feeds(np.arange(1)))):
        split = None
    return AccuracySource(evaluator, split, note, batch)


def onnx_predictions(session: ort.InferenceSession, split: Split, batch: int = 1) -> np.ndarray:
    """Predicted class (argmax of the output named ``logits``, else of the first output) of every
    example of ``split``, in order, int64 [N]; ``batch`` examples per call."""
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    which = outputs.index("logits") if "logits" in outputs else 0
    out = []
    for start in range(0, len(split), batch):
        feeds = split.feeds(np.arange(start, min(start + batch, len(split))))
        missing = [n for n in names if n not in feeds]
        if missing:
            raise InputError(f"test split {split.name!r} has no model input {missing[0]!r}")
        out.append(np.argmax(session.run(None, {n: feeds[n] for n in names})[which], axis=-1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def split_accuracy(predictions: np.ndarray, split: Split) -> float:
    """Fraction of ``split``'s examples whose label is ``predictions`` (int [N], in row order)."""
    return float(np.mean(predictions == split.labels))


def accuracy_session(path: str | Path, threads: int) -> ort.InferenceSession:
    """A CPU session of an ONNX file for accuracy runs (the profiler's session settings)."""
    from hwnas.profiling.timing import make_session

    return make_session(path, "cpu", threads)
