import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from hwnas.errors import InputError
from hwnas.deploy.parity import onnx_param_count
from hwnas.deploy.pipeline import export_configs


@pytest.mark.parametrize("name", ["bert-mini", "bert-linas"])
def test_export_is_checked_and_matches_pytorch(bert_nets, tmp_path, name):
    net = bert_nets(name)
    config = net.space.sample(1, seed=9)[0]
    out = tmp_path / "export"
    manifest = export_configs(net, [config], out, shape={"seq_len": 16})
    entry = manifest["models"][0]
    assert entry["config"] == config
    assert entry["parity_max_abs_diff"] <= 1e-4
    model = onnx.load(str(out / entry["file"]))
    onnx.checker.check_model(model)
    assert onnx_param_count(model) == entry["params"] == net.count_params(config)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hwnas.space"] == name and json.loads(meta["hwnas.config"]) == config
    assert model.opset_import[0].version >= 17
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["models"][0]["file"] == entry["file"]


def test_exported_model_runs_with_other_batch_and_length(bert_nets, tmp_path):
    net = bert_nets("bert-mini")
    config = {"D": 2, "A": [4, 1], "I": [512, 128]}
    manifest = export_configs(net, [config], tmp_path / "e")
    session = ort.InferenceSession(str(tmp_path / "e" / manifest["models"][0]["file"]))
    feeds = net.example_inputs({"batch": 3, "seq_len": 20})
    (logits,) = session.run(None, feeds)
    assert logits.shape == (3, 2) and np.isfinite(logits).all()


def test_export_refuses_non_empty_dir_and_leaves_no_partial(bert_nets, tmp_path):
    net = bert_nets("bert-mini")
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        export_configs(net, [{"D": 1, "A": [1], "I": [128]}], out)
    assert (out / "mine.txt").read_text() == "user data"
    fresh = tmp_path / "fresh"
    with pytest.raises(InputError):
        export_configs(net, [{"D": 1, "A": [3], "I": [128]}], fresh)
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
