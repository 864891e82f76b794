"""Once-for-All MobileNetV3 as modules: the weight store sliced per sub-network, and standalone nets.

Two forms of one network:

* :class:`SharedMBV3` — the weight store of the largest network (every elastic block at expand
  ratio 6 and kernel 7). :meth:`SharedMBV3.run` runs any :class:`MBV3Arch` with sliced weights
  (Once-for-All's weight sharing): a smaller kernel is the centre crop of the next larger one
  mapped by that block's learned kernel transform matrix (OFA's elastic kernel: 7×7 → centre
  5×5 · T₇₅ [25×25] → centre 3×3 · T₅₃ [9×9], shared by the block's channels, identity at
  initialisation, so an untrained store crops plainly), middle channels the first ones, depth the first blocks of each stage. Batch normalisation is
  applied through a :class:`Norm` that either uses the batch's statistics (training), records
  the statistics of a calibration batch (BN recalibration), or applies recorded ones.
* :class:`MBV3Network` — a standalone sub-network with plain eval-mode
  :class:`torch.nn.BatchNorm2d` layers, built from the same block modules the profiler times
  (:class:`ConvBNAct`, :class:`MBConv`, :class:`GlobalPool`, :class:`FeatureMix`,
  :class:`Classifier`); :meth:`SharedMBV3.extract` copies weights and recalibrated statistics
  into it, so that it computes exactly what the shared forward pass does.

Block (OFA's ``MBConvLayer`` in a ``ResidualBlock``): 1×1 expand conv → BN → act (absent when
the expand ratio is 1) → k×k depthwise conv (stride s, padding k//2) → BN → act → squeeze-excite
(optional: average pool → 1×1 conv with bias → ReLU → 1×1 conv with bias → h-sigmoid → scale) →
1×1 projection → BN, plus the input when stride is 1 and in = out channels. The squeeze-excite
width is ``make_divisible(mid // 4, 8)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-5
MAX_KERNEL = 7
SE_REDUCTION = 4
#: Largest input map (pixels) whose depthwise convs train as matrix products (:func:`depthwise_matmul`).
MATMUL_MAX_PIXELS = 256


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The nearest multiple of ``divisor`` to ``value`` that is ≥ 90% of it (TF/OFA MobileNet rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def se_channels(mid: int) -> int:
    """Width of the squeeze-excite bottleneck of a block with ``mid`` middle channels (OFA's rule)."""
    return make_divisible(mid // SE_REDUCTION, 8)


def out_size(size: int, stride: int) -> int:
    """Spatial size after a k×k conv with padding k//2 and ``stride`` (any odd k)."""
    return (size - 1) // stride + 1


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    return F.hardswish(x) if name == "hswish" else F.relu(x)


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: channels in/middle/out, kernel, stride, activation, squeeze-excite."""

    cin: int
    mid: int
    cout: int
    kernel: int
    stride: int
    act: str  # "relu" | "hswish"
    se: bool

    @property
    def skip(self) -> bool:
        """Identity shortcut: only when stride is 1 and in = out channels."""
        return self.stride == 1 and self.cin == self.cout

    @property
    def expand(self) -> bool:
        """Whether the block has its 1×1 expand conv (not at expand ratio 1, mid = in)."""
        return self.mid != self.cin


@dataclass(frozen=True)
class MBV3Arch:
    """Sizes of one (sub-)network.

    Attributes:
        in_channels, num_classes: image channels and classes.
        stem, stem_stride: stem width (= first block width) and stride.
        first: the fixed first block.
        blocks: ``(position, spec)`` of each active elastic block, position 0..19 in the store.
        final_expand, feature_mix: widths of the final 1×1 expand and the feature-mix layer.
    """

    in_channels: int
    num_classes: int
    stem: int
    stem_stride: int
    first: BlockSpec
    blocks: tuple[tuple[int, BlockSpec], ...]
    final_expand: int
    feature_mix: int

    @property
    def last(self) -> int:
        return self.blocks[-1][1].cout if self.blocks else self.first.cout


# ---------------------------------------------------------------------------------------------
# Standalone blocks (also what the profiler times)
# ---------------------------------------------------------------------------------------------
class ConvBNAct(nn.Module):
    """k×k conv (no bias, padding k//2) → BN → activation (the stem and the final expand)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _act(self.act, self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        r = se_channels(channels)
        self.reduce = nn.Conv2d(channels, r, 1, bias=True)
        self.expand = nn.Conv2d(r, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(y))))


class MBConv(nn.Module):
    """One MBConv block at fixed sizes (see the module doc)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        s = spec
        if s.expand:
            self.expand_conv = nn.Conv2d(s.cin, s.mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(s.mid, eps=BN_EPS)
        self.dw_conv = nn.Conv2d(s.mid, s.mid, s.kernel, s.stride, s.kernel // 2, groups=s.mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(s.mid, eps=BN_EPS)
        self.se = SqueezeExcite(s.mid) if s.se else None
        self.project_conv = nn.Conv2d(s.mid, s.cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(s.cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        y = _act(s.act, self.expand_bn(self.expand_conv(x))) if s.expand else x
        y = _act(s.act, self.dw_bn(self.dw_conv(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project_conv(y))
        return y + x if s.skip else y


class GlobalPool(nn.Module):
    """Global average pooling, keeping 1×1 spatial axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class FeatureMix(nn.Module):
    """1×1 conv without bias or BN → h-swish, on the pooled features."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(self.conv(x))


class Classifier(nn.Module):
    """Flatten [B, C, 1, 1] → linear → logits [B, classes]."""

    def __init__(self, cin: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


class MBV3Network(nn.Module):
    """A standalone sub-network: ``image`` [B, C, H, W] → ``logits`` [B, classes]."""

    def __init__(self, arch: MBV3Arch):
        super().__init__()
        self.arch = arch
        self.stem = ConvBNAct(arch.in_channels, arch.stem, 3, arch.stem_stride, "hswish")
        self.first = MBConv(arch.first)
        self.blocks = nn.ModuleList(MBConv(spec) for _, spec in arch.blocks)
        self.final_expand = ConvBNAct(arch.last, arch.final_expand, 1, 1, "hswish")
        self.pool = GlobalPool()
        self.feature_mix = FeatureMix(arch.final_expand, arch.feature_mix)
        self.classifier = Classifier(arch.feature_mix, arch.num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(image))
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.feature_mix(self.pool(self.final_expand(x))))


def init_weights(module: nn.Module, seed: int) -> None:
    """OFA's initialisation, seeded: convs He-normal (fan-out), BN 1/0, linear N(0, 0.01²), biases 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01, generator=gen)
                m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, _BNParams)):
                m.weight.fill_(1.0)
                m.bias.zero_()


# ---------------------------------------------------------------------------------------------
# The weight store, run sliced
# ---------------------------------------------------------------------------------------------
class _BNParams(nn.Module):
    """The affine parameters of a shared batch norm (statistics live per sub-network)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))


Stats = list[tuple[torch.Tensor, torch.Tensor]]


class Norm:
    """How :meth:`SharedMBV3.run` normalises: ``"batch"`` (training: the batch's statistics),
    ``"record"`` (recalibration: the batch's statistics, appended to ``stats`` in execution
    order), or ``"apply"`` (the recorded ``stats``, in the same order)."""

    def __init__(self, mode: str, stats: Stats | None = None):
        if mode not in ("batch", "record", "apply"):
            raise ValueError(f"unknown normalisation mode {mode!r}")
        self.mode = mode
        self.stats: Stats = [] if stats is None else stats
        self._next = 0

    def __call__(self, x: torch.Tensor, bn: _BNParams) -> torch.Tensor:
        c = x.shape[1]
        weight, bias = bn.weight[:c], bn.bias[:c]
        if self.mode == "batch":
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, BN_EPS)
        if self.mode == "record":
            # Biased variance, as batch norm normalises with (and OFA recalibrates with).
            var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
            self.stats.append((mean.detach(), var.detach()))
        else:
            mean, var = self.stats[self._next]
            self._next += 1
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, BN_EPS)


class _SharedBlock(nn.Module):
    """Weights of one elastic position at its largest sizes (kernel 7, the widest middle)."""

    def __init__(self, cin: int, mid: int, cout: int, se: bool):
        super().__init__()
        self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
        self.expand_bn = _BNParams(mid)
        self.dw_conv = nn.Conv2d(mid, mid, MAX_KERNEL, groups=mid, bias=False)
        self.dw_bn = _BNParams(mid)
        if se:
            r = se_channels(mid)
            self.se_reduce = nn.Conv2d(mid, r, 1, bias=True)
            self.se_expand = nn.Conv2d(r, mid, 1, bias=True)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.project_bn = _BNParams(cout)
        # OFA's kernel transform matrices (elastic kernel), one per step down, shared by channels.
        self.ks_transform_7to5 = nn.Parameter(torch.eye(25))
        self.ks_transform_5to3 = nn.Parameter(torch.eye(9))

    def depthwise_kernel(self, mid: int, kernel: int) -> torch.Tensor:
        """The depthwise weights [mid, 1, kernel, kernel] of a sub-network: the first ``mid``
        channels of the 7×7 kernel, stepped down to ``kernel`` by centre crops, each followed by
        the transform matrix of that step (OFA's elastic kernel)."""
        w = self.dw_conv.weight[:mid]
        for size, transform in ((5, self.ks_transform_7to5), (3, self.ks_transform_5to3)):
            if kernel > size:
                break
            w = (crop(w, size).reshape(mid, size * size) @ transform).view(mid, 1, size, size)
        return w


_DW_INDEX: dict[tuple[int, int, int, int], tuple[torch.Tensor, int, int]] = {}


def _dw_index(h: int, w: int, kernel: int, stride: int) -> tuple[torch.Tensor, int, int]:
    """For a k×k depthwise conv (padding k//2) on an h×w map: index [Ho·Wo, H·W] into the
    flattened kernel plus one zero slot (k²) that turns the conv into a per-channel matrix."""
    key = (h, w, kernel, stride)
    if key not in _DW_INDEX:
        pad = kernel // 2
        ho, wo = out_size(h, stride), out_size(w, stride)
        i, j = torch.arange(ho).view(-1, 1, 1, 1), torch.arange(wo).view(1, -1, 1, 1)
        u, v = torch.arange(h).view(1, 1, -1, 1), torch.arange(w).view(1, 1, 1, -1)
        du, dv = u - (i * stride - pad), v - (j * stride - pad)
        inside = (du >= 0) & (du < kernel) & (dv >= 0) & (dv < kernel)
        index = torch.where(inside, du * kernel + dv, torch.full_like(du, kernel * kernel))
        _DW_INDEX[key] = (index.reshape(ho * wo, h * w), ho, wo)
    return _DW_INDEX[key]


def depthwise_matmul(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=stride, padding=k//2, groups=C)`` as one batched matrix product
    per channel (the conv's Toeplitz matrix). On the small maps of ``mbv3-fmnist`` its backward
    pass is 3-10× faster on a CPU than the conv's (used for training; same values)."""
    b, c, h, w = x.shape
    k = weight.shape[-1]
    index, ho, wo = _dw_index(h, w, k, stride)
    flat = torch.cat([weight.reshape(c, k * k), weight.new_zeros(c, 1)], dim=1)
    matrix = flat[:, index]  # [C, P, Q]
    y = torch.bmm(x.reshape(b, c, h * w).transpose(0, 1), matrix.transpose(1, 2))  # [C, B, P]
    return y.transpose(0, 1).reshape(b, c, ho, wo)


def crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel``×``kernel`` of a square kernel tensor [..., K, K]."""
    off = (weight.shape[-1] - kernel) // 2
    return weight[..., off : off + kernel, off : off + kernel]


class SharedMBV3(nn.Module):
    """The weight store: stem, first block, ``positions`` elastic blocks at their largest, head."""

    def __init__(self, largest: MBV3Arch):
        super().__init__()
        a = largest
        self.largest = a
        self.stem_conv = nn.Conv2d(a.in_channels, a.stem, 3, a.stem_stride, 1, bias=False)
        self.stem_bn = _BNParams(a.stem)
        f = a.first
        self.first_dw = nn.Conv2d(f.mid, f.mid, f.kernel, 1, f.kernel // 2, groups=f.mid, bias=False)
        self.first_dw_bn = _BNParams(f.mid)
        self.first_project = nn.Conv2d(f.mid, f.cout, 1, bias=False)
        self.first_project_bn = _BNParams(f.cout)
        self.blocks = nn.ModuleList(_SharedBlock(s.cin, s.mid, s.cout, s.se) for _, s in a.blocks)
        self.final_conv = nn.Conv2d(a.last, a.final_expand, 1, bias=False)
        self.final_bn = _BNParams(a.final_expand)
        self.mix_conv = nn.Conv2d(a.final_expand, a.feature_mix, 1, bias=False)
        self.classifier = nn.Linear(a.feature_mix, a.num_classes)

    # -- sliced forward ------------------------------------------------------------------------
    def run(self, image: torch.Tensor, arch: MBV3Arch, norm: Norm) -> torch.Tensor:
        """Logits of ``arch`` with the shared weights, normalised by ``norm``."""
        x = _act("hswish", norm(F.conv2d(image, self.stem_conv.weight, None, arch.stem_stride, 1), self.stem_bn))
        f = arch.first
        y = F.relu(norm(F.conv2d(x, self.first_dw.weight, None, 1, f.kernel // 2, groups=f.mid), self.first_dw_bn))
        x = x + norm(F.conv2d(y, self.first_project.weight), self.first_project_bn)
        for pos, s in arch.blocks:
            b: _SharedBlock = self.blocks[pos]  # type: ignore[assignment]
            y = _act(s.act, norm(F.conv2d(x, b.expand_conv.weight[: s.mid]), b.expand_bn))
            w = b.depthwise_kernel(s.mid, s.kernel)
            if norm.mode == "batch" and y.shape[2] * y.shape[3] <= MATMUL_MAX_PIXELS:
                y = depthwise_matmul(y, w, s.stride)
            else:
                y = F.conv2d(y, w, None, s.stride, s.kernel // 2, groups=s.mid)
            y = _act(s.act, norm(y, b.dw_bn))
            if s.se:
                r = se_channels(s.mid)
                z = y.mean(dim=(2, 3), keepdim=True)
                z = F.relu(F.conv2d(z, b.se_reduce.weight[:r, : s.mid], b.se_reduce.bias[:r]))
                y = y * F.hardsigmoid(F.conv2d(z, b.se_expand.weight[: s.mid, :r], b.se_expand.bias[: s.mid]))
            y = norm(F.conv2d(y, b.project_conv.weight[:, : s.mid]), b.project_bn)
            x = y + x if s.skip else y
        x = F.hardswish(norm(F.conv2d(x, self.final_conv.weight), self.final_bn))
        x = F.hardswish(F.conv2d(x.mean(dim=(2, 3), keepdim=True), self.mix_conv.weight))
        return F.linear(torch.flatten(x, 1), self.classifier.weight, self.classifier.bias)

    # -- extraction ----------------------------------------------------------------------------
    def extract(self, arch: MBV3Arch, stats: Stats) -> MBV3Network:
        """A standalone copy of ``arch`` with sliced weights and the recorded BN ``stats``."""
        net = MBV3Network(arch)
        with torch.no_grad():
            net.stem.conv.weight.copy_(self.stem_conv.weight)
            _copy_bn(net.stem.bn, self.stem_bn)
            net.first.dw_conv.weight.copy_(self.first_dw.weight)
            _copy_bn(net.first.dw_bn, self.first_dw_bn)
            net.first.project_conv.weight.copy_(self.first_project.weight)
            _copy_bn(net.first.project_bn, self.first_project_bn)
            for block, (pos, s) in zip(net.blocks, arch.blocks):
                b: _SharedBlock = self.blocks[pos]  # type: ignore[assignment]
                block.expand_conv.weight.copy_(b.expand_conv.weight[: s.mid])
                _copy_bn(block.expand_bn, b.expand_bn)
                block.dw_conv.weight.copy_(b.depthwise_kernel(s.mid, s.kernel))
                _copy_bn(block.dw_bn, b.dw_bn)
                if s.se:
                    r = se_channels(s.mid)
                    block.se.reduce.weight.copy_(b.se_reduce.weight[:r, : s.mid])
                    block.se.reduce.bias.copy_(b.se_reduce.bias[:r])
                    block.se.expand.weight.copy_(b.se_expand.weight[: s.mid, :r])
                    block.se.expand.bias.copy_(b.se_expand.bias[: s.mid])
                block.project_conv.weight.copy_(b.project_conv.weight[:, : s.mid])
                _copy_bn(block.project_bn, b.project_bn)
            net.final_expand.conv.weight.copy_(self.final_conv.weight[:, : arch.last])
            _copy_bn(net.final_expand.bn, self.final_bn)
            net.feature_mix.conv.weight.copy_(self.mix_conv.weight)
            net.classifier.linear.weight.copy_(self.classifier.weight)
            net.classifier.linear.bias.copy_(self.classifier.bias)
            bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
            if len(bns) != len(stats):
                raise ValueError(f"{len(stats)} recorded statistics for {len(bns)} batch norms")
            for bn, (mean, var) in zip(bns, stats):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
        return net.eval()


def _copy_bn(dst: nn.BatchNorm2d, src: _BNParams) -> None:
    c = dst.num_features
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])


def block_module(kind: str, cin: int, cout: int, spec: BlockSpec | None = None, *, kernel: int = 1,
                 stride: int = 1) -> nn.Module:
    """A standalone block of ``kind`` (``stem``, ``mbconv``, ``final``, ``pool``, ``mix``, ``logits``)."""
    if kind == "stem":
        return ConvBNAct(cin, cout, kernel, stride, "hswish")
    if kind == "mbconv":
        assert spec is not None
        return MBConv(spec)
    if kind == "final":
        return ConvBNAct(cin, cout, 1, 1, "hswish")
    if kind == "pool":
        return GlobalPool()
    if kind == "mix":
        return FeatureMix(cin, cout)
    if kind == "logits":
        return Classifier(cin, cout)
    raise ValueError(f"unknown block kind {kind!r}")


__all__: Sequence[str] = (
    "BlockSpec", "Classifier", "ConvBNAct", "FeatureMix", "GlobalPool", "MBConv", "MBV3Arch", "MBV3Network",
    "Norm", "SharedMBV3", "SqueezeExcite", "block_module", "crop", "init_weights", "make_divisible",
    "out_size", "se_channels",
)
