"""`--shape KEY=VALUE` on profile / predict / measure: parsing, error paths, one real measure.
Commands run through ``hwnas.cli.main`` in this process (tests/inprocess.py)."""

from __future__ import annotations

import json

import click
import pytest

from hwnas.commands.common import parse_shape
from inprocess import hwnas as run  # noqa: E402 (tests/ is on sys.path under pytest)

CONFIG = '{"D": 1, "A": [1], "I": [128]}'


def test_parse_shape_merges_items_and_shorthands():
    assert parse_shape(("seq_len=16", "batch = 2")) == {"seq_len": 16, "batch": 2}
    assert parse_shape(("seq_len=16",), batch=4, seq_len=None) == {"batch": 4, "seq_len": 16}
    assert parse_shape(("batch=4",), batch=4) == {"batch": 4}  # agreeing twice is fine
    assert parse_shape((), batch=None, seq_len=None) == {}


@pytest.mark.parametrize("items, shorthands, needle", [
    (("seq_len",), {}, "'seq_len'"),
    (("seq_len=abc",), {}, "'seq_len=abc'"),
    (("=4",), {}, "'=4'"),
    (("seq_len=16", "seq_len=32"), {}, "--shape seq_len=16"),
    (("batch=2",), {"batch": 4}, "--batch 4"),
    (("seq_len=8",), {"seq_len": 16}, "--seq-len 16"),
])
def test_parse_shape_refuses_malformed_and_disagreeing_items(items, shorthands, needle):
    with pytest.raises(click.UsageError, match=needle.replace("[", r"\[")):
        parse_shape(items, **shorthands)


@pytest.mark.parametrize("args, needle", [
    (("--shape", "resolution=224"), "'resolution'"),
    (("--shape", "seq_len=0"), "seq_len must be an integer in [1, 65536], got 0"),
    (("--batch", "10000000"), "batch must be an integer in [1, 65536], got 10000000"),  # not a 164 GB allocation
    (("--threads", "1000"), "--threads must be an integer in [1, "),
    (("--shape", "seq_len=x"), "seq_len=x"),
    (("--seq-len", "16", "--shape", "seq_len=32"), "disagrees with --seq-len 16"),
])
@pytest.mark.parametrize("command", ["profile", "measure"])
def test_bad_shape_exits_2_with_one_line_and_writes_nothing(tmp_path, command, args, needle):
    out = tmp_path / "p.json"
    extra = ("--out", str(out)) if command == "profile" else ("--config", CONFIG)
    result = run(command, "--space", "bert-mini", *extra, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not out.exists()


def test_measure_with_shape_seq_len_times_at_that_shape():
    result = run("measure", "--space", "bert-mini", "--config", CONFIG, "--shape", "seq_len=16", "--threads", "1",
                 "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["shape"] == {"batch": 1, "seq_len": 16}
    assert document["median_ms"] > 0


def test_predict_refuses_a_shape_other_than_the_profiles(bert_nets, tmp_path):
    from test_latency_predictor import SHAPE, _synthetic_profile

    profile, _ = _synthetic_profile(bert_nets("bert-mini"), 6)
    path = tmp_path / "p.json"
    profile.save(path)
    base = ("predict", "--profile", str(path), "--config", CONFIG, "--json")
    same = run(*base, "--shape", f"seq_len={SHAPE['seq_len']}")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["shape"] == SHAPE
    for shape, needle in [("seq_len=16", f"was measured at seq_len={SHAPE['seq_len']}"),
                          ("resolution=224", "'resolution'")]:
        done = run(*base, "--shape", shape)
        assert done.returncode == 2 and needle in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
