"""Bad input to every `mp3d` command: each case runs mp3d.cli.main in-process and must exit 2
with one stderr line naming the culprit (the option or the file), leaving nothing in the
output location. The data is tiny and generated; nearly every case fails before training."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from mp3d.cameras import intrinsics, look_at
from mp3d.cli import build_parser, main
from mp3d.data.colmap import write_colmap_text
from mp3d.data.demo import write_demo_scene
from mp3d.implicit.onet import FORMAT as ONET_FORMAT
from mp3d.implicit.onet import VERSION as ONET_VERSION
from mp3d.implicit.onet import OccupancyNetwork
from mp3d.io import write_checkpoint
from mp3d.nerf.checkpoint import FORMAT as NERF_FORMAT
from mp3d.nerf.checkpoint import VERSION as NERF_VERSION
from mp3d.nerf.checkpoint import save_checkpoint
from mp3d.nerf.model import ModelSpec, NeRFModel
from mp3d.splat.ply import save_ply

WIDTH, HEIGHT = 16, 12


# ----------------------------------------------------------------------------- tiny inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Good and bad input files, generated once: scenes, checkpoints, PLY files."""
    root = tmp_path_factory.mktemp("inputs")
    blender = write_demo_scene(
        root / "blender", n_train=3, n_val=1, n_test=1, resolution=16, progress=False
    )
    paths = {"blender": blender, "colmap": _colmap_scene(root / "colmap")}
    paths["a_file"] = root / "a_file.txt"
    paths["a_file"].write_text("not a folder\n")
    paths["a_folder_obj"] = root / "folder.obj"
    paths["a_folder_obj"].mkdir()
    paths["sphere"] = root / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=2).export(paths["sphere"])
    paths["garbage_obj"] = root / "garbage.obj"
    paths["garbage_obj"].write_text("this is not a mesh\n")
    paths["short_xyz"] = root / "short.xyz"
    paths["short_xyz"].write_text("1 2\n3 4\n")
    paths["nan_xyz"] = root / "nan.xyz"
    paths["nan_xyz"].write_text("0 0 0\nnan 1 2\n1 1 1\n")

    def blender_with(name, edit):
        scene = shutil.copytree(blender, root / name)
        meta_path = scene / "transforms_train.json"
        meta = json.loads(meta_path.read_text())
        edit(meta)
        meta_path.write_text(json.dumps(meta))
        paths[name] = scene

    blender_with(
        "ragged",
        lambda m: m["frames"][1].update(
            transform_matrix=[[1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
        ),
    )
    blender_with("negative_fov", lambda m: m.update(camera_angle_x=-0.7))
    blender_with(
        "zero_camera", lambda m: m["frames"][2].update(transform_matrix=np.zeros((4, 4)).tolist())
    )
    blender_with(
        "sheared_camera",
        lambda m: m["frames"][0].update(
            transform_matrix=[[1, 0.4, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
        ),
    )

    def colmap_with(name, filename, old, new):
        scene = shutil.copytree(paths["colmap"], root / name)
        path = scene / "sparse" / "0" / filename
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
        paths[name] = scene

    colmap_with("colmap_width_0", "cameras.txt", f"PINHOLE {WIDTH} {HEIGHT}", f"PINHOLE 0 {HEIGHT}")
    colmap_with(
        "colmap_focal_0",
        "cameras.txt",
        f"PINHOLE {WIDTH} {HEIGHT} 14.0 ",
        f"PINHOLE {WIDTH} {HEIGHT} 0.0 ",
    )
    line = _first_image_line(paths["colmap"])
    tokens = line.split()
    for name, quat in (("colmap_zero_quat", "0 0 0 0"), ("colmap_nan_quat", "nan 0.5 0.5 0.5")):
        colmap_with(name, "images.txt", line, " ".join([tokens[0], quat, *tokens[5:]]))

    spec = ModelSpec(
        kind="hash",
        n_levels=2,
        log2_table_size=8,
        finest_resolution=16,
        grid_resolution=8,
        march_steps=16,
    )
    model = NeRFModel(spec)
    camera = {"K": intrinsics(20.0, 20.0, 8.0, 8.0).tolist(), "width": 16, "height": 16}
    orbit = {"centre": [0.0, 0.0, 0.0], "up": [0.0, 0.0, 1.0], "radius": 4.0, "elevation_deg": 20.0}
    paths["nerf_ckpt"] = save_checkpoint(
        root / "nerf.pt", model, None, 1, 0.0, None, meta={**camera, "orbit": orbit}
    )
    paths["ckpt_no_orbit_keys"] = save_checkpoint(
        root / "no_orbit.pt", model, None, 1, 0.0, None, meta={**camera, "orbit": {}}
    )
    paths["ckpt_no_keys"] = write_checkpoint(
        root / "empty.pt", NERF_FORMAT, NERF_VERSION, {"step": 1}
    )
    paths["empty_dir"] = root / "empty_dir"
    paths["empty_dir"].mkdir()
    paths["empty_txt"] = root / "empty.txt"
    paths["empty_txt"].write_text("")
    paths["garbage_dir"] = root / "garbage_dir"
    paths["garbage_dir"].mkdir()
    shutil.copy(paths["garbage_obj"], paths["garbage_dir"] / "garbage.obj")
    paths["mesh_dir"] = root / "mesh_dir"
    paths["mesh_dir"].mkdir()
    shutil.copy(paths["sphere"], paths["mesh_dir"] / "ball.ply")
    onet_options = {"latent": 4, "hidden": 8, "blocks": 1, "encoder_hidden": 4}
    onet_options |= {"encoder_blocks": 1, "cloud_points": 16}
    paths["onet_ckpt"] = write_checkpoint(
        root / "onet.pt",
        ONET_FORMAT,
        ONET_VERSION,
        {
            "model": OccupancyNetwork(**onet_options).state_dict(),
            "model_options": onet_options,
            "step": 0,
            "elapsed": 0.0,
        },
    )
    paths["onet_incomplete"] = write_checkpoint(
        root / "onet_incomplete.pt", ONET_FORMAT, ONET_VERSION, {"step": 0}
    )
    paths["marker"] = root / "pickle_ran.txt"
    paths["ckpt_pickled_callable"] = _pickled_callable_checkpoint(root / "evil.pt", paths["marker"])

    gaussians = _gaussians()
    paths["ply"] = save_ply(root / "good.ply", **gaussians)
    gaussians["means"][2, 1] = float("nan")
    paths["ply_nan"] = save_ply(root / "nan.ply", **gaussians)
    return paths


def _colmap_scene(root: Path) -> Path:
    """Three cameras around 30 points, PINHOLE, as COLMAP text files with black images."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(30, 3, generator=g, dtype=torch.float64) - 0.5
    angles = torch.tensor([0.0, 2.1, 4.2], dtype=torch.float64)
    eyes = torch.stack(
        [4 * angles.cos(), 4 * angles.sin(), torch.ones(3, dtype=torch.float64)], dim=-1
    )
    viewmats = look_at(eyes, torch.zeros(3, dtype=torch.float64))
    Ks = intrinsics(14.0, 14.0, WIDTH / 2, HEIGHT / 2, dtype=torch.float64).expand(3, 3, 3)
    names = [f"view_{i}.png" for i in range(3)]
    (root / "images").mkdir(parents=True)
    for name in names:
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(root / "images" / name)
    write_colmap_text(
        root, Ks, viewmats, names, WIDTH, HEIGHT, points, torch.rand(30, 3, generator=g)
    )
    return root


def _first_image_line(root: Path) -> str:
    lines = (root / "sparse" / "0" / "images.txt").read_text().splitlines()
    return next(line for line in lines if line and not line.startswith("#"))


class _RunsCode:
    """Unpickles into a call of Path.touch(marker): what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _pickled_callable_checkpoint(path: Path, marker: Path) -> Path:
    payload = {
        "format": NERF_FORMAT,
        "version": NERF_VERSION,
        "step": 1,
        "elapsed": 0.0,
        "spec": _RunsCode(marker),
        "model": {},
    }
    torch.save(payload, path)
    return path


def _gaussians(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "means": torch.randn(n, 3, generator=g) * 0.3,
        "quats": torch.randn(n, 4, generator=g),
        "log_scales": torch.full((n, 3), -3.0),
        "opacity_logits": torch.full((n,), 2.0),
        "sh": torch.randn(n, 1, 3, generator=g),
    }


# ----------------------------------------------------------------------------- the table

# (case id, argv with {name} for an input path and {out} for the output location, the
# culprit the message must name: a literal, or {name} for an input's path).
TRAIN = ["--steps", "1", "--quiet", "--device", "cpu"]
SPLAT = [*TRAIN, "--init-points", "20", "--frames", "1"]
CASES = [
    # doctor takes no options
    ("doctor-unknown-option", ["doctor", "--verbose"], "--verbose"),
    # demo
    ("demo-out-is-a-file", ["demo", "--out", "{a_file}", "--steps", "0"], "--out"),
    ("demo-out-under-a-file", ["demo", "--out", "{a_file}/x", "--steps", "0"], "--out"),
    ("demo-device-cuda", ["demo", "--out", "{out}", "--device", "cuda"], "--device"),
    ("demo-device-tpu", ["demo", "--out", "{out}", "--device", "tpu"], "--device"),
    ("demo-steps-negative", ["demo", "--out", "{out}", "--steps", "-1"], "--steps"),
    ("demo-minutes-negative", ["demo", "--out", "{out}", "--minutes", "-1"], "--minutes"),
    ("demo-frames-0", ["demo", "--out", "{out}", "--frames", "0"], "--frames"),
    ("demo-resolution-huge", ["demo", "--out", "{out}", "--resolution", "100000"], "--resolution"),
    ("demo-threshold-nan", ["demo", "--out", "{out}", "--threshold", "nan"], "--threshold"),
    (
        "demo-mesh-resolution-1",
        ["demo", "--out", "{out}", "--mesh-resolution", "1"],
        "--mesh-resolution",
    ),
    ("demo-seed-negative", ["demo", "--out", "{out}", "--seed", "-3"], "--seed"),
    # nerf train
    (
        "nerf-train-out-is-a-file",
        ["nerf", "train", "{blender}", "--out", "{a_file}", *TRAIN],
        "--out",
    ),
    (
        "nerf-train-device-cuda",
        ["nerf", "train", "{blender}", "--out", "{out}", "--device", "cuda"],
        "--device",
    ),
    (
        "nerf-train-device-tpu",
        ["nerf", "train", "{blender}", "--out", "{out}", "--device", "tpu"],
        "--device",
    ),
    (
        "nerf-train-steps-0",
        ["nerf", "train", "{blender}", "--out", "{out}", "--steps", "0"],
        "--steps",
    ),
    (
        "nerf-train-minutes-negative",
        ["nerf", "train", "{blender}", "--out", "{out}", "--minutes", "-1"],
        "--minutes",
    ),
    (
        "nerf-train-minutes-nan",
        ["nerf", "train", "{blender}", "--out", "{out}", "--minutes", "nan"],
        "--minutes",
    ),
    (
        "nerf-train-background-nan",
        ["nerf", "train", "{blender}", "--out", "{out}", "--background", "nan"],
        "--background",
    ),
    (
        "nerf-train-background-pink",
        ["nerf", "train", "{blender}", "--out", "{out}", "--background", "pink"],
        "--background",
    ),
    (
        "nerf-train-holdout-1",
        ["nerf", "train", "{blender}", "--out", "{out}", "--holdout", "1"],
        "--holdout",
    ),
    (
        "nerf-train-batch-rays-0",
        ["nerf", "train", "{blender}", "--out", "{out}", "--batch-rays", "0"],
        "--batch-rays",
    ),
    (
        "nerf-train-batch-rays-huge",
        ["nerf", "train", "{blender}", "--out", "{out}", "--batch-rays", "999999999", *TRAIN],
        "--batch-rays",
    ),
    (
        "nerf-train-missing-folder",
        ["nerf", "train", "{out}/nowhere", "--out", "{out}", *TRAIN],
        "nowhere",
    ),
    (
        "nerf-train-ragged-matrix",
        ["nerf", "train", "{ragged}", "--out", "{out}", *TRAIN],
        "{ragged}/transforms_train.json: frame 1",
    ),
    (
        "nerf-train-negative-fov",
        ["nerf", "train", "{negative_fov}", "--out", "{out}", *TRAIN],
        "{negative_fov}/transforms_train.json: 'camera_angle_x'",
    ),
    (
        "nerf-train-zero-camera",
        ["nerf", "train", "{zero_camera}", "--out", "{out}", *TRAIN],
        "{zero_camera}/transforms_train.json: frame 2",
    ),
    (
        "nerf-train-sheared-camera",
        ["nerf", "train", "{sheared_camera}", "--out", "{out}", *TRAIN],
        "{sheared_camera}/transforms_train.json: frame 0",
    ),
    (
        "nerf-train-colmap-width-0",
        ["nerf", "train", "{colmap_width_0}", "--out", "{out}", *TRAIN],
        "{colmap_width_0}/sparse/0/cameras.txt: line",
    ),
    (
        "nerf-train-colmap-zero-quat",
        ["nerf", "train", "{colmap_zero_quat}", "--out", "{out}", *TRAIN],
        "{colmap_zero_quat}/sparse/0/images.txt: line",
    ),
    # nerf render
    (
        "nerf-render-frames-0",
        ["nerf", "render", "{nerf_ckpt}", "--out", "{out}", "--frames", "0"],
        "--frames",
    ),
    ("nerf-render-out-is-a-file", ["nerf", "render", "{nerf_ckpt}", "--out", "{a_file}"], "--out"),
    (
        "nerf-render-device-tpu",
        ["nerf", "render", "{nerf_ckpt}", "--out", "{out}", "--device", "tpu"],
        "--device",
    ),
    (
        "nerf-render-missing-checkpoint",
        ["nerf", "render", "{out}/none.pt", "--out", "{out}"],
        "none.pt",
    ),
    ("nerf-render-not-a-checkpoint", ["nerf", "render", "{a_file}", "--out", "{out}"], "{a_file}"),
    (
        "nerf-render-checkpoint-missing-keys",
        ["nerf", "render", "{ckpt_no_keys}", "--out", "{out}", "--quiet"],
        "{ckpt_no_keys}: NeRF checkpoint lacks",
    ),
    (
        "nerf-render-checkpoint-missing-orbit",
        ["nerf", "render", "{ckpt_no_orbit_keys}", "--out", "{out}", "--quiet"],
        "{ckpt_no_orbit_keys}",
    ),
    (
        "nerf-render-pickled-callable",
        ["nerf", "render", "{ckpt_pickled_callable}", "--out", "{out}", "--quiet"],
        "{ckpt_pickled_callable}: refused: the file holds a Python object",
    ),
    # nerf mesh
    (
        "nerf-mesh-no-surface",
        [
            "nerf",
            "mesh",
            "{nerf_ckpt}",
            "--out",
            "{out}/m.ply",
            "--resolution",
            "8",
            "--threshold",
            "1e9",
            "--quiet",
        ],
        "--threshold",
    ),
    ("nerf-mesh-bad-suffix", ["nerf", "mesh", "{nerf_ckpt}", "--out", "{out}/m.txt"], "--out"),
    (
        "nerf-mesh-out-under-a-file",
        ["nerf", "mesh", "{nerf_ckpt}", "--out", "{a_file}/m.ply"],
        "--out",
    ),
    (
        "nerf-mesh-resolution-huge",
        ["nerf", "mesh", "{nerf_ckpt}", "--out", "{out}/m.ply", "--resolution", "100000"],
        "--resolution",
    ),
    (
        "nerf-mesh-threshold-nan",
        ["nerf", "mesh", "{nerf_ckpt}", "--out", "{out}/m.ply", "--threshold", "nan"],
        "--threshold",
    ),
    (
        "nerf-mesh-pickled-callable",
        ["nerf", "mesh", "{ckpt_pickled_callable}", "--out", "{out}/m.ply"],
        "{ckpt_pickled_callable}: refused: the file holds a Python object",
    ),
    # splat train
    (
        "splat-train-out-is-a-file",
        ["splat", "train", "{blender}", "--out", "{a_file}", *SPLAT],
        "--out",
    ),
    (
        "splat-train-device-cuda",
        ["splat", "train", "{blender}", "--out", "{out}", "--device", "cuda"],
        "--device",
    ),
    (
        "splat-train-device-tpu",
        ["splat", "train", "{blender}", "--out", "{out}", "--device", "tpu"],
        "--device",
    ),
    (
        "splat-train-steps-0",
        ["splat", "train", "{blender}", "--out", "{out}", "--steps", "0"],
        "--steps",
    ),
    (
        "splat-train-minutes-negative",
        ["splat", "train", "{blender}", "--out", "{out}", "--minutes", "-1"],
        "--minutes",
    ),
    (
        "splat-train-background-nan",
        ["splat", "train", "{blender}", "--out", "{out}", "--background", "nan"],
        "--background",
    ),
    (
        "splat-train-sh-degree-9",
        ["splat", "train", "{blender}", "--out", "{out}", "--sh-degree", "9"],
        "--sh-degree",
    ),
    (
        "splat-train-init-points-1",
        ["splat", "train", "{blender}", "--out", "{out}", "--init-points", "1"],
        "--init-points",
    ),
    (
        "splat-train-ragged-matrix",
        ["splat", "train", "{ragged}", "--out", "{out}", *SPLAT],
        "{ragged}/transforms_train.json: frame 1",
    ),
    (
        "splat-train-negative-fov",
        ["splat", "train", "{negative_fov}", "--out", "{out}", *SPLAT],
        "{negative_fov}/transforms_train.json",
    ),
    (
        "splat-train-zero-camera",
        ["splat", "train", "{zero_camera}", "--out", "{out}", *SPLAT],
        "{zero_camera}/transforms_train.json: frame 2",
    ),
    (
        "splat-train-colmap-width-0",
        ["splat", "train", "{colmap_width_0}", "--out", "{out}", *SPLAT],
        "{colmap_width_0}/sparse/0/cameras.txt: line",
    ),
    (
        "splat-train-colmap-focal-0",
        ["splat", "train", "{colmap_focal_0}", "--out", "{out}", *SPLAT],
        "cameras.txt: line 4: camera focal lengths",
    ),
    (
        "splat-train-colmap-zero-quat",
        ["splat", "train", "{colmap_zero_quat}", "--out", "{out}", *SPLAT],
        "{colmap_zero_quat}/sparse/0/images.txt: line",
    ),
    (
        "splat-train-colmap-nan-quat",
        ["splat", "train", "{colmap_nan_quat}", "--out", "{out}", *SPLAT],
        "{colmap_nan_quat}/sparse/0/images.txt: line",
    ),
    # splat render
    (
        "splat-render-huge-size",
        ["splat", "render", "{ply}", "--out", "{out}", "--width", "100000", "--height", "100000"],
        "--width",
    ),
    (
        "splat-render-height-0",
        ["splat", "render", "{ply}", "--out", "{out}", "--height", "0"],
        "--height",
    ),
    (
        "splat-render-frames-0",
        ["splat", "render", "{ply}", "--out", "{out}", "--frames", "0"],
        "--frames",
    ),
    (
        "splat-render-background-nan",
        ["splat", "render", "{ply}", "--out", "{out}", "--background", "nan"],
        "--background",
    ),
    (
        "splat-render-background-2",
        ["splat", "render", "{ply}", "--out", "{out}", "--background", "2"],
        "--background",
    ),
    (
        "splat-render-fov-180",
        ["splat", "render", "{ply}", "--out", "{out}", "--fov", "180"],
        "--fov",
    ),
    (
        "splat-render-radius-0",
        ["splat", "render", "{ply}", "--out", "{out}", "--radius", "0"],
        "--radius",
    ),
    (
        "splat-render-device-cuda",
        ["splat", "render", "{ply}", "--out", "{out}", "--device", "cuda"],
        "--device",
    ),
    ("splat-render-out-is-a-file", ["splat", "render", "{ply}", "--out", "{a_file}"], "--out"),
    (
        "splat-render-nan-positions",
        ["splat", "render", "{ply_nan}", "--out", "{out}", "--quiet", "--device", "cpu"],
        "{ply_nan}: property 'y'",
    ),
    (
        "splat-render-not-a-ply",
        ["splat", "render", "{a_file}", "--out", "{out}", "--device", "cpu"],
        "{a_file}",
    ),
    (
        "splat-render-missing-ply",
        ["splat", "render", "{out}/none.ply", "--out", "{out}"],
        "none.ply",
    ),
    # body pose
    ("body-pose-bad-suffix", ["body", "pose", "--out", "{out}/body.txt"], "--out"),
    ("body-pose-out-is-a-folder", ["body", "pose", "--out", "{a_folder_obj}"], "is a folder"),
    ("body-pose-nan-beta", ["body", "pose", "--out", "{out}/b.obj", "--betas", "nan"], "--betas"),
    (
        "body-pose-bad-joint",
        ["body", "pose", "--out", "{out}/b.obj", "--pose", "left_elbow=1"],
        "--pose",
    ),
    (
        "body-pose-missing-model",
        ["body", "pose", "--out", "{out}/b.obj", "--model", "{out}/none.pkl"],
        "none.pkl",
    ),
    (
        "body-pose-keypoints-out-bad-suffix",
        ["body", "pose", "--out", "{out}/b.obj", "--keypoints-out", "{out}/k.txt"],
        "--keypoints-out",
    ),
    # body fit
    (
        "body-fit-missing-keypoints",
        ["body", "fit", "{out}/none.json", "--out", "{out}"],
        "none.json",
    ),
    ("body-fit-not-json", ["body", "fit", "{a_file}", "--out", "{out}"], "{a_file}"),
    ("body-fit-sigma-0", ["body", "fit", "{a_file}", "--out", "{out}", "--sigma", "0"], "--sigma"),
    (
        "body-fit-keypoint-std-nan",
        ["body", "fit", "{a_file}", "--out", "{out}", "--keypoint-std", "nan"],
        "--keypoint-std",
    ),
    ("body-fit-out-is-a-file", ["body", "fit", "{a_file}", "--out", "{a_file}"], "--out"),
    # mesh eval
    ("mesh-eval-missing-pred", ["mesh", "eval", "{out}/none.obj", "{sphere}"], "none.obj"),
    ("mesh-eval-garbage", ["mesh", "eval", "{garbage_obj}", "{sphere}"], "{garbage_obj}"),
    ("mesh-eval-not-a-mesh", ["mesh", "eval", "{sphere}", "{a_file}"], "{a_file}"),
    ("mesh-eval-folder", ["mesh", "eval", "{a_folder_obj}", "{sphere}"], "{a_folder_obj}"),
    ("mesh-eval-tau-zero", ["mesh", "eval", "{sphere}", "{sphere}", "--tau", "0"], "--tau"),
    (
        "mesh-eval-points-zero",
        ["mesh", "eval", "{sphere}", "{sphere}", "--points", "0"],
        "--points",
    ),
    # sdf fit
    (
        "sdf-fit-missing-source",
        ["sdf", "fit", "{out}/none.xyz", "--out", "{out}/m.ply"],
        "none.xyz",
    ),
    ("sdf-fit-short-lines", ["sdf", "fit", "{short_xyz}", "--out", "{out}/m.ply"], "{short_xyz}"),
    ("sdf-fit-nan-points", ["sdf", "fit", "{nan_xyz}", "--out", "{out}/m.ply"], "{nan_xyz}"),
    (
        "sdf-fit-garbage-mesh",
        ["sdf", "fit", "{garbage_obj}", "--out", "{out}/m.ply"],
        "{garbage_obj}",
    ),
    ("sdf-fit-out-suffix", ["sdf", "fit", "{sphere}", "--out", "{out}/m.txt"], "--out"),
    (
        "sdf-fit-steps-zero",
        ["sdf", "fit", "{sphere}", "--out", "{out}/m.ply", "--steps", "0"],
        "--steps",
    ),
    (
        "sdf-fit-too-fine",
        ["sdf", "fit", "{sphere}", "--out", "{out}/m.ply", "--upsampling-steps", "9"],
        "--upsampling-steps",
    ),
    (
        "sdf-fit-run-is-a-file",
        ["sdf", "fit", "{sphere}", "--out", "{out}/m.ply", "--run", "{a_file}"],
        "--run",
    ),
    # implicit train / reconstruct
    (
        "implicit-train-missing-folder",
        ["implicit", "train", "onet", "{out}/nomeshes", "--out", "{out}/run"],
        "nomeshes",
    ),
    (
        "implicit-train-no-meshes",
        ["implicit", "train", "onet", "{empty_dir}", "--out", "{out}/run"],
        "{empty_dir}",
    ),
    (
        "implicit-train-garbage-mesh",
        ["implicit", "train", "deepsdf", "{garbage_dir}", "--out", "{out}/run"],
        "garbage.obj",
    ),
    (
        "implicit-train-unknown-hold-out",
        ["implicit", "train", "onet", "{mesh_dir}", "--out", "{out}/run", "--hold-out", "cat"],
        "--hold-out cat",
    ),
    (
        "implicit-train-unknown-model",
        ["implicit", "train", "pixelcnn", "{mesh_dir}", "--out", "{out}/run"],
        "pixelcnn",
    ),
    (
        "implicit-train-copies-zero",
        ["implicit", "train", "onet", "{mesh_dir}", "--out", "{out}/run", "--copies", "0"],
        "--copies",
    ),
    (
        "implicit-train-out-is-a-file",
        ["implicit", "train", "onet", "{mesh_dir}", "--out", "{a_file}"],
        "--out",
    ),
    (
        "implicit-reconstruct-missing-checkpoint",
        ["implicit", "reconstruct", "{out}/none.pt", "{sphere}", "--out", "{out}/m.ply"],
        "none.pt",
    ),
    (
        "implicit-reconstruct-nerf-checkpoint",
        ["implicit", "reconstruct", "{nerf_ckpt}", "{sphere}", "--out", "{out}/m.ply"],
        "{nerf_ckpt}",
    ),
    (
        "implicit-reconstruct-incomplete-checkpoint",
        ["implicit", "reconstruct", "{onet_incomplete}", "{sphere}", "--out", "{out}/m.ply"],
        "{onet_incomplete}",
    ),
    (
        "implicit-reconstruct-pickled-callable",
        ["implicit", "reconstruct", "{ckpt_pickled_callable}", "{sphere}", "--out", "{out}/m.ply"],
        "{ckpt_pickled_callable}",
    ),
    (
        "implicit-reconstruct-nan-points",
        ["implicit", "reconstruct", "{onet_ckpt}", "{nan_xyz}", "--out", "{out}/m.ply"],
        "{nan_xyz}",
    ),
    (
        "implicit-reconstruct-out-suffix",
        ["implicit", "reconstruct", "{onet_ckpt}", "{sphere}", "--out", "{out}/m.txt"],
        "--out",
    ),
    # dvr train / mesh / render
    ("dvr-train-missing-data", ["dvr", "train", "{out}/noscene", "--out", "{out}"], "noscene"),
    (
        "dvr-train-bad-renderer",
        ["dvr", "train", "{blender}", "--out", "{out}", "--renderer", "raster"],
        "raster",
    ),
    (
        "dvr-train-zero-camera",
        ["dvr", "train", "{zero_camera}", "--out", "{out}", "--quiet"],
        "{zero_camera}",
    ),
    (
        "dvr-train-steps-zero",
        ["dvr", "train", "{blender}", "--out", "{out}", "--steps", "0"],
        "--steps",
    ),
    (
        "dvr-mesh-missing-checkpoint",
        ["dvr", "mesh", "{out}/none.pt", "--out", "{out}/m.ply"],
        "none.pt",
    ),
    (
        "dvr-mesh-nerf-checkpoint",
        ["dvr", "mesh", "{nerf_ckpt}", "--out", "{out}/m.ply"],
        "{nerf_ckpt}",
    ),
    ("dvr-mesh-bad-suffix", ["dvr", "mesh", "{nerf_ckpt}", "--out", "{out}/m.txt"], "--out"),
    (
        "dvr-render-pickled-callable",
        ["dvr", "render", "{ckpt_pickled_callable}", "--out", "{out}"],
        "{ckpt_pickled_callable}",
    ),
    (
        "dvr-render-frames-zero",
        ["dvr", "render", "{nerf_ckpt}", "--out", "{out}", "--frames", "0"],
        "--frames",
    ),
    # gen train / eval / sample
    (
        "gen-train-unknown-model",
        ["gen", "train", "pixelsnail", "--data", "{empty_dir}", "--out", "{out}"],
        "pixelsnail",
    ),
    (
        "gen-train-missing-data",
        ["gen", "train", "bernoulli", "--data", "{out}/nodigits", "--out", "{out}"],
        "nodigits",
    ),
    (
        "gen-train-no-idx-files",
        ["gen", "train", "bernoulli", "--data", "{empty_dir}", "--out", "{out}"],
        "{empty_dir}",
    ),
    (
        "gen-train-batch-zero",
        [
            "gen",
            "train",
            "bernoulli",
            "--data",
            "{empty_dir}",
            "--out",
            "{out}",
            "--batch-size",
            "0",
        ],
        "--batch-size",
    ),
    (
        "gen-eval-missing-checkpoint",
        ["gen", "eval", "{out}/none.pt", "--data", "{empty_dir}"],
        "none.pt",
    ),
    (
        "gen-eval-steps-zero",
        ["gen", "eval", "{out}/none.pt", "--data", "{empty_dir}", "--steps", "0"],
        "--steps",
    ),
    (
        "gen-eval-nerf-checkpoint",
        ["gen", "eval", "{nerf_ckpt}", "--data", "{empty_dir}"],
        "{nerf_ckpt}",
    ),
    (
        "gen-sample-pickled-callable",
        ["gen", "sample", "{ckpt_pickled_callable}", "--out", "{out}/s.png"],
        "{ckpt_pickled_callable}",
    ),
    (
        "gen-sample-n-zero",
        ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.png", "--n", "0"],
        "--n",
    ),
    ("gen-sample-not-png", ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.jpg"], "--out"),
    (
        "gen-sample-temperature-zero",
        ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.png", "--temperature", "0"],
        "--temperature",
    ),
    (
        "gen-sample-eta-two",
        ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.png", "--steps", "5", "--eta", "2"],
        "--eta",
    ),
    (
        "gen-sample-eta-without-steps",
        ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.png", "--eta", "0.5"],
        "--eta",
    ),
    (
        "gen-eval-eta-negative",
        ["gen", "eval", "{out}/none.pt", "--data", "{empty_dir}", "--eta", "-1"],
        "--eta",
    ),
    (
        "gen-sample-label-ten",
        ["gen", "sample", "{nerf_ckpt}", "--out", "{out}/s.png", "--label", "10"],
        "--label",
    ),
    # data render-mesh
    (
        "data-render-mesh-missing",
        ["data", "render-mesh", "{out}/none.obj", "--out", "{out}/views"],
        "none.obj",
    ),
    (
        "data-render-mesh-garbage",
        ["data", "render-mesh", "{garbage_obj}", "--out", "{out}/views"],
        "{garbage_obj}",
    ),
    (
        "data-render-mesh-resolution-zero",
        ["data", "render-mesh", "{sphere}", "--out", "{out}/views", "--resolution", "0"],
        "--resolution",
    ),
    (
        "data-render-mesh-fov-180",
        ["data", "render-mesh", "{sphere}", "--out", "{out}/views", "--fov", "180"],
        "--fov",
    ),
    (
        "data-render-mesh-out-not-empty",
        ["data", "render-mesh", "{sphere}", "--out", "{blender}", "--quiet"],
        "{blender}",
    ),
    # seq
    (
        "seq-train-unknown-model",
        ["seq", "train", "wavenet", "--data", "{a_file}", "--out", "{out}"],
        "wavenet",
    ),
    (
        "seq-train-missing-data",
        ["seq", "train", "lstm", "--data", "{out}/none.txt", "--out", "{out}"],
        "none.txt",
    ),
    (
        "seq-train-empty-text",
        ["seq", "train", "lstm", "--data", "{empty_txt}", "--out", "{out}"],
        "{empty_txt}",
    ),
    (
        "seq-train-text-too-short",
        ["seq", "train", "lstm", "--data", "{a_file}", "--out", "{out}"],
        "{a_file}",
    ),
    (
        "seq-train-block-zero",
        ["seq", "train", "transformer", "--data", "{a_file}", "--out", "{out}", "--block", "0"],
        "--block",
    ),
    (
        "seq-train-heads-on-lstm",
        ["seq", "train", "lstm", "--data", "{a_file}", "--out", "{out}", "--heads", "2"],
        "--heads",
    ),
    (
        "seq-train-vrnn-on-mnist",
        ["seq", "train", "vrnn", "--data", "{empty_dir}", "--out", "{out}"],
        "vrnn",
    ),
    (
        "seq-eval-nerf-checkpoint",
        ["seq", "eval", "{nerf_ckpt}", "--data", "{a_file}"],
        "{nerf_ckpt}",
    ),
    (
        "seq-eval-missing-checkpoint",
        ["seq", "eval", "{out}/none.pt", "--data", "{a_file}"],
        "none.pt",
    ),
    (
        "seq-sample-pickled-callable",
        ["seq", "sample", "{ckpt_pickled_callable}"],
        "{ckpt_pickled_callable}",
    ),
    (
        "seq-sample-temperature-zero",
        ["seq", "sample", "{nerf_ckpt}", "--temperature", "0"],
        "--temperature",
    ),
    ("seq-sample-top-k-zero", ["seq", "sample", "{nerf_ckpt}", "--top-k", "0"], "--top-k"),
    # rl
    ("rl-train-unknown-algorithm", ["rl", "train", "foo", "--out", "{out}"], "ALGORITHM"),
    (
        "rl-train-unknown-env",
        ["rl", "train", "dqn", "--env", "NoSuchEnv-v0", "--out", "{out}"],
        "NoSuchEnv-v0",
    ),
    (
        "rl-train-tabular-on-continuous",
        ["rl", "train", "sarsa", "--env", "pendulum", "--out", "{out}"],
        "Pendulum-v1",
    ),
    (
        "rl-train-gamma-above-1",
        ["rl", "train", "dqn", "--gamma", "1.5", "--out", "{out}"],
        "--gamma",
    ),
    ("rl-train-out-is-a-file", ["rl", "train", "vi", "--out", "{a_file}"], "--out"),
    ("rl-eval-missing", ["rl", "eval", "{out}/none.pt"], "none.pt"),
    ("rl-eval-not-a-checkpoint", ["rl", "eval", "{a_file}"], "{a_file}"),
    ("rl-eval-nerf-checkpoint", ["rl", "eval", "{nerf_ckpt}"], "{nerf_ckpt}"),
    (
        "rl-eval-pickled-callable",
        ["rl", "eval", "{ckpt_pickled_callable}"],
        "{ckpt_pickled_callable}",
    ),
    ("rl-eval-episodes-zero", ["rl", "eval", "{nerf_ckpt}", "--episodes", "0"], "--episodes"),
    # view (a path it cannot show is reported while the rest are served: see tests/viewer)
    ("view-port-out-of-range", ["view", "--body", "--port", "70000"], "--port"),
    ("view-resolution-zero", ["view", "--body", "--resolution", "0"], "--resolution"),
    ("view-nothing-to-show", ["view"], "PATH"),
]


def _fill(text: str, paths: dict[str, Path]) -> str:
    return text.format(**{name: str(path) for name, path in paths.items()})


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` (or the file itself) with its contents."""
    if path.is_file():
        return {str(path): path.read_bytes()}
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "argv, culprit", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_exits_2_naming_the_culprit_and_leaves_nothing(
    inputs, tmp_path, capsys, argv, culprit
):
    out = tmp_path / "out"
    paths = {**inputs, "out": out}
    before = _tree(inputs["blender"].parent)  # every input, to see that none changed
    code = main([_fill(word, paths) for word in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and _fill(culprit, paths) in last, err
    assert "Traceback" not in err
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert _tree(inputs["blender"].parent) == before
    assert not inputs["marker"].exists()  # the pickled callable never ran


def test_pickled_callable_would_run_if_loaded_unsafely(inputs, tmp_path):
    """The crafted checkpoint does carry code: an unsafe torch.load runs it (so the case
    above tests a real refusal)."""
    marker = tmp_path / "ran.txt"
    path = _pickled_callable_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_cases_cover_every_command():
    """Every command of every group in the parser has at least one bad-input case."""
    commands = set()
    for action in build_parser()._subparsers._group_actions:
        for group, parser in action.choices.items():
            verbs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            commands |= {(group, verb) for v in verbs for verb in v.choices} or {(group,)}
    covered = {
        tuple(argv[:2]) if (argv[0], *argv[1:2]) in commands else (argv[0],) for _, argv, _ in CASES
    }
    assert commands - covered == set()
    assert len(commands) >= 26  # the parser really was walked


def test_good_inputs_of_the_table_work(inputs, tmp_path, capsys):
    """The same inputs with the bad part taken out succeed, so the cases fail for the
    reason they name."""
    assert (
        main(
            [
                "nerf",
                "mesh",
                str(inputs["nerf_ckpt"]),
                "--out",
                str(tmp_path / "m.ply"),
                "--resolution",
                "8",
                "--threshold",
                "-1e9",
                "--quiet",
            ]
        )
        == 2
    )  # below all
    assert (
        main(
            [
                "splat",
                "render",
                str(inputs["ply"]),
                "--out",
                str(tmp_path / "r"),
                "--width",
                "8",
                "--height",
                "6",
                "--frames",
                "1",
                "--background",
                "0.5",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "turntable.gif").is_file()
    assert (
        main(
            [
                "nerf",
                "render",
                str(inputs["nerf_ckpt"]),
                "--out",
                str(tmp_path / "n"),
                "--frames",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "n" / "turntable.gif").is_file()
    capsys.readouterr()
