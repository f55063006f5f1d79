"""`mp3d seq train | eval | sample`: happy paths with tiny budgets, and bad input (unknown
model, empty or missing text, unknown prompt characters, other checkpoints) ending in exit
status 2 with one clear stderr line and nothing written."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from mp3d.cli import main
from mp3d.io import write_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_LSTM = ["--hidden", "24", "--layers", "1", "--block", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text("the cat sat on the mat.\nthe dog ran.\n" * 40, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lstm_run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    argv = ["seq", "train", "lstm", "--data", str(text), "--out", str(out), "--steps", "15"]
    assert main([*argv, *TINY_LSTM, "--quiet"]) == 0
    return out


def _mnist_folder(folder, n=1040, side=8):
    """A folder of IDX files holding n tiny 'digits' (bars whose place is the label)."""
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.uint8)
    images = np.zeros((n, side, side), dtype=np.uint8)
    images[labels == 1, :, side - 2 :] = 255
    images[labels == 0, :, :2] = 255
    images[rng.random(images.shape) < 0.05] = 128
    folder.mkdir()
    header = struct.pack(">IIII", 0x00000803, n, side, side)
    (folder / "tiny-images-idx3-ubyte").write_bytes(header + images.tobytes())
    (folder / "tiny-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return folder


def test_help_lists_seq():
    result = subprocess.run(
        [sys.executable, "-m", "mp3d", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "seq" in result.stdout


def test_train_writes_checkpoint_metrics_and_sample(lstm_run, capsys):
    metrics = json.loads((lstm_run / "metrics.json").read_text())
    assert metrics["model"] == "lstm" and metrics["steps"] == 15
    assert 0 < metrics["val_loss_nats_per_char"] < 5
    assert (lstm_run / "checkpoint.pt").is_file() and (lstm_run / "sample.txt").is_file()


def test_train_resumes_and_transformer_trains_by_minutes(text, lstm_run, tmp_path, capsys):
    argv = ["seq", "train", "lstm", "--data", str(text), "--out", str(lstm_run)]
    assert main([*argv, "--steps", "18", *TINY_LSTM, "--quiet"]) == 0
    assert "resumed from step 15" in capsys.readouterr().out
    out = tmp_path / "tf"
    argv = ["seq", "train", "transformer", "--data", str(text), "--out", str(out)]
    tiny = ["--hidden", "16", "--layers", "1", "--heads", "2", "--block", "16"]
    assert main([*argv, "--minutes", "0.01", *tiny, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "validation" in printed and "nats/char" in printed


def test_sample_prints_the_prompt_and_the_continuation(lstm_run, tmp_path, capsys):
    argv = ["seq", "sample", str(lstm_run), "--prompt", "the ", "--length", "25"]
    assert main([*argv, "--temperature", "0.7", "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the ") and len(printed.rstrip("\n")) >= 20
    out = tmp_path / "s.txt"
    assert main([*argv, "--out", str(out), "--seed", "3"]) == 0
    assert len(out.read_text(encoding="utf-8")) == 29


def test_eval_scores_the_validation_text(lstm_run, text, tmp_path, capsys):
    scores = tmp_path / "scores.json"
    argv = ["seq", "eval", str(lstm_run / "checkpoint.pt"), "--data", str(text)]
    assert main([*argv, "--json", str(scores)]) == 0
    assert "nats/char" in capsys.readouterr().out
    assert json.loads(scores.read_text())["val_loss_nats_per_char"] > 0


def test_sequential_mnist_train_and_eval(tmp_path, capsys):
    folder = _mnist_folder(tmp_path / "digits")
    out = tmp_path / "cls"
    argv = ["seq", "train", "gru", "--data", str(folder), "--out", str(out), "--steps", "4"]
    assert main([*argv, "--hidden", "8", "--batch-size", "16", "--quiet"]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["seq", "eval", str(out), "--data", str(folder)]) == 0
    assert "accuracy" in capsys.readouterr().out


def _fails(argv, culprit, capsys, out=None):
    code = main([str(word) for word in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and str(culprit) in last, err
    assert "Traceback" not in err
    if out is not None:
        assert not out.exists()


def test_bad_input_exits_2_naming_the_culprit(text, lstm_run, tmp_path, capsys):
    out = tmp_path / "out"
    train = ["seq", "train"]
    _fails([*train, "wavenet", "--data", text, "--out", out], "wavenet", capsys, out)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _fails([*train, "lstm", "--data", empty, "--out", out], "is empty", capsys, out)
    _fails([*train, "lstm", "--data", tmp_path / "none.txt", "--out", out], "none.txt", capsys, out)
    _fails([*train, "lstm", "--data", text, "--out", out, "--block", "0"], "--block", capsys, out)
    _fails([*train, "lstm", "--data", text, "--out", out, "--heads", "2"], "--heads", capsys, out)
    _fails(
        [*train, "transformer", "--data", text, "--out", out, "--hidden", "30"],
        "--heads 4 must divide --hidden 30",
        capsys,
        out,
    )
    _fails(
        [*train, "lstm", "--data", text, "--out", out, "--block", "5000"], "--block", capsys, out
    )
    folder = _mnist_folder(tmp_path / "digits")
    _fails([*train, "vrnn", "--data", folder, "--out", out], "'vrnn'", capsys, out)
    _fails([*train, "leaky", "--data", text, "--out", out], "leaky", capsys, out)
    sample = ["seq", "sample", lstm_run]
    _fails([*sample, "--prompt", "XYZ"], "--prompt", capsys)
    _fails([*sample, "--prompt", ""], "--prompt", capsys)
    _fails([*sample, "--temperature", "0"], "--temperature", capsys)
    _fails([*sample, "--top-k", "0"], "--top-k", capsys)
    other = write_checkpoint(tmp_path / "nerf.pt", "mp3d.nerf", 1, {"step": 0})
    _fails(["seq", "sample", other], "nerf.pt", capsys)
    _fails(["seq", "eval", other, "--data", text], "nerf.pt", capsys)
    _fails(["seq", "eval", tmp_path / "none.pt", "--data", text], "none.pt", capsys)
    _fails(["seq", "eval", lstm_run, "--data", empty], "empty.txt", capsys)


def test_impl_equations_trains_and_is_refused_where_it_does_not_apply(text, tmp_path, capsys):
    out = tmp_path / "eq"
    argv = ["seq", "train", "gru", "--data", str(text), "--out", str(out), "--steps", "3"]
    assert main([*argv, *TINY_LSTM, "--impl", "equations", "--quiet"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    argv = ["seq", "train", "transformer", "--data", text, "--out", bad, "--impl", "equations"]
    _fails(argv, "--impl", capsys, bad)
