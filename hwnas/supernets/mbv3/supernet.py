"""The Once-for-All MobileNetV3 supernet and its two built-in spaces (``mbv3``, ``mbv3-fmnist``).

Layout (OFA MobileNetV3, w1.0): a 3×3 stem conv with h-swish; a fixed first block (MBConv,
expand 1, kernel 3, stride 1, ReLU, no squeeze-excite, identity shortcut); 5 elastic stages of
up to 4 MBConv blocks (stride on each stage's first block); the final 1×1 expand conv (BN,
h-swish), global average pooling, the feature-mix 1×1 conv (no BN, h-swish) and a linear
classifier. A block's middle width is ``make_divisible(round(in · e), 8)``; identity shortcut
only when stride is 1 and in = out channels. See :mod:`hwnas.supernets.mbv3.network`.

Genes (45, in OFA's and DyNAS-T's order): ``ks`` kernel size per block ∈ {3, 5, 7} (20),
``e`` expand ratio per block ∈ {3, 4, 6} (20), ``d`` depth per stage ∈ {2, 3, 4} (5). Only the
first ``d[s]`` blocks of stage ``s`` run; configurations hold full 20-entry lists and the genes
of inactive blocks canonicalise to the first choice (3), so equal networks compare equal.

Spaces:

* ``mbv3`` — OFA's widths: stem/first block 16; stages 24, 40, 80, 112, 160 with stride
  2, 2, 2, 1, 2 (stem stride 2); activation ReLU, ReLU, h-swish, h-swish, h-swish;
  squeeze-excite no, yes, no, yes, yes; final expand 960, feature mix 1280; input ``image``
  float32 [batch, 3, 224, 224]; 1,000 classes; seeded random weights. There is no ImageNet here,
  so it has no accuracy objective (for profiling and latency studies).
* ``mbv3-fmnist`` — the same 45 genes, activations and squeeze-excite pattern, fitted to
  28×28 grayscale Fashion-MNIST (:mod:`hwnas.supernets.mbv3.fmnist`): input [batch, 1, 28, 28],
  10 classes; stem/first block 8 (stem stride 2: 28 → 14); stages 8, 16, 24, 32, 40 with
  stride 2, 2, 1, 1, 1 (14 → 7 → 4 → 4 → 4 → 4); final expand 160, feature mix 256. Narrow
  enough that one sub-network's evaluation (BN recalibration + 5,000 validation images) takes
  about a second on two CPU threads (:data:`LAYOUTS` holds the numbers).
  Ships trained weights (``hwnas/data/mbv3-fmnist.pt``, made by ``tools/train_mbv3.py``).

Batch normalisation (as OFA): the shared weights carry only BN's affine parameters; each
sub-network's statistics are *recalibrated* before it is run in eval mode — one forward pass
over a fixed calibration batch (``mbv3-fmnist``: the first :data:`CALIBRATION_IMAGES` images of
the seeded train split; ``mbv3``: seeded uniform-noise images at 64×64, as there is no ImageNet)
normalising each layer by, and recording, that batch's mean and (biased) variance. The
statistics are cached per configuration key (:meth:`OFAMobileNetV3.bn_statistics`), used by
:meth:`~OFAMobileNetV3.forward` in eval mode and copied into :meth:`~OFAMobileNetV3.extract`'s
plain eval-mode BatchNorm layers; in train mode ``forward`` uses the batch's statistics.

Blocks are keyed as OFA keys its latency tables: ``Conv-input:HxWxC-output:HxWxC`` (stem),
``expanded_conv-input:HxWxC-output:HxWxC-expand:MID-kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1``
(the first block, MID = its input width, and every elastic block), ``Conv_1-...`` (final
expand), ``AvgPool2D-...``, ``Conv_2-input:1x1xC-output:1x1xC`` (feature mix),
``Logits-input:1x1xC-output:N``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import InputError
from hwnas.space import Config, Dimension, SearchSpace, stages
from hwnas.supernets.base import BuiltBlock, Feeds, Shape, Supernet
from hwnas.supernets.checkpoint import PathLike, load_weights, packaged_checkpoint, read_checkpoint
from hwnas.supernets.mbv3.fmnist import fashion_mnist_task
from hwnas.supernets.mbv3.network import (
    BlockSpec,
    MBV3Arch,
    MBV3Network,
    Norm,
    SharedMBV3,
    Stats,
    block_module,
    init_weights,
    make_divisible,
    out_size,
    se_channels,
)
from hwnas.task import Task

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
STAGES = 5
MAX_DEPTH = 4
POSITIONS = STAGES * MAX_DEPTH

#: Images of the train split the BN statistics of each ``mbv3-fmnist`` sub-network are recalibrated on.
CALIBRATION_IMAGES = 500
#: Images per recalibration forward pass (OFA style: statistics averaged over the batches).
CALIBRATION_BATCH = 100
#: Seeded uniform-noise calibration images of ``mbv3`` (no ImageNet here): count and resolution.
NOISE_CALIBRATION = (32, 64)
#: Sub-networks whose BN statistics are kept (least recently used dropped first).
STATS_CACHE = 512


@dataclass(frozen=True)
class Layout:
    """The fixed sizes of one space's network (see the module doc)."""

    in_channels: int
    num_classes: int
    stem: int
    stem_stride: int
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    acts: tuple[str, ...]
    se: tuple[bool, ...]
    final_expand: int
    feature_mix: int
    resolution: int

    def positions(self) -> list[tuple[int, int, int, str, bool]]:
        """(in, out, stride, act, se) of the 20 elastic positions."""
        out, cin = [], self.stem
        for s in range(STAGES):
            for b in range(MAX_DEPTH):
                out.append((cin, self.widths[s], self.strides[s] if b == 0 else 1, self.acts[s], self.se[s]))
                cin = self.widths[s]
        return out

    def spec(self, pos: int, kernel: int, expand: int) -> BlockSpec:
        cin, cout, stride, act, se = self.positions()[pos]
        return BlockSpec(cin, make_divisible(round(cin * expand), 8), cout, kernel, stride, act, se)

    def first(self) -> BlockSpec:
        return BlockSpec(self.stem, self.stem, self.stem, 3, 1, "relu", False)


ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
SE = (False, True, False, True, True)
LAYOUTS = {
    "mbv3": Layout(3, 1000, 16, 2, (24, 40, 80, 112, 160), (2, 2, 2, 1, 2), ACTS, SE, 960, 1280, 224),
    "mbv3-fmnist": Layout(1, 10, 8, 2, (8, 16, 24, 32, 40), (2, 2, 1, 1, 1), ACTS, SE, 160, 256, 28),
}


def _space(name: str) -> SearchSpace:
    return SearchSpace(
        name=name,
        supernet="ofa-mbv3",
        dimensions=(Dimension("ks", KERNELS, per_layer=POSITIONS), Dimension("e", EXPANDS, per_layer=POSITIONS),
                    Dimension("d", DEPTHS, per_layer=STAGES)),
        groups=stages("d", ("ks", "e"), (MAX_DEPTH,) * STAGES),
    )


SPACES = {name: _space(name) for name in LAYOUTS}

_KEY_RE = re.compile(
    r"^(?P<kind>Conv|Conv_1|Conv_2|AvgPool2D|expanded_conv|Logits)"
    r"-input:(?P<ih>\d+)x(?P<iw>\d+)x(?P<ic>\d+)-output:(?:(?P<oh>\d+)x(?P<ow>\d+)x)?(?P<oc>\d+)"
    r"(?:-expand:(?P<mid>\d+)-kernel:(?P<k>\d+)-stride:(?P<s>\d+)-idskip:(?P<skip>[01])-se:(?P<se>[01])"
    r"-hs:(?P<hs>[01]))?$"
)


def _hwc(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


def mbconv_key(spec: BlockSpec, size: int) -> str:
    """OFA's latency-table key of an MBConv block whose input is ``size``×``size``."""
    o = out_size(size, spec.stride)
    return (f"expanded_conv-input:{_hwc(size, spec.cin)}-output:{_hwc(o, spec.cout)}-expand:{spec.mid}"
            f"-kernel:{spec.kernel}-stride:{spec.stride}-idskip:{int(spec.skip)}-se:{int(spec.se)}"
            f"-hs:{int(spec.act == 'hswish')}")


def block_params(spec: BlockSpec) -> int:
    """Parameters of one MBConv block (BN weight and bias count; running statistics do not)."""
    n = (spec.cin * spec.mid + 2 * spec.mid) if spec.expand else 0
    n += spec.mid * spec.kernel**2 + 2 * spec.mid
    if spec.se:
        r = se_channels(spec.mid)
        n += spec.mid * r + r + r * spec.mid + spec.mid
    return n + spec.mid * spec.cout + 2 * spec.cout


def block_macs(spec: BlockSpec, size: int) -> int:
    """Multiply-accumulates of one MBConv block (convs; squeeze-excite's two 1×1 convs) at ``size``."""
    o = out_size(size, spec.stride)
    n = size * size * spec.cin * spec.mid if spec.expand else 0
    n += o * o * spec.mid * spec.kernel**2
    if spec.se:
        n += 2 * spec.mid * se_channels(spec.mid)
    return n + o * o * spec.mid * spec.cout


class OFAMobileNetV3(Supernet):
    """Weight-sharing OFA MobileNetV3 over ``mbv3`` or ``mbv3-fmnist`` (see the module doc)."""

    input_names = ("image",)
    output_names = ("logits",)
    dynamic_axes = {"image": {0: "batch"}, "logits": {0: "batch"}}
    # 28x28 images: larger batches amortise the per-layer overhead (1 thread, 5,000 validation
    # images, a random sub-network: 1.8-1.9 s at 250 against 2.5-2.9 s at 64).
    eval_batch = 250

    def __init__(self, space: SearchSpace, layout: Layout, seed: int = 0, checkpoint: PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, calibration_images: int = CALIBRATION_IMAGES):
        self.space = space
        self.layout = layout
        self.seed = seed
        self.checkpoint = checkpoint
        self.checkpoint_meta: dict[str, Any] | None = None
        self.data_dir = data_dir
        self.calibration_images = calibration_images
        self.default_shape = {"batch": 1, "resolution": layout.resolution}
        self._module: SharedMBV3 | None = None
        self._task: Task | None = None
        self._calibration: torch.Tensor | None = None
        self._stats: OrderedDict[str, Stats] = OrderedDict()

    @property
    def has_data(self) -> bool:
        """Whether this space is trained on real data (``mbv3-fmnist``) rather than seeded weights."""
        return self.layout.in_channels == 1

    # -- configurations → sizes ---------------------------------------------------------------
    def arch(self, config: Config) -> MBV3Arch:
        """Sizes of the sub-network ``config`` (validated)."""
        c = self.space.validate(config)
        blocks = []
        for s in range(STAGES):
            for b in range(c["d"][s]):
                pos = s * MAX_DEPTH + b
                blocks.append((pos, self.layout.spec(pos, c["ks"][pos], c["e"][pos])))
        return self._arch(tuple(blocks))

    def _arch(self, blocks: tuple[tuple[int, BlockSpec], ...]) -> MBV3Arch:
        L = self.layout
        return MBV3Arch(L.in_channels, L.num_classes, L.stem, L.stem_stride, L.first(), blocks,
                        L.final_expand, L.feature_mix)

    def max_arch(self) -> MBV3Arch:
        """The weight store's sizes: every position at kernel 7 and expand ratio 6."""
        return self._arch(tuple((p, self.layout.spec(p, max(KERNELS), max(EXPANDS))) for p in range(POSITIONS)))

    # -- weights -------------------------------------------------------------------------------
    def module(self) -> SharedMBV3:
        if self._module is None and self.checkpoint is not None and os.path.isfile(self.checkpoint):
            state, meta = read_checkpoint(self.checkpoint, self.name)
            try:
                self.load_state_dict(state)
            except InputError as exc:
                raise InputError(f"checkpoint {self.checkpoint}: {exc}") from None
            self.checkpoint_meta = meta
        if self._module is None:
            net = SharedMBV3(self.max_arch())
            init_weights(net, self.seed)
            self._module = net.eval()
        return self._module

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the shared weights (e.g. with a trained checkpoint); drops cached BN statistics.
        Kernel transform matrices missing from ``state`` (checkpoints trained without them) are
        the identity, under which a smaller kernel is the plain centre crop."""
        store = SharedMBV3(self.max_arch())
        state = dict(state)
        for name, tensor in store.state_dict().items():
            if ".ks_transform_" in name and name not in state:
                state[name] = tensor
        self._module = load_weights(store, state, self.name)
        self._stats.clear()

    def _image(self, inputs: Feeds | tuple[torch.Tensor, ...]) -> torch.Tensor:
        if isinstance(inputs, dict):
            return torch.as_tensor(inputs["image"])
        return inputs[0]

    # -- BN recalibration ----------------------------------------------------------------------
    def calibration_batch(self) -> torch.Tensor:
        """The fixed images BN statistics are recalibrated on (see the module doc)."""
        if self._calibration is None:
            if self.has_data:
                train = self.task().train
                n = min(self.calibration_images, len(train))
                images = train.feeds(np.arange(n))["image"]
            else:
                count, res = NOISE_CALIBRATION
                rng = np.random.default_rng(self.seed)
                images = rng.random((count, self.layout.in_channels, res, res), dtype=np.float32)
            self._calibration = torch.from_numpy(images)
        return self._calibration

    def bn_statistics(self, config: Config) -> Stats:
        """Recalibrated BN statistics of ``config`` (mean, biased variance per BN layer, in execution
        order), computed once per configuration key on :meth:`calibration_batch` and cached."""
        key = self.space.key(config)
        if key in self._stats:
            self._stats.move_to_end(key)
            return self._stats[key]
        net, arch = self.module(), self.arch(config)
        chunks: list[Stats] = []
        with torch.inference_mode(False), torch.no_grad():  # plain tensors, also under the evaluator's inference mode
            images = self.calibration_batch()
            for start in range(0, images.shape[0], CALIBRATION_BATCH):
                norm = Norm("record")
                net.run(images[start : start + CALIBRATION_BATCH], arch, norm)
                chunks.append(norm.stats)
            # OFA's set_running_statistics: each batch normalised by its own statistics; the
            # means and the (biased) variances averaged over the batches.
            stats = [(torch.stack([c[i][0] for c in chunks]).mean(dim=0), torch.stack([c[i][1] for c in chunks]).mean(dim=0))
                     for i in range(len(chunks[0]))]
        self._stats[key] = stats
        while len(self._stats) > STATS_CACHE:
            self._stats.popitem(last=False)
        return stats

    def clear_bn_statistics(self) -> None:
        """Forget cached statistics (call after changing the shared weights in place)."""
        self._stats.clear()

    def forward(self, inputs: Feeds | tuple[torch.Tensor, ...], config: Config) -> torch.Tensor:
        """Logits [B, classes]: in train mode with the batch's BN statistics (and the statistics
        cache dropped, the weights are changing), in eval mode with ``config``'s recalibrated ones."""
        net = self.module()
        image = self._image(inputs)
        if net.training:
            self._stats.clear()
            return net.run(image, self.arch(config), Norm("batch"))
        stats = self.bn_statistics(config)
        return net.run(image, self.arch(config), Norm("apply", stats))

    def extract(self, config: Config) -> MBV3Network:
        return self.module().extract(self.arch(config), self.bn_statistics(config))

    def example_inputs(self, shape: Shape, seed: int = 0) -> Feeds:
        rng = np.random.default_rng(seed)
        r = shape["resolution"]
        return {"image": rng.random((shape["batch"], self.layout.in_channels, r, r), dtype=np.float32)}

    # -- sizes at a resolution -----------------------------------------------------------------
    def sizes(self, resolution: int) -> list[int]:
        """Input size of each of the 20 positions at ``resolution``, then the final map size."""
        size = out_size(resolution, self.layout.stem_stride)
        out = []
        for cin, cout, stride, _, _ in self.layout.positions():
            out.append(size)
            size = out_size(size, stride)
        return out + [size]

    def _fixed(self, resolution: int) -> tuple[list[str], int, int]:
        """(keys, MACs, params) of the fixed layers at ``resolution`` (batch 1)."""
        L = self.layout
        r1 = out_size(resolution, L.stem_stride)
        final = self.sizes(resolution)[-1]
        last = L.widths[-1]
        first = L.first()
        keys = [f"Conv-input:{_hwc(resolution, L.in_channels)}-output:{_hwc(r1, L.stem)}", mbconv_key(first, r1),
                f"Conv_1-input:{_hwc(final, last)}-output:{_hwc(final, L.final_expand)}",
                f"AvgPool2D-input:{_hwc(final, L.final_expand)}-output:{_hwc(1, L.final_expand)}",
                f"Conv_2-input:{_hwc(1, L.final_expand)}-output:{_hwc(1, L.feature_mix)}",
                f"Logits-input:{_hwc(1, L.feature_mix)}-output:{L.num_classes}"]
        macs = (r1 * r1 * L.in_channels * L.stem * 9 + block_macs(first, r1) + final * final * last * L.final_expand
                + L.final_expand * L.feature_mix + L.feature_mix * L.num_classes)
        params = (L.in_channels * L.stem * 9 + 2 * L.stem + block_params(first) + last * L.final_expand
                  + 2 * L.final_expand + L.final_expand * L.feature_mix + L.feature_mix * L.num_classes
                  + L.num_classes)
        return keys, macs, params

    @lru_cache(maxsize=16)  # noqa: B019 - a few resolutions per supernet, kept for its life
    def _tables(self, resolution: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Per (position, kernel gene, expand gene): key, its index in the sorted keys, MACs, params."""
        sizes = self.sizes(resolution)
        keys = np.empty((POSITIONS, len(KERNELS), len(EXPANDS)), dtype=object)
        macs = np.zeros(keys.shape, dtype=np.int64)
        params = np.zeros(keys.shape, dtype=np.int64)
        for p in range(POSITIONS):
            for i, k in enumerate(KERNELS):
                for j, e in enumerate(EXPANDS):
                    spec = self.layout.spec(p, k, e)
                    keys[p, i, j] = mbconv_key(spec, sizes[p])
                    macs[p, i, j] = block_macs(spec, sizes[p])
                    params[p, i, j] = block_params(spec)
        names = sorted(set(keys.ravel().tolist()) | set(self._fixed(resolution)[0]))
        index = {k: n for n, k in enumerate(names)}
        codes = np.vectorize(index.__getitem__, otypes=[np.int64])(keys)
        return names, codes, macs, params

    def _decode(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Kernel genes [N, 20], expand genes [N, 20], active [N, 20] (bool), depths [N, 5]."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        if genes.shape[1] != self.space.n_genes:
            raise InputError(f"expected {self.space.n_genes} genes for space {self.name!r}, got {genes.shape[1]}")
        depth = np.asarray(DEPTHS)[genes[:, 2 * POSITIONS :]]
        active = (np.arange(MAX_DEPTH)[None, None, :] < depth[:, :, None]).reshape(genes.shape[0], POSITIONS)
        return genes[:, :POSITIONS], genes[:, POSITIONS : 2 * POSITIONS], active, depth

    # -- blocks --------------------------------------------------------------------------------
    def blocks(self, config: Config, shape: Shape) -> list[str]:
        arch = self.arch(config)
        sizes = self.sizes(shape["resolution"])
        fixed = self._fixed(shape["resolution"])[0]
        return fixed[:2] + [mbconv_key(spec, sizes[pos]) for pos, spec in arch.blocks] + fixed[2:]

    def all_blocks(self, shape: Shape) -> list[str]:
        return list(self._tables(shape["resolution"])[0])

    def block_counts(self, genes: np.ndarray, keys: list[str], shape: Shape) -> np.ndarray:
        names, codes, _, _ = self._tables(shape["resolution"])
        ks, es, active, _ = self._decode(genes)
        n = ks.shape[0]
        column = np.full(len(names), -1, dtype=np.int64)
        index = {k: i for i, k in enumerate(keys)}
        for code, name in enumerate(names):
            column[code] = index.get(name, -1)
        used = codes[np.arange(POSITIONS)[None, :], ks, es]  # [N, 20] codes into names
        fixed = [names.index(k) for k in self._fixed(shape["resolution"])[0]]
        missing = sorted({names[c] for c in np.unique(used[active]).tolist() + fixed if column[c] < 0})
        if missing:
            raise InputError(f"block {missing[0]!r} is not in the profile of space {self.name!r}")
        counts = np.zeros((n, len(keys)))
        rows = np.broadcast_to(np.arange(n)[:, None], used.shape)
        np.add.at(counts, (rows[active], column[used[active]]), 1.0)
        counts[:, column[fixed]] += 1.0
        return counts

    def parse_block(self, key: str) -> dict[str, Any]:
        match = _KEY_RE.match(key)
        if not match:
            raise InputError(f"unknown block key {key!r} for space {self.name!r}")
        g = {k: (int(v) if v is not None and k != "kind" else v) for k, v in match.groupdict().items()}
        if (g["kind"] == "expanded_conv") != (g["mid"] is not None) or (g["kind"] == "Logits") != (g["oh"] is None):
            raise InputError(f"malformed block key {key!r} for space {self.name!r}")
        return g

    def build_block(self, key: str, shape: Shape) -> BuiltBlock:
        g = self.parse_block(key)
        kind = g["kind"]
        batch = shape["batch"]
        if kind == "expanded_conv":
            spec = BlockSpec(g["ic"], g["mid"], g["oc"], g["k"], g["s"], "hswish" if g["hs"] else "relu", bool(g["se"]))
            if int(spec.skip) != g["skip"] or out_size(g["ih"], spec.stride) != g["oh"]:
                raise InputError(f"inconsistent block key {key!r} for space {self.name!r}")
            module = block_module("mbconv", g["ic"], g["oc"], spec)
        elif kind == "Conv":
            stride = -(-g["ih"] // g["oh"])
            module = block_module("stem", g["ic"], g["oc"], kernel=3, stride=stride)
        else:
            module = block_module({"Conv_1": "final", "AvgPool2D": "pool", "Conv_2": "mix", "Logits": "logits"}[kind],
                                  g["ic"], g["oc"])
        init_weights(module, seed=0)
        name = "image" if kind == "Conv" else "x"
        rng = np.random.default_rng(0)
        feeds = {name: rng.standard_normal((batch, g["ic"], g["ih"], g["iw"]), dtype=np.float32)}
        if kind == "Conv":
            feeds[name] = rng.random((batch, g["ic"], g["ih"], g["iw"]), dtype=np.float32)
        output = "logits" if kind == "Logits" else "y"
        return BuiltBlock(module.eval(), feeds, (output,), {name: {0: "batch"}, output: {0: "batch"}})

    # -- analytics -----------------------------------------------------------------------------
    def count_params(self, config: Config) -> int:
        arch = self.arch(config)
        return self._fixed(self.layout.resolution)[2] + sum(block_params(s) for _, s in arch.blocks)

    def count_macs(self, config: Config, shape: Shape) -> int:
        """Multiply-accumulates of the convs (squeeze-excite's included) and the classifier, at ``shape``."""
        r = shape["resolution"]
        arch = self.arch(config)
        sizes = self.sizes(r)
        macs = self._fixed(r)[1] + sum(block_macs(spec, sizes[pos]) for pos, spec in arch.blocks)
        return int(shape["batch"] * macs)

    def macs_matrix(self, genes: np.ndarray, shape: Shape) -> np.ndarray:
        """:meth:`count_macs` of gene rows, vectorised, int64 [N]."""
        _, _, macs, _ = self._tables(shape["resolution"])
        ks, es, active, _ = self._decode(genes)
        per_block = macs[np.arange(POSITIONS)[None, :], ks, es] * active
        return shape["batch"] * (self._fixed(shape["resolution"])[1] + per_block.sum(axis=1))

    def op_counts(self, genes: np.ndarray, shape: Shape) -> np.ndarray:
        """``2 · MACs`` (vectorised)."""
        return 2.0 * self.macs_matrix(genes, shape).astype(np.float64)

    def features(self, config: Config) -> np.ndarray:
        """Kernel size and expand ratio of each block (0 where inactive), then the 5 depths (float64 [45])."""
        return self.feature_matrix(self.space.to_genes(config)[None, :])[0]

    def feature_matrix(self, genes: np.ndarray) -> np.ndarray:
        ks, es, active, depth = self._decode(genes)
        return np.column_stack([np.asarray(KERNELS)[ks] * active, np.asarray(EXPANDS)[es] * active,
                                depth]).astype(np.float64)

    # -- task, OSE hooks -----------------------------------------------------------------------
    def task(self) -> Task | None:
        """Fashion-MNIST for ``mbv3-fmnist`` (InputError when its files are missing); None for ``mbv3``."""
        if not self.has_data:
            return None
        if self._task is None:
            self._task = fashion_mnist_task(self.data_dir)
        return self._task

    def accuracy_task(self) -> Task:
        if not self.has_data:
            raise InputError(f"space {self.name!r} has no accuracy objective: its weights are seeded, not trained "
                             "(no ImageNet here); use it for profiling and latency, or mbv3-fmnist for accuracy")
        if self.checkpoint is None or not Path(self.checkpoint).is_file():
            raise InputError(f"space {self.name!r} has no accuracy evaluator: checkpoint {self.checkpoint} is "
                             "missing (make it with tools/train_mbv3.py)")
        self.module()
        if self.checkpoint_meta is None:
            raise InputError(f"space {self.name!r}: the supernet's weights were built before checkpoint "
                             f"{self.checkpoint} existed; load a fresh supernet")
        task = self.task()
        assert task is not None
        return task

    def brief_training_network(self, config: Config, seed: int) -> nn.Module:
        """The sub-network at its own sizes, freshly initialised with ``seed`` (OSE's setting)."""
        if not self.has_data:
            super().brief_training_network(config, seed)
        net = MBV3Network(self.arch(config))
        init_weights(net, seed)
        return net


def make_mbv3_supernet(space_name: str, seed: int = 0, checkpoint: PathLike | None = "packaged",
                       data_dir: str | os.PathLike | None = None) -> OFAMobileNetV3:
    """The OFA MobileNetV3 supernet over ``mbv3`` or ``mbv3-fmnist``.

    ``checkpoint``: ``"packaged"`` for the shipped trained weights (``mbv3-fmnist``), a path, or
    None for seeded random weights. ``data_dir``: where the Fashion-MNIST files are (default:
    ``$HWNAS_FASHION_MNIST``, then ``/usr/share/datasets/fashion-mnist``).
    """
    if space_name not in SPACES:
        raise InputError(f"unknown MobileNetV3 space {space_name!r} (known: {', '.join(SPACES)})")
    if isinstance(checkpoint, str) and checkpoint == "packaged":
        checkpoint = packaged_checkpoint(space_name)
    return OFAMobileNetV3(SPACES[space_name], LAYOUTS[space_name], seed=seed, checkpoint=checkpoint,
                          data_dir=data_dir)


def make_supernets() -> list[OFAMobileNetV3]:
    """The built-in provider: ``mbv3`` and ``mbv3-fmnist`` (weights built on first use)."""
    return [make_mbv3_supernet(name) for name in SPACES]
