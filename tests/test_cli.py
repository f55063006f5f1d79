"""The mp3d command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
import trimesh
from PIL import Image

from mp3d._backend import available_impls
from mp3d.cli import main
from mp3d.mesh.marching_cubes import sample_grid
from mp3d.nerf import load_checkpoint


def test_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "mp3d", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert "doctor" in result.stdout and "demo" in result.stdout


def test_doctor_reports_versions_and_impls(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out
    assert "volume_rendering" in out
    gaussians = next(line for line in out.splitlines() if line.startswith("gaussians"))
    assert gaussians.split()[1] == ("cpp" if "cpp" in available_impls() else "torch")
    assert "C++ compiler" in out


def test_demo_renders_scene_only_with_zero_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--views",
                "3",
                "--resolution",
                "12",
                "--frames",
                "4",
                "--steps",
                "0",
            ]
        )
        == 0
    )
    assert (out / "scene" / "transforms_train.json").is_file()
    assert len(list((out / "scene" / "train").glob("*.png"))) == 3
    with Image.open(out / "scene_turntable.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (12, 12)
    assert str(out / "scene_turntable.gif") in capsys.readouterr().out
    assert not (out / "nerf").exists()


def test_demo_trains_evaluates_and_meshes(tmp_path, capsys):
    out = tmp_path / "run"
    # 30 steps leave the density well below the default --threshold: mesh a lower level.
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--views",
                "16",
                "--resolution",
                "24",
                "--frames",
                "3",
                "--steps",
                "30",
                "--mesh-resolution",
                "32",
                "--threshold",
                "0.5",
                "--quiet",
            ]
        )
        == 0
    )
    for name in (
        "checkpoint.pt",
        "turntable.gif",
        "mesh.ply",
        "test/metrics.json",
        "test/r_0_rgb.png",
        "test/r_0_depth.png",
    ):
        assert (out / "nerf" / name).is_file(), name
    printed = capsys.readouterr().out
    assert "PSNR" in printed and str(out / "nerf" / "mesh.ply") in printed
    assert len(trimesh.load(out / "nerf" / "mesh.ply", process=False).faces) > 0


def test_nerf_train_render_mesh(tmp_path, tiny_demo_scene, capsys):
    out = tmp_path / "nerf"
    assert (
        main(
            [
                "nerf",
                "train",
                str(tiny_demo_scene),
                "--out",
                str(out),
                "--steps",
                "5",
                "--batch-rays",
                "256",
                "--frames",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "checkpoint.pt").is_file() and (out / "test" / "metrics.json").is_file()
    assert (
        main(
            [
                "nerf",
                "render",
                str(out / "checkpoint.pt"),
                "--out",
                str(tmp_path / "render"),
                "--frames",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "render" / "turntable.gif").is_file()
    assert (tmp_path / "render" / "test" / "r_0_rgb.png").is_file()  # data still found
    # Five steps leave an almost flat density: mesh the level of its median on the grid.
    model, _ = load_checkpoint(out / "checkpoint.pt")
    density = sample_grid(model.density, model.aabb, 16, progress=False)
    level = float(np.median(density))
    assert (
        main(
            [
                "nerf",
                "mesh",
                str(out / "checkpoint.pt"),
                "--out",
                str(tmp_path / "m.obj"),
                "--resolution",
                "16",
                "--threshold",
                repr(level),
                "--quiet",
            ]
        )
        == 0
    )
    assert len(trimesh.load(tmp_path / "m.obj", process=False).faces) > 0
    assert "mesh" in capsys.readouterr().out


def test_nerf_errors_are_clear(tmp_path, capsys):
    assert main(["nerf", "render", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["nerf", "train", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    assert "transforms_train.json" in capsys.readouterr().err


def test_demo_bad_argument_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "x"), "--resolution", "0"]) == 2
    assert "argument --resolution: must be an int in [1, 2048], got '0'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_splat_renders_scene_only_with_zero_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "demo",
                "--method",
                "splat",
                "--out",
                str(out),
                "--views",
                "3",
                "--resolution",
                "12",
                "--frames",
                "2",
                "--steps",
                "0",
            ]
        )
        == 0
    )
    assert len(list((out / "scene" / "train").glob("*.png"))) == 3
    assert (out / "scene_turntable.gif").is_file()
    assert not (out / "splat").exists() and not (out / "nerf").exists()


def test_demo_splat_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "demo",
                "--method",
                "splat",
                "--out",
                str(out),
                "--views",
                "6",
                "--resolution",
                "16",
                "--frames",
                "2",
                "--steps",
                "8",
                "--init-points",
                "80",
            ]
        )
        == 0
    )
    for name in (
        "checkpoint.pt",
        "point_cloud.ply",
        "metrics.json",
        "turntable.gif",
        "test/r_0_rgb.png",
    ):
        assert (out / "splat" / name).is_file(), name
    assert not (out / "nerf").exists()
    printed = capsys.readouterr().out
    assert "PSNR" in printed and str(out / "splat" / "point_cloud.ply") in printed


def test_splat_train_and_render(tmp_path, tiny_demo_scene, capsys):
    out = tmp_path / "splat"
    assert (
        main(
            [
                "splat",
                "train",
                str(tiny_demo_scene),
                "--out",
                str(out),
                "--steps",
                "4",
                "--init-points",
                "60",
                "--frames",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (out / "point_cloud.ply").is_file() and (out / "metrics.json").is_file()
    printed = capsys.readouterr().out
    assert "60 -> " in printed and str(out / "point_cloud.ply") in printed
    render = tmp_path / "render"
    assert (
        main(
            [
                "splat",
                "render",
                str(out / "point_cloud.ply"),
                "--out",
                str(render),
                "--width",
                "18",
                "--height",
                "10",
                "--frames",
                "3",
                "--up",
                "+z",
            ]
        )
        == 0
    )
    with Image.open(render / "turntable.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (18, 10)
    assert len(list((render / "frames").glob("frame_*.png"))) == 3
    assert str(render / "turntable.gif") in capsys.readouterr().out


def test_splat_errors_are_clear(tmp_path, tiny_demo_scene, capsys):
    assert main(["splat", "train", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "transforms_train.json" in capsys.readouterr().err
    assert main(["splat", "render", str(tmp_path / "missing.ply"), "--out", str(tmp_path)]) == 2
    assert "missing.ply" in capsys.readouterr().err
    assert (
        main(["splat", "train", str(tiny_demo_scene), "--out", str(tmp_path / "o"), "--steps", "0"])
        == 2
    )
    assert "argument --steps: must be an int >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
