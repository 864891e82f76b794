"""The OFA MobileNetV3 supernet (``mbv3``, ``mbv3-fmnist``) and its Fashion-MNIST data.

Tests that need Fashion-MNIST do not skip when it is missing: they fail, naming how to install it
(``apt-get install dataset-fashion-mnist``, or the IDX files in ``$HWNAS_FASHION_MNIST``).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.errors import InputError
from hwnas.evaluation.training import largest_config, smallest_config
from hwnas.supernets import check_supernet
from hwnas.supernets.mbv3 import SPACES, fmnist, make_mbv3_supernet
from hwnas.supernets.mbv3.network import MBConv, crop, make_divisible
from hwnas.supernets.mbv3.supernet import block_macs, block_params

SMALL = {"batch": 2, "resolution": 32}  # mbv3 at a small resolution: fast, same code paths


@pytest.fixture(scope="module")
def mbv3():
    return make_mbv3_supernet("mbv3", checkpoint=None)


@pytest.fixture(scope="module")
def fm_seeded():
    """mbv3-fmnist with seeded weights (BN recalibrated on real images)."""
    return make_mbv3_supernet("mbv3-fmnist", checkpoint=None)


@pytest.fixture(scope="module")
def fm_trained():
    return make_mbv3_supernet("mbv3-fmnist")


def _torch(feeds):
    return tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())


def _config(net, ks=3, e=3, d=4, **overrides):
    config = {"ks": [ks] * 20, "e": [e] * 20, "d": [d] * 5}
    config.update(overrides)
    return net.space.canonical(config)


# -- the space -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mbv3", "mbv3-fmnist"])
def test_space_has_ofa_45_genes_in_order(name):
    space = make_mbv3_supernet(name, checkpoint=None).space
    assert space.n_genes == 45
    assert [(d.name, d.choices, d.n_genes) for d in space.dimensions] == [
        ("ks", (3, 5, 7), 20), ("e", (3, 4, 6), 20), ("d", (2, 3, 4), 5)]
    # Σ over stages of (9^2 + 9^3 + 9^4), to the fifth power
    assert space.count_valid() == (9**2 + 9**3 + 9**4) ** 5


def test_spaces_json_lists_both_with_45_genes():
    result = subprocess.run([sys.executable, "-m", "hwnas.cli", "spaces", "--json"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    spaces = {s["name"]: s for s in json.loads(result.stdout)["spaces"]}
    assert spaces["mbv3"]["genes"] == 45 and spaces["mbv3-fmnist"]["genes"] == 45


def test_inactive_blocks_canonicalise_to_the_first_choice(mbv3):
    space = mbv3.space
    a = {"ks": [7] * 20, "e": [6] * 20, "d": [2, 3, 4, 2, 2]}
    b = {"ks": [7, 7, 3, 5] + [7] * 16, "e": [6, 6, 4, 3] + [6] * 16, "d": [2, 3, 4, 2, 2]}
    ca = space.canonical(a)
    assert ca == space.canonical(b) and space.key(a) == space.key(b)
    assert ca["ks"][:4] == [7, 7, 3, 3] and ca["e"][:4] == [6, 6, 3, 3]  # stage 0: blocks 2, 3 off
    assert ca["ks"][4:8] == [7, 7, 7, 3]  # stage 1 runs 3 blocks
    genes = space.to_genes(b)
    assert genes[2] == genes[3] == genes[22] == genes[23] == 0
    assert space.from_genes(genes) == ca
    assert mbv3.count_params(a) == mbv3.count_params(b)
    assert mbv3.blocks(a, SMALL) == mbv3.blocks(b, SMALL)


# -- weight sharing ------------------------------------------------------------------------------------
def test_extraction_equals_shared_forward_with_kernel_cropping_and_depth(mbv3):
    feeds = mbv3.example_inputs(SMALL, seed=3)
    configs = [_config(mbv3, ks=3, e=3, d=2), _config(mbv3, ks=5, e=4, d=3), *mbv3.space.sample(2, seed=4)]
    store = mbv3.module()
    for config in configs:
        sub = mbv3.extract(config)
        with torch.no_grad():
            shared, alone = mbv3.forward(feeds, config), sub(*_torch(feeds))
        assert shared.shape == (2, 1000)
        assert float((shared - alone).abs().max()) <= 1e-4
        assert len(sub.blocks) == sum(config["d"])
        positions = [s * 4 + b for s in range(5) for b in range(config["d"][s])]
        for block, pos in zip(sub.blocks, positions):
            k, mid = config["ks"][pos], block.spec.mid
            assert block.dw_conv.kernel_size == (k, k)
            off = (7 - k) // 2
            want = store.blocks[pos].dw_conv.weight[:mid, :, off : off + k, off : off + k]
            assert torch.equal(block.dw_conv.weight, want)  # centre crop of the 7×7 kernel
            assert torch.equal(block.expand_conv.weight, store.blocks[pos].expand_conv.weight[:mid])
    assert torch.equal(crop(torch.arange(49.0).view(7, 7), 3), torch.tensor([[16.0, 17, 18], [23, 24, 25], [30, 31, 32]]))


def test_kernel_transform_matrices_map_each_centre_crop(fm_seeded):
    """OFA's elastic kernel: k5 = crop5(w7)·T75, k3 = crop3(k5)·T53, in the shared pass and the extract."""
    store = fm_seeded.module()
    gen = torch.Generator().manual_seed(7)
    saved = {n: p.detach().clone() for n, p in store.named_parameters() if "ks_transform" in n}
    try:
        with torch.no_grad():
            for block in store.blocks:
                block.ks_transform_7to5.add_(0.1 * torch.randn(25, 25, generator=gen))
                block.ks_transform_5to3.add_(0.1 * torch.randn(9, 9, generator=gen))
        fm_seeded.clear_bn_statistics()
        config = _config(fm_seeded, ks=3, e=4, d=3)
        config["ks"][1], config["ks"][4] = 5, 7
        sub = fm_seeded.extract(config)
        b0, w0 = store.blocks[0], store.blocks[0].dw_conv.weight
        mid = sub.blocks[0].spec.mid
        k5 = (crop(w0[:mid], 5).reshape(mid, 25) @ b0.ks_transform_7to5).view(mid, 1, 5, 5)
        k3 = (crop(k5, 3).reshape(mid, 9) @ b0.ks_transform_5to3).view(mid, 1, 3, 3)
        assert torch.allclose(sub.blocks[0].dw_conv.weight, k3)
        assert not torch.allclose(k3, crop(w0[:mid], 3))  # the transform is really applied
        assert torch.allclose(sub.blocks[1].dw_conv.weight, (crop(store.blocks[1].dw_conv.weight[:mid], 5)
                              .reshape(mid, 25) @ store.blocks[1].ks_transform_7to5).view(mid, 1, 5, 5))
        feeds = fm_seeded.example_inputs({"batch": 2, "resolution": 28}, seed=1)
        with torch.no_grad():
            shared, alone = fm_seeded.forward(feeds, config), sub(*_torch(feeds))
        assert float((shared - alone).abs().max()) <= 1e-4
    finally:
        with torch.no_grad():
            for n, p in store.named_parameters():
                if n in saved:
                    p.copy_(saved[n])
        fm_seeded.clear_bn_statistics()


def test_checkpoint_without_kernel_transforms_loads_as_plain_crops(fm_seeded):
    state = {k: v for k, v in fm_seeded.module().state_dict().items() if "ks_transform" not in k}
    other = make_mbv3_supernet("mbv3-fmnist", seed=0, checkpoint=None)
    other.load_state_dict(state)
    for block in other.module().blocks:
        assert torch.equal(block.ks_transform_7to5, torch.eye(25))
        assert torch.equal(block.ks_transform_5to3, torch.eye(9))


def test_skipped_blocks_really_are_skipped(mbv3):
    """Genes of inactive blocks change nothing: not the output, not the extracted module."""
    feeds = mbv3.example_inputs(SMALL, seed=5)
    a = {"ks": [5] * 20, "e": [4] * 20, "d": [2] * 5}
    b = {"ks": [5, 5, 7, 7] * 5, "e": [4, 4, 6, 6] * 5, "d": [2] * 5}
    with torch.no_grad():
        assert torch.equal(mbv3.forward(feeds, a), mbv3.forward(feeds, b))


@pytest.mark.parametrize("name,shape", [("mbv3", SMALL), ("mbv3-fmnist", {"batch": 2, "resolution": 28})])
def test_check_supernet(name, shape, mbv3, fm_seeded):
    net = mbv3 if name == "mbv3" else fm_seeded
    report = check_supernet(net, shape=shape, n_random=1, export_configs=[largest_config(net.space)])
    assert report["max_diff_extract"] <= 1e-4 and report["max_diff_onnx"] <= 1e-4


# -- counts ------------------------------------------------------------------------------------------------
def _hooked_macs(module: nn.Module, image: torch.Tensor) -> int:
    total = [0]

    def hook(m, inputs, output):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total[0] += output.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.Linear):
            total[0] += output.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(image)
    for h in handles:
        h.remove()
    return total[0]


@pytest.mark.parametrize("name", ["mbv3", "mbv3-fmnist"])
def test_params_and_macs_equal_the_extracted_module(name, mbv3, fm_seeded):
    net = mbv3 if name == "mbv3" else fm_seeded
    shape = {"batch": 3, "resolution": 32 if name == "mbv3" else 28}
    configs = [largest_config(net.space), smallest_config(net.space), *net.space.sample(3, seed=7)]
    genes = np.stack([net.space.to_genes(c) for c in configs])
    image = torch.from_numpy(net.example_inputs(shape)["image"])
    for config, vectorised in zip(configs, net.macs_matrix(genes, shape)):
        sub = net.extract(config)
        assert net.count_params(config) == sum(p.numel() for p in sub.parameters())
        macs = net.count_macs(config, shape)
        assert macs == _hooked_macs(sub, image) == vectorised
    assert np.array_equal(net.op_counts(genes, shape), 2.0 * net.macs_matrix(genes, shape))


def test_one_block_by_hand(mbv3):
    """Stage 2's first block of mbv3 at 224 (input 56×56×24 → 28×28×40, stride 2, ReLU, SE), k5 e4."""
    spec = mbv3.layout.spec(4, 5, 4)
    mid, r = 96, 24
    assert (spec.cin, spec.mid, spec.cout, spec.stride, spec.se, spec.act) == (24, mid, 40, 2, True, "relu")
    assert make_divisible(24 * 4) == mid and make_divisible(mid // 4) == r
    params = 24 * mid + 2 * mid + mid * 25 + 2 * mid + (mid * r + r + r * mid + mid) + mid * 40 + 2 * 40
    assert block_params(spec) == params == sum(p.numel() for p in MBConv(spec).parameters())
    macs = 56 * 56 * 24 * mid + 28 * 28 * mid * 25 + 2 * mid * r + 28 * 28 * mid * 40
    assert block_macs(spec, 56) == macs
    # In the whole network: changing only this block changes the counts by the difference.
    base = _config(mbv3, ks=3, e=3, d=4)
    changed = {**base, "ks": list(base["ks"]), "e": list(base["e"])}
    changed["ks"][4], changed["e"][4] = 5, 4
    shape = {"batch": 1, "resolution": 224}
    small = mbv3.layout.spec(4, 3, 3)
    assert mbv3.count_macs(changed, shape) - mbv3.count_macs(base, shape) == macs - block_macs(small, 56)
    assert mbv3.count_params(changed) - mbv3.count_params(base) == params - block_params(small)


def test_mbv3_sizes_at_224(mbv3):
    """Regression values of the largest mbv3 (k7, e6, d4 everywhere) at 224×224."""
    shape = {"batch": 1, "resolution": 224}
    largest, smallest = largest_config(mbv3.space), smallest_config(mbv3.space)
    assert mbv3.count_params(largest) == 7_664_760
    assert mbv3.count_macs(largest, shape) == 566_170_656
    assert mbv3.count_params(smallest) < mbv3.count_params(largest)


# -- blocks ------------------------------------------------------------------------------------------
KEY = re.compile(r"^expanded_conv-input:\d+x\d+x\d+-output:\d+x\d+x\d+-expand:\d+-kernel:[357]-stride:[12]"
                 r"-idskip:[01]-se:[01]-hs:[01]$")


def test_unique_blocks_keyed_as_ofa(mbv3):
    shape = {"batch": 1, "resolution": 224}
    keys = mbv3.all_blocks(shape)
    assert keys == sorted(set(keys))
    elastic = [k for k in keys if k.startswith("expanded_conv")]
    # per stage: its first block and its 3 identical later blocks, each at 3 kernels × 3 ratios; + the first block
    assert len(elastic) == 5 * 2 * 9 + 1 and all(KEY.match(k) for k in elastic)
    assert len(keys) == len(elastic) + 5
    assert "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0" in keys
    assert "expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0" in keys
    assert "expanded_conv-input:14x14x112-output:14x14x112-expand:672-kernel:7-stride:1-idskip:1-se:1-hs:1" in keys
    for fixed in ("Conv-input:224x224x3-output:112x112x16", "Conv_1-input:7x7x160-output:7x7x960",
                  "AvgPool2D-input:7x7x960-output:1x1x960", "Conv_2-input:1x1x960-output:1x1x1280",
                  "Logits-input:1x1x1280-output:1000"):
        assert fixed in keys
    config = mbv3.space.sample(1, seed=9)[0]
    blocks = mbv3.blocks(config, shape)
    assert len(blocks) == sum(config["d"]) + 6 and set(blocks) <= set(keys)


def test_block_counts_are_vectorised_blocks(mbv3):
    shape = {"batch": 1, "resolution": 64}
    keys = mbv3.all_blocks(shape)
    configs = mbv3.space.sample(50, seed=2)
    genes = np.stack([mbv3.space.to_genes(c) for c in configs])
    counts = mbv3.block_counts(genes, keys, shape)
    for row, config in enumerate(configs):
        want = np.zeros(len(keys))
        for k in mbv3.blocks(config, shape):
            want[keys.index(k)] += 1
        assert np.array_equal(counts[row], want)
    with pytest.raises(InputError, match="not in the profile"):
        mbv3.block_counts(genes, keys[1:], shape)
    assert np.array_equal(mbv3.feature_matrix(genes)[3], mbv3.features(configs[3]))


def test_build_block_runs_at_the_shape(mbv3):
    shape = {"batch": 2, "resolution": 64}
    for key in mbv3.all_blocks(shape)[:: 7]:
        built = mbv3.build_block(key, shape)
        with torch.no_grad():
            out = built.module(*_torch(built.feeds))
        dims = [int(v) for v in re.search(r"-output:([\dx]+)", key).group(1).split("x")]
        want = (2, dims[-1]) if key.startswith("Logits") else (2, dims[2], dims[0], dims[1])
        assert tuple(out.shape) == want, key
        assert all(axes == {0: "batch"} for axes in built.dynamic_axes.values())
    with pytest.raises(InputError, match="unknown block key"):
        mbv3.build_block("layer/H=128", shape)


# -- BN recalibration -----------------------------------------------------------------------------------
def test_bn_recalibration_is_deterministic_and_per_subnetwork(fm_seeded):
    config = fm_seeded.space.sample(1, seed=12)[0]
    again = make_mbv3_supernet("mbv3-fmnist", checkpoint=None)
    a, b = fm_seeded.bn_statistics(config), again.bn_statistics(config)
    assert len(a) == len(b) == len(fm_seeded.bn_statistics(config))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert fm_seeded.bn_statistics(config) is a  # cached by configuration key
    # the stem's statistics are those of the stem conv over the fixed calibration images
    images = fm_seeded.calibration_batch()
    assert images.shape == (500, 1, 28, 28)
    store = fm_seeded.module()
    with torch.no_grad():
        stem = torch.nn.functional.conv2d(images, store.stem_conv.weight, None, 2, 1)
    assert torch.allclose(a[0][0], stem.mean(dim=(0, 2, 3)), atol=1e-5)
    # a different sub-network gets different statistics after its first changed layer
    other = fm_seeded.bn_statistics(smallest_config(fm_seeded.space))
    assert torch.equal(other[0][0], a[0][0]) and not all(torch.equal(x[0], y[0]) for x, y in zip(a, other))
    # forward (eval mode) uses them: equal to the extracted module, whose BN holds them
    sub = fm_seeded.extract(config)
    bns = [m for m in sub.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(bn.running_mean, s[0]) for bn, s in zip(bns, a))


def test_mbv3_has_no_accuracy_objective(mbv3):
    with pytest.raises(InputError, match="ImageNet"):
        mbv3.accuracy_task()
    assert mbv3.task() is None


# -- Fashion-MNIST ------------------------------------------------------------------------------------
def test_fashion_mnist_splits():
    task = fmnist.fashion_mnist_task()
    assert (len(task.train), len(task.validation), len(task.test)) == (55_000, 5_000, 10_000)
    assert task.num_classes == 10 and task.name == "fashion-mnist"
    feeds = task.validation.feeds(np.arange(4))
    assert feeds["image"].dtype == np.float32 and feeds["image"].shape == (4, 1, 28, 28)
    assert 0.0 <= feeds["image"].min() and feeds["image"].max() <= 1.0
    assert task.test.labels.dtype == np.int64 and set(np.unique(task.test.labels)) == set(range(10))
    again = fmnist.fashion_mnist_task()
    assert np.array_equal(again.validation.labels, task.validation.labels)  # seeded split
    assert not np.array_equal(fmnist.fashion_mnist_task(seed=1).validation.labels, task.validation.labels)


def test_missing_data_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv(fmnist.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(InputError) as info:
        fmnist.load_fashion_mnist()
    text = str(info.value)
    assert str(tmp_path / "nowhere") in text and str(tmp_path / "debian") in text
    assert "apt-get install dataset-fashion-mnist" in text and fmnist.ENV_VAR in text
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(InputError, match="lacks train-images-idx3-ubyte"):
        fmnist.find_files(tmp_path / "half")


def _copy_real(dst):
    dst.mkdir()
    for path in fmnist.find_files().values():
        shutil.copy(path, dst / path.name)
    return dst


@pytest.mark.parametrize("damage", ["truncated-gzip", "bad-header", "wrong-size"])
def test_corrupt_file_is_an_input_error_naming_it(tmp_path, monkeypatch, damage):
    data = _copy_real(tmp_path / "data")
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path / "debian")
    target = next(data.glob("t10k-labels-idx1-ubyte*"))
    raw = gzip.decompress(target.read_bytes()) if target.suffix == ".gz" else target.read_bytes()
    target.unlink()
    if damage == "truncated-gzip":
        target = data / "t10k-labels-idx1-ubyte.gz"
        target.write_bytes(gzip.compress(raw)[:100])
    elif damage == "bad-header":
        target = data / "t10k-labels-idx1-ubyte"
        target.write_bytes(b"\x00\x00\x0d\x01" + raw[4:])
    else:
        target = data / "t10k-labels-idx1-ubyte"
        target.write_bytes(raw[:-10])
    with pytest.raises(InputError) as info:
        fmnist.load_fashion_mnist(data)
    assert str(target) in str(info.value) and "corrupt" in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_plain_idx_files_read_like_gzipped(tmp_path):
    data = tmp_path / "plain"
    data.mkdir()
    for path in fmnist.find_files().values():
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        (data / path.name.removesuffix(".gz")).write_bytes(raw)
    ours, ref = fmnist.load_fashion_mnist(data), fmnist.load_fashion_mnist()
    assert all(np.array_equal(ours[k], ref[k]) for k in ref)


# -- the shipped checkpoint -------------------------------------------------------------------------------
def test_shipped_checkpoint_largest_subnetwork_accuracy(fm_trained):
    task = fm_trained.accuracy_task()
    assert fm_trained.checkpoint_meta is not None and fm_trained.checkpoint_meta["seed"] == 0
    rows = np.arange(1000)
    feeds, labels = task.validation.feeds(rows), task.validation.labels[rows]
    with torch.inference_mode():
        largest = fm_trained.forward(feeds, largest_config(fm_trained.space)).argmax(-1).numpy()
        smallest = fm_trained.forward(feeds, smallest_config(fm_trained.space)).argmax(-1).numpy()
    assert (largest == labels).mean() >= 0.85
    assert (smallest == labels).mean() >= 0.6


def test_blocks_export_to_onnx_and_match(mbv3):
    """Blocks as the profiler exports them (SE, h-swish, pooling, logits) run in ONNX Runtime."""
    import onnxruntime as ort

    from hwnas.onnx_export import export_onnx

    shape = {"batch": 2, "resolution": 32}
    keys = [k for k in mbv3.all_blocks(shape) if "se:1-hs:1" in k][:1]
    keys += [k for k in mbv3.all_blocks(shape) if not k.startswith("expanded_conv")]
    for key in keys:
        built = mbv3.build_block(key, shape)
        model = export_onnx(built.module, built.feeds, built.output_names, dynamic_axes=built.dynamic_axes)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, built.feeds)[0]
        with torch.no_grad():
            want = built.module(*_torch(built.feeds)).numpy()
        assert np.abs(got - want).max() <= 1e-4, key


def test_largest_only_phase_trains_the_largest_and_leaves_the_kernel_transforms():
    # OFA's first phase: only the largest sub-network (7x7 kernels) runs, so the 7->5 and 5->3
    # transform matrices, used only by smaller kernels, get no gradient and stay the identity.
    from hwnas.evaluation.training import TrainingSettings, train_supernet

    net = make_mbv3_supernet("mbv3-fmnist", checkpoint=None)
    before = {k: v.clone() for k, v in net.module().state_dict().items()}
    stats = train_supernet(net, net.task(), TrainingSettings(steps=2, batch=16, lr=1e-2, largest_only=True))
    after = net.module().state_dict()
    transforms = [k for k in after if "ks_transform" in k]
    assert transforms and all(torch.equal(before[k], after[k]) for k in transforms)
    assert not torch.equal(before["stem_conv.weight"], after["stem_conv.weight"])
    assert np.isfinite(stats["train_loss_largest"]) and np.isnan(stats["train_loss_smallest"])


def test_subspace_sampler_varies_only_the_elastic_dimensions():
    # Progressive shrinking's phases: 'ks' varies kernels at full expand and depth; 'ks,d' adds depth.
    from hwnas.evaluation.training import SubspaceSampler, largest_config

    space = SPACES["mbv3-fmnist"]
    largest = largest_config(space)
    rng = np.random.default_rng(0)
    kernels = SubspaceSampler(space, ("ks",))
    assert kernels.smallest() == {"ks": [3] * 20, "e": [6] * 20, "d": [4] * 5}
    drawn = kernels.sample(20, rng)
    assert all(c["e"] == largest["e"] and c["d"] == largest["d"] for c in drawn)
    assert len({tuple(c["ks"]) for c in drawn}) == 20
    depths = SubspaceSampler(space, ("ks", "d")).sample(40, rng)
    assert len({tuple(c["d"]) for c in depths}) > 1
    for c in depths:  # active blocks at expand 6; inactive ones canonical (first choice)
        active = [b for s, d in enumerate(c["d"]) for b in range(4 * s, 4 * s + d)]
        assert all(c["e"][b] == 6 for b in active) and c == space.canonical(c)
        assert all(c["e"][b] == 3 and c["ks"][b] == 3 for b in range(20) if b not in active)
    everything = SubspaceSampler(space, ())
    assert everything.smallest() == smallest_config(space)
    with pytest.raises(InputError, match="'kernel'"):
        SubspaceSampler(space, ("kernel",))


def test_kernel_phase_trains_the_kernel_transforms():
    # With only 'ks' elastic every sub-network runs at expand 6 and depth 4, so the kernel
    # transform matrices (used by 5x5 and 3x3 kernels) learn; a largest-only phase leaves them.
    from hwnas.evaluation.training import TrainingSettings, train_supernet

    net = make_mbv3_supernet("mbv3-fmnist", checkpoint=None)
    before = {k: v.clone() for k, v in net.module().state_dict().items()}
    settings = TrainingSettings(steps=2, batch=16, lr=1e-2, elastic="ks", n_random=1)
    assert settings.elastic == ("ks",)
    stats = train_supernet(net, net.task(), settings)
    after = net.module().state_dict()
    transforms = [k for k in after if "ks_transform" in k]
    assert transforms and all(not torch.equal(before[k], after[k]) for k in transforms)
    assert np.isfinite(stats["train_loss_smallest"])
    with pytest.raises(InputError, match="elastic"):
        TrainingSettings(elastic=3)
