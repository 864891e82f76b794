"""The pretrained-checkpoint supernet on the real all-MiniLM-L6-v2 and MR (fetched by the README's
test command with ``hwnas fetch minilm-mr``): loader and its errors, importance reordering,
extraction, the protocol, reference parity with ``transformers``, the exported encoder with its
tokenizer, and OSE on the -ose space with pretrained brief training."""

from __future__ import annotations

import json
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas.errors import InputError
from hwnas.supernets import check_supernet
from hwnas.supernets.minilm import MINILM_CONFIG, ProbeSettings, fetch, hf, make_minilm_supernets, mr
from hwnas.supernets.minilm.fast import SentenceBatches
from hwnas.supernets.minilm.importance import apply_order, check_order
from hwnas.supernets.minilm.network import EncoderStore, mean_pool
from hwnas.supernets.minilm.probe import fit_probe

#: Small slices of MR so that each probe fit embeds ~100 sentences.
SMALL = ProbeSettings(probe_train=48, validation=48, fidelity=16, test=32)
SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish , and the script assumes that not only "
    "would subtlety be lost on the target audience , but that it's also too stupid to realize that they've "
    "already seen this exact same movie a hundred times",
    "effective but too tepid biopic",
]


@pytest.fixture(scope="module")
def nets():
    fetch.require()  # fails naming `hwnas fetch minilm-mr` on a machine without the files
    return {n.name: n for n in make_minilm_supernets(SMALL)}


@pytest.fixture(scope="module")
def tokenizer():
    return mr.load_tokenizer(fetch.model_dir() / hf.TOKENIZER_FILE)


def _feeds(tokenizer, texts):
    ids, mask = mr.encode(tokenizer, texts)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _raw_store() -> EncoderStore:
    store = EncoderStore(MINILM_CONFIG)
    store.load_state_dict(hf.read_weights(fetch.model_dir(), MINILM_CONFIG))
    return store.eval()


# -- loader -------------------------------------------------------------------------------------
def test_key_mapping_of_both_layouts():
    assert hf.map_key("encoder.layer.3.attention.self.query.weight") == "layers.3.query.weight"
    assert hf.map_key("bert.encoder.layer.0.output.LayerNorm.gamma") == "layers.0.ffn_norm.weight"
    assert hf.map_key("bert.encoder.layer.0.attention.output.LayerNorm.beta") == "layers.0.attn_norm.bias"
    assert hf.map_key("embeddings.word_embeddings.weight") == "embeddings.word.weight"
    assert hf.map_key("bert.embeddings.LayerNorm.weight") == "embeddings.norm.weight"
    assert hf.map_key("intermediate.dense.weight".join(["encoder.layer.5.", ""])) == "layers.5.ffn_in.weight"
    for ignored in ("pooler.dense.weight", "embeddings.position_ids", "cls.predictions.bias", "classifier.weight"):
        assert hf.map_key(ignored) is None
    with pytest.raises(InputError, match="unexpected key 'encoder.layer.0.crossattention.self.query.weight'"):
        hf.map_key("encoder.layer.0.crossattention.self.query.weight")


def test_prefixed_checkpoint_loads_the_same_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(fetch.model_dir() / hf.WEIGHTS_FILE))
    prefixed = {f"bert.{k}": v for k, v in tensors.items() if k != "embeddings.position_ids"}
    prefixed["classifier.weight"] = torch.zeros(2, 384)
    save_file(prefixed, str(tmp_path / hf.WEIGHTS_FILE))
    (tmp_path / hf.CONFIG_FILE).write_text((fetch.model_dir() / hf.CONFIG_FILE).read_text())
    config = hf.read_config(tmp_path)
    assert config == MINILM_CONFIG
    ours, theirs = hf.read_weights(tmp_path, config), hf.read_weights(fetch.model_dir(), config)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_loader_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(InputError, match="has no config.json"):
        hf.read_config(tmp_path)
    base = json.loads((fetch.model_dir() / hf.CONFIG_FILE).read_text())
    for change, message in (({"model_type": "roberta"}, "unsupported architecture model_type='roberta'"),
                            ({"hidden_act": "relu"}, "unsupported hidden_act='relu'"),
                            ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
                            ({"num_attention_heads": 5}, "not divisible"),
                            ({"hidden_size": 0}, "hidden_size must be a positive integer")):
        with pytest.raises(InputError, match=message):
            hf.parse_config({**base, **change})
    (tmp_path / hf.CONFIG_FILE).write_text(json.dumps(base))
    with pytest.raises(InputError, match="has no model.safetensors"):
        hf.read_weights(tmp_path, MINILM_CONFIG)
    good = {"embeddings.word_embeddings.weight": torch.zeros(30522, 384)}
    with pytest.raises(InputError, match="no tensor for 'embeddings.position.weight'"):
        hf.convert_state(good, MINILM_CONFIG)
    with pytest.raises(InputError, match=r"has shape \(10, 384\)"):
        hf.convert_state({"embeddings.word_embeddings.weight": torch.zeros(10, 384)}, MINILM_CONFIG)
    with pytest.raises(InputError, match="beyond config.json's sizes"):
        hf.convert_state({"encoder.layer.6.output.dense.bias": torch.zeros(384)}, MINILM_CONFIG)
    with pytest.raises(InputError, match="appears twice"):
        hf.convert_state({"embeddings.LayerNorm.weight": torch.ones(384),
                          "bert.embeddings.LayerNorm.weight": torch.ones(384)}, MINILM_CONFIG)
    (tmp_path / hf.WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a readable safetensors file"):
        hf.read_weights(tmp_path, MINILM_CONFIG)


def test_mr_counts_and_fixed_disjoint_splits():
    data = mr.read_mr(fetch.mr_file())
    assert len(data.labels) == 10_568 and int(data.labels.sum()) == 5_242
    rows = mr.split_rows(len(data.labels))
    assert [len(rows[k]) for k in ("test", "validation", "train")] == [2_000, 1_000, 7_568]
    assert len(np.unique(np.concatenate(list(rows.values())))) == 10_568
    np.testing.assert_array_equal(mr.split_rows(len(data.labels))["test"], rows["test"])
    # both classes in every split (the file is ordered by polarity; the shuffle mixes it)
    for r in rows.values():
        assert 0.4 < data.labels[r].mean() < 0.6


# -- importance order ----------------------------------------------------------------------------
def test_reordering_keeps_the_full_models_outputs(nets, tokenizer):
    net = nets["minilm-mr"]
    ordered, raw = net.module(), _raw_store()
    order = json.loads((fetch.model_dir() / "hwnas-importance.json").read_text())["order"]
    order = check_order(order, 6, 12, 1536, "order")
    assert any(p != sorted(p) for p in order["heads"]) and any(p != sorted(p) for p in order["ffn"])
    assert not torch.equal(ordered.layers[0].query.weight, raw.layers[0].query.weight)
    feeds = {k: torch.as_tensor(v) for k, v in _feeds(tokenizer, SENTENCES).items()}
    full = tuple(layer.spec for layer in raw.layers)
    with torch.no_grad():
        a = ordered.hidden_states(*feeds.values(), specs=full)
        b = raw.hidden_states(*feeds.values(), specs=full)
    mask = feeds["attention_mask"].bool()
    assert float((a - b)[mask].abs().max()) < 1e-4
    # Applying the order to the raw weights gives the ordered weights exactly.
    apply_order(raw, order)
    assert all(torch.equal(x, y) for x, y in zip(raw.state_dict().values(), ordered.state_dict().values()))


def test_first_heads_are_the_important_ones(nets, tokenizer):
    """Keeping the 3 most important heads per layer is closer to the full model than keeping the 3 least."""
    net = nets["minilm-mr"]
    store = net.module()
    feeds = {k: torch.as_tensor(v) for k, v in _feeds(tokenizer, SENTENCES).items()}
    spec_full = tuple(layer.spec for layer in store.layers)
    with torch.no_grad():
        reference = mean_pool(store.hidden_states(*feeds.values(), specs=spec_full), feeds["attention_mask"])
        first = mean_pool(net.encoder({"D": 6, "A": [3] * 6, "I": [1536] * 6}).encode(*feeds.values()),
                          feeds["attention_mask"])
        reverse = {"heads": [list(range(11, -1, -1))] * 6, "ffn": [list(range(1536))] * 6}
        flipped = _raw_store()
        flipped.load_state_dict(store.state_dict())
        apply_order(flipped, reverse)
        last = mean_pool(flipped.hidden_states(*feeds.values(), specs=tuple(
            type(s)(3, s.head_dim, s.ffn) for s in spec_full)), feeds["attention_mask"])
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(first, reference).mean()) > float(cos(last, reference).mean())


# -- the protocol, objectives --------------------------------------------------------------------
@pytest.mark.parametrize("space", ["minilm-mr", "minilm-mr-ose"])
def test_check_supernet(nets, space):
    result = check_supernet(nets[space], shape={"batch": 1, "seq_len": 12}, n_random=1)
    assert result["max_diff_extract"] <= 1e-4 and result["max_diff_onnx"] <= 1e-4


def test_objectives_without_training(nets):
    net = nets["minilm-mr-ose"]
    full, small = net.full_config(), {"A": 4, "D": 2, "I": 384}
    acc = net.evaluate([full, small])
    fid = net.fidelity([full, small])
    assert fid[0] == pytest.approx(1.0, abs=1e-5)  # the full model against itself
    assert 0.0 < fid[1] < 0.99
    assert np.all((acc > 0.5) & (acc <= 1.0))
    test = net.test_evaluate([full])
    assert 0.5 < test[0] <= 1.0


def test_objectives_are_deterministic_across_supernet_instances():
    """A fresh supernet (new batches, new fast weights) gives bit-identical objectives."""
    config = {"D": 4, "A": [12, 3, 9, 6], "I": [384, 1536, 768, 1152]}
    first, second = (make_minilm_supernets(SMALL)[0] for _ in range(2))
    assert first.evaluate([config])[0] == second.evaluate([config])[0]
    assert first.fidelity([config])[0] == second.fidelity([config])[0]


@pytest.mark.parametrize("config", [None, {"D": 4, "A": [12, 3, 9, 6], "I": [384, 1536, 768, 1152]},
                                    {"D": 1, "A": [3], "I": [384]}])
def test_fast_embeddings_match_the_extracted_encoder(nets, config):
    """What the objectives embed with (shared weights, fused QKV, SDPA, small batches) is what the
    extracted sub-network — the exported model — computes, row by row."""
    net = nets["minilm-mr"]
    config = config or net.full_config()
    split = net.task().validation
    fast = net.sentence_embeddings(config, "validation", 40)
    extracted = net.embed(net.encoder(config), split, 40)
    assert fast.shape == extracted.shape == (40, 384)
    assert np.max(np.abs(fast - extracted)) < 1e-4
    cosine = np.sum(fast * extracted, axis=1) / np.linalg.norm(fast, axis=1) / np.linalg.norm(extracted, axis=1)
    assert cosine.min() > 0.99999


def test_sentence_batches_cover_each_sentence_once_sorted_and_trimmed(nets):
    split = nets["minilm-mr"].task().train
    batches = SentenceBatches.of(split, 300, tokens=256)
    rows = np.concatenate(batches.rows)
    assert batches.count == 300 and sorted(rows.tolist()) == list(range(300))
    lengths = split.attention_mask[:300].sum(axis=1)
    assert np.all(np.diff(lengths[rows]) >= 0)  # shortest first
    for (ids, mask, types), part in zip(batches.batches, batches.rows):
        assert ids.shape == mask.shape == types.shape and ids.shape[1] == lengths[part].max()
        assert ids.numel() <= 256 or len(part) == 1
        np.testing.assert_array_equal(ids.numpy(), split.input_ids[part, : ids.shape[1]])
    assert len(batches.batches) > 1


def test_newton_probe_is_scikit_learns_optimum(nets):
    """The exact probe finds the minimiser scikit-learn's L-BFGS approaches (run here to a tight
    tolerance), folded into logits the same way."""
    from sklearn.linear_model import LogisticRegression

    net = nets["minilm-mr"]
    config = {"D": 2, "A": [6, 12], "I": [768, 384]}
    x = net.sentence_embeddings(config, "train", 96).astype(np.float64)
    y = net.task().train.labels[:96]
    weight, bias = fit_probe(x, y, c=0.5)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=100_000).fit((x - mean) / std, y)
    decision = model.decision_function((x - mean) / std)
    ours = x @ weight.T.astype(np.float64) + bias
    np.testing.assert_allclose(ours[:, 1] - ours[:, 0], decision, rtol=1e-4, atol=1e-4)
    lbfgs_weight, _ = fit_probe(x, y, c=0.5, solver="lbfgs")
    assert np.max(np.abs(lbfgs_weight - weight)) < 0.05 * np.max(np.abs(weight))
    with pytest.raises(ValueError, match="'sgd'"):
        fit_probe(x, y, solver="sgd")


# -- reference parity with transformers ---------------------------------------------------------
def test_full_export_matches_transformers_bert_model(nets, tokenizer, tmp_path):
    transformers = pytest.importorskip("transformers")  # the test extra installs it
    from hwnas.onnx_export import export_onnx

    net = nets["minilm-mr"]
    reference = transformers.BertModel.from_pretrained(str(fetch.model_dir()), local_files_only=True).eval()
    data = mr.read_mr(fetch.mr_file())
    texts = list(data.texts[:6]) + SENTENCES
    feeds = _feeds(tokenizer, texts)
    model = export_onnx(net.encoder(net.full_config()), net.example_inputs({"batch": 1, "seq_len": 16}),
                        net.output_names, dynamic_axes=net.dynamic_axes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = session.run(["last_hidden_state"], feeds)[0]
    with torch.no_grad():
        theirs = reference(**{k: torch.as_tensor(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    mask = feeds["attention_mask"].astype(bool)
    assert np.max(np.abs(ours - theirs)[mask]) <= 1e-4
    pooled = [mean_pool(torch.as_tensor(x), torch.as_tensor(feeds["attention_mask"])).numpy() for x in (ours, theirs)]
    cosine = np.sum(pooled[0] * pooled[1], axis=1) / np.linalg.norm(pooled[0], axis=1) / np.linalg.norm(pooled[1], axis=1)
    assert cosine.min() >= 0.9999


# -- export with the tokenizer -------------------------------------------------------------------
def test_exported_encoder_and_tokenizer_round_trip(nets, tmp_path):
    from tokenizers import Tokenizer

    from hwnas.deploy.pipeline import export_configs

    net = nets["minilm-mr"]
    config = {"D": 3, "A": [12, 6, 3], "I": [768, 384, 1536]}
    manifest = export_configs(net, [config], tmp_path / "out", shape={"batch": 1, "seq_len": 16})
    assert manifest["files"] == ["tokenizer.json"]
    model = manifest["models"][0]
    assert model["params"] == model["onnx_params"] and model["parity_max_abs_diff"] <= 1e-4
    # raw text → prediction with tokenizers and onnxruntime only (what the README shows)
    tokenizer = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    session = ort.InferenceSession(str(tmp_path / "out" / model["file"]))
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state", "logits"]
    for text in SENTENCES:
        encoding = tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        hidden, logits = session.run(None, feeds)
        assert hidden.shape == (1, ids.shape[1], 384) and logits.shape == (1, 2)
        with torch.no_grad():
            want_hidden, want_logits = net.forward(feeds, config)
        np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-4)
        np.testing.assert_allclose(hidden, want_hidden.numpy(), atol=1e-4)


def test_export_scores_the_onnx_files_fp32_and_int8_on_the_test_sentences(nets, tmp_path):
    # minilm-mr scores with its own evaluate() (no weight-sharing task): the exported files are
    # run over deployment_test_split(), the sentences test_evaluate scores, INT8 included.
    from hwnas.deploy.accuracy import accuracy_source
    from hwnas.deploy.measure import measurement_for
    from hwnas.deploy.pipeline import deploy

    net = nets["minilm-mr"]
    split = net.deployment_test_split()
    assert len(split) == SMALL.test and set(net.input_names) <= set(split.feeds(np.arange(1)))
    config = {"D": 1, "A": [6], "I": [384]}
    manifest = deploy(net, [{"config": config}], tmp_path / "models", measurement=measurement_for(net, []),
                      accuracy=accuracy_source(net), int8=True)
    (model,) = manifest["models"]
    assert manifest["accuracy"]["method"].startswith("onnxruntime") and manifest["accuracy"]["examples"] == SMALL.test
    assert model["test_accuracy"] == pytest.approx(model["evaluator_test_accuracy"], abs=1 / SMALL.test + 1e-9)
    assert model["evaluator_test_accuracy"] == pytest.approx(net.test_evaluate([config])[0])
    assert 0.0 <= model["int8"]["test_accuracy"] <= 1.0
    assert model["int8"]["test_agreement_with_fp32"] >= 0.8


# -- OSE on the pretrained space -----------------------------------------------------------------
def test_brief_training_starts_from_pretrained_weights(nets):
    net = nets["minilm-mr-ose"]
    config = {"A": 8, "D": 2, "I": 768}
    trainable = net.brief_training_network(config, seed=0)
    extracted = net.extract(config)
    assert torch.equal(trainable.encoder.layers[1].ffn_in.weight, extracted.layers[1].ffn_in.weight)
    assert not torch.equal(trainable.encoder.probe.classifier.weight, extracted.probe.classifier.weight)


def test_ose_on_the_pretrained_space(nets, tmp_path):
    from hwnas.search.driver import SearchRequest, execute, prepare

    net = nets["minilm-mr-ose"]
    small = {"A": 4, "D": 2, "I": 384}  # the cost estimate counts the network brief training builds
    assert net.brief_training_params(small) == sum(p.numel() for p in net.brief_training_network(small, 0).parameters())
    theta = [{"steps": 2, "batch": 8, "lr": 1e-4, "seed": 0}]
    request = SearchRequest(space="minilm-mr-ose", algo="ose", objectives="params,macs,loss", evals=2,
                            out=tmp_path / "run", settings={"epsilon": 0.5}, loss_settings=theta, supernet=net)
    result = execute(prepare(request))
    assert result.status == "complete"
    rows = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    losses = [r["objectives"]["loss"] for r in rows]
    assert len(losses) == 2 and len(set(losses)) == 2
    # From pretrained weights and a fresh head ê stays near chance after 2 steps, but is finite and sane.
    assert all(0.0 < v < 2 * math.log(2) for v in losses)


def test_readme_onnx_snippet_runs_as_written(nets, tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    from hwnas.deploy.pipeline import export_configs

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    match = re.search(r"<!-- minilm-onnx -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README has no python block after <!-- minilm-onnx -->"
    net = nets["minilm-mr"]
    config = {"D": 3, "A": [12, 6, 3], "I": [768, 384, 1536]}
    export_configs(net, [config], tmp_path / "models", shape={"batch": 1, "seq_len": 16})
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(match.group(1), "README.md:minilm-onnx", "exec"), scope)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[1] for line in lines] == scope["texts"]
    # the snippet's padded batch gives what the supernet computes for each sentence alone
    tokenizer = mr.load_tokenizer(fetch.model_dir() / hf.TOKENIZER_FILE)
    for text, line, row in zip(scope["texts"], lines, scope["logits"]):
        with torch.no_grad():
            _, want = net.forward(_feeds(tokenizer, [text]), config)
        np.testing.assert_allclose(row, want.numpy()[0], atol=1e-4)
        assert line.split(" | ")[0] == ("positive" if want[0, 1] > want[0, 0] else "negative")


# -- the command line ----------------------------------------------------------------------------
def _cli(*args, env=None):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": str(repo), **(env or {})}
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], cwd=repo, capture_output=True, text=True,
                          timeout=300, env=environment)


def test_fetch_is_idempotent_and_checks_hashes():
    fetch.require()
    proc = _cli("fetch", "minilm-mr", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["fetched"] == [] and len(summary["present"]) == 4 and "nothing to fetch" in proc.stderr
    assert _cli("fetch", "bert-large").stderr.strip() == \
        "hwnas: error: nothing to fetch named 'bert-large' (known: minilm-mr)"


def test_missing_files_exit_2_naming_the_fetch_command(tmp_path):
    env = {"HWNAS_CACHE": str(tmp_path / "empty")}
    spaces = _cli("spaces", "--json", env=env)
    assert spaces.returncode == 0
    assert {"minilm-mr", "minilm-mr-ose"} <= {s["name"] for s in json.loads(spaces.stdout)["spaces"]}
    proc = _cli("search", "--space", "minilm-mr", "--algo", "random", "--objectives", "fidelity,params",
                "--evals", "50", "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 2
    assert "run `hwnas fetch minilm-mr` first" in proc.stderr and "config.json is missing" in proc.stderr
    assert not (tmp_path / "run").exists()
