import numpy as np
import pytest
import torch

from hwnas.errors import InputError

SPACES = ["bert-mini", "bert-linas", "bert-ose"]


def _torch(feeds):
    return tuple(torch.from_numpy(v) for v in feeds.values())


@pytest.mark.parametrize("name", SPACES)
def test_extracted_subnet_equals_weight_shared_forward(bert_nets, name):
    net = bert_nets(name)
    feeds = net.example_inputs({"batch": 2, "seq_len": 16}, seed=3)
    feeds["attention_mask"][1, 9:] = 0
    for config in net.space.sample(3, seed=11):
        sub = net.extract(config)
        with torch.no_grad():
            shared = net.forward(feeds, config)
            alone = sub(*_torch(feeds))
        assert shared.shape == (2, 2)
        assert float((shared - alone).abs().max()) <= 1e-5


@pytest.mark.parametrize("name", SPACES)
def test_analytic_params_equal_extracted_module(bert_nets, name):
    net = bert_nets(name)
    for config in net.space.sample(4, seed=5):
        sub = net.extract(config)
        assert net.count_params(config) == sum(p.numel() for p in sub.parameters())


def test_bert_base_parameter_count_within_one_percent_of_reference(bert_nets):
    net = bert_nets("bert-ose")
    params = net.count_params({"A": 12, "D": 12, "H": 768, "I": 3072})
    # reference BERT-base encoder with pooler: 109,482,240; ours adds a 2-way classifier (1,538)
    assert params == 109_482_240 + 768 * 2 + 2
    assert abs(params - 109.5e6) / 109.5e6 < 0.01


def test_macs_match_hand_count_and_scale_with_batch(bert_nets):
    net = bert_nets("bert-mini")
    config = {"D": 1, "A": [2], "I": [256]}
    s, h, inner, ffn = 32, 128, 64, 256
    expected = 4 * s * h * inner + 2 * s * s * inner + 2 * s * h * ffn + h * h + h * 2
    assert net.count_macs(config, {"batch": 1, "seq_len": s}) == expected
    assert net.count_macs(config, {"batch": 4, "seq_len": s}) == 4 * expected


def test_weight_sharing_is_real_slicing(bert_nets):
    net = bert_nets("bert-mini")
    sub = net.extract({"D": 1, "A": [1], "I": [128]})
    full = net.module()
    assert torch.equal(sub.layers[0].query.weight, full.layers[0].query.weight[:32, :128])
    assert torch.equal(sub.layers[0].ffn_in.weight, full.layers[0].ffn_in.weight[:128])


def test_block_enumeration_counts(bert_nets):
    shape = {"batch": 1, "seq_len": 8}
    counts = {}
    for name in SPACES:
        keys = bert_nets(name).all_blocks(shape)
        counts[name] = sum(k.startswith("layer/") for k in keys), len(keys)
    # bert-ose: (H, A) pairs with H % A == 0 are 3 + 4 + 3 = 10, times 5 FFN widths
    assert counts == {"bert-ose": (50, 56), "bert-linas": (12, 14), "bert-mini": (9, 11)}


def test_blocks_of_a_config_cover_every_layer(bert_nets):
    net = bert_nets("bert-linas")
    config = net.space.sample(1, seed=2)[0]
    keys = net.blocks(config, net.default_shape)
    assert len(keys) == config["D"] + 2
    assert set(keys) <= set(net.all_blocks(net.default_shape))
    assert keys[1] == f"layer/H=768/A={config['A'][0]}/dh=64/I={config['I'][0]}"


def test_build_block_runs_at_the_shape(bert_nets):
    net = bert_nets("bert-mini")
    shape = {"batch": 2, "seq_len": 16}
    for key in net.all_blocks(shape):
        block = net.build_block(key, shape)
        with torch.no_grad():
            out = block.module(*_torch(block.feeds))
        first = out[0] if isinstance(out, tuple) else out
        assert first.shape[0] == 2
    with pytest.raises(InputError, match="unknown block key"):
        net.build_block("layer/H=1", shape)


def test_shape_validation(bert_nets):
    net = bert_nets("bert-mini")
    assert net.resolve_shape({"seq_len": 16, "batch": None}) == {"batch": 1, "seq_len": 16}
    with pytest.raises(InputError, match=r"batch must be an integer in \[1, 65536\], got 0"):
        net.resolve_shape({"batch": 0})
    with pytest.raises(InputError, match="no shape setting 'resolution'"):
        net.resolve_shape({"resolution": 224})
    with pytest.raises(InputError, match="exceeds the 64 positions"):
        net.example_inputs({"batch": 1, "seq_len": 65})


def test_checkpoint_for_another_space_is_rejected(bert_nets):
    mini = bert_nets("bert-mini")
    linas_state = {k: v[..., :1] for k, v in list(bert_nets("bert-mini").module().state_dict().items())[:3]}
    with pytest.raises(InputError, match="does not fit space 'bert-mini'"):
        mini.load_state_dict(linas_state)
    assert np.isfinite(mini.count_params({"D": 1, "A": [1], "I": [128]}))


@pytest.mark.parametrize("space", ["bert-mini", "bert-linas"])
def test_brief_training_params_counts_the_network_that_is_trained(bert_nets, space):
    net = bert_nets(space)
    smallest = net.space.canonical(net.space.from_genes(np.zeros(net.space.n_genes, dtype=np.int64), validate=False))
    for config in [smallest, *net.space.sample(1, seed=1)]:
        built = net.brief_training_network(config, 0)
        assert net.brief_training_params(config) == sum(p.numel() for p in built.parameters())
