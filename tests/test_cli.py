"""The mp3d command line."""

from __future__ import annotations

import subprocess
import sys

import torch
from PIL import Image

from mp3d.cli import main


def test_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "mp3d", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    assert "doctor" in result.stdout and "demo" in result.stdout


def test_doctor_reports_versions_and_impls(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out
    assert "volume_rendering" in out
    assert "C++ compiler" in out


def test_demo_writes_scene_and_turntable(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--out", str(out), "--views", "3", "--resolution", "12",
                 "--frames", "4"]) == 0
    assert (out / "scene" / "transforms_train.json").is_file()
    assert len(list((out / "scene" / "train").glob("*.png"))) == 3
    with Image.open(out / "turntable.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (12, 12)
    printed = capsys.readouterr().out
    assert str(out / "turntable.gif") in printed


def test_demo_bad_argument_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "x"), "--resolution", "0"]) == 2
    assert "resolution must be an int >= 1" in capsys.readouterr().err
