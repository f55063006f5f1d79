"""Blender reader: generated scene, real lego views when present, and bad files."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.cameras import project
from mp3d.data.blender import load_blender, parse_background


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_reads_generated_scene(tiny_demo_scene, split):
    scene = load_blender(tiny_demo_scene, split=split, progress=False)
    n = {"train": 4, "val": 2, "test": 2}[split]
    assert len(scene) == n and scene.images.shape == (n, 24, 24, 3)
    assert scene.images.dtype == torch.float32
    assert 0.0 <= float(scene.images.min()) and float(scene.images.max()) <= 1.0
    assert scene.alphas.shape == (n, 24, 24) and float(scene.alphas.max()) > 0.99
    assert (scene.near, scene.far) == (2.0, 6.0)
    meta = json.loads((tiny_demo_scene / f"transforms_{split}.json").read_text())
    for i in range(n):
        camera = scene.camera(i)
        # Camera centre as written (OpenGL c2w translation) and the origin in view centre.
        gl = torch.tensor(meta["frames"][i]["transform_matrix"])
        torch.testing.assert_close(scene.c2ws[i, :3, 3], gl[:3, 3])
        uv, depth = project(torch.zeros(1, 3), camera.viewmat, camera.K)
        torch.testing.assert_close(uv, torch.tensor([[12.0, 12.0]]), atol=1e-4, rtol=0)
        assert float(depth) == pytest.approx(4.0, rel=1e-5)


def test_background_and_downscale(tiny_demo_scene):
    white = load_blender(tiny_demo_scene, background="white", progress=False)
    black = load_blender(tiny_demo_scene, background=(0, 0, 0), progress=False)
    empty = white.alphas == 0
    assert empty.any()
    assert bool((white.images[empty] == 1).all()) and bool((black.images[empty] == 0).all())
    half = load_blender(tiny_demo_scene, downscale=2, background="black", progress=False)
    assert half.images.shape == (4, 12, 12, 3)
    blocks = black.images.reshape(4, 12, 2, 12, 2, 3).mean(dim=(2, 4))
    torch.testing.assert_close(half.images, blocks, atol=1e-6, rtol=0)
    torch.testing.assert_close(half.Ks[0, :2], black.Ks[0, :2] / 2)


def test_reads_lego(lego_dir):
    scene = load_blender(lego_dir, split="train", downscale=8, progress=False)
    assert len(scene) == 87 and scene.images.shape == (87, 100, 100, 3)
    focal = 0.5 * 100 / math.tan(0.5 * 0.6911112070083618)
    torch.testing.assert_close(
        scene.Ks[0], torch.tensor([[focal, 0, 50], [0, focal, 50], [0, 0, 1]])
    )
    # Lego cameras look at the scene centre from about 4 units away.
    for i in (0, 40, 86):
        uv, depth = project(torch.zeros(1, 3), scene.camera(i).viewmat, scene.Ks[i])
        assert abs(float(uv[0, 0]) - 50) < 1 and abs(float(uv[0, 1]) - 50) < 1
        assert 3.5 < float(depth) < 4.5
    corners = scene.images[:, 0, 0]
    torch.testing.assert_close(corners, torch.ones_like(corners))  # white background
    assert scene.names[0] == "r_1"


def _copy_scene(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_json_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="transforms_train.json"):
        load_blender(tmp_path, progress=False)


def test_malformed_json_names_file(tmp_path):
    (tmp_path / "transforms_train.json").write_text("{ not json")
    with pytest.raises(ValueError, match="transforms_train.json: malformed JSON"):
        load_blender(tmp_path, progress=False)


def test_json_without_intrinsics_names_file(tiny_demo_scene, tmp_path):
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    meta = json.loads((scene / "transforms_train.json").read_text())
    del meta["camera_angle_x"]
    (scene / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="transforms_train.json: needs 'camera_angle_x'"):
        load_blender(scene, progress=False)


def test_missing_image_names_file(tiny_demo_scene, tmp_path):
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    (scene / "train" / "r_2.png").unlink()
    with pytest.raises(FileNotFoundError, match="r_2.png"):
        load_blender(scene, progress=False)


def test_images_of_different_sizes_name_file(tiny_demo_scene, tmp_path):
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    Image.fromarray(np.zeros((20, 24, 4), dtype=np.uint8)).save(scene / "train" / "r_1.png")
    with pytest.raises(ValueError, match="r_1.png: image size 24x20 differs"):
        load_blender(scene, progress=False)


def test_bad_arguments(tiny_demo_scene):
    with pytest.raises(ValueError, match="split must be one of"):
        load_blender(tiny_demo_scene, split="training", progress=False)
    with pytest.raises(ValueError, match="downscale must be an int >= 1"):
        load_blender(tiny_demo_scene, downscale=0, progress=False)
    with pytest.raises(ValueError, match="background must be"):
        load_blender(tiny_demo_scene, background="pink", progress=False)


def test_focal_and_principal_point_keys(tiny_demo_scene, tmp_path):
    """fl_x / fl_y / cx / cy override camera_angle_x, and scale with the downscale factor."""
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    meta = json.loads((scene / "transforms_train.json").read_text())
    del meta["camera_angle_x"]
    meta.update({"fl_x": 30.0, "fl_y": 32.0, "cx": 11.0, "cy": 13.0})
    meta["frames"][1]["fl_x"] = 40.0  # per-frame values win
    (scene / "transforms_train.json").write_text(json.dumps(meta))
    loaded = load_blender(scene, downscale=2, progress=False)
    torch.testing.assert_close(
        loaded.Ks[0], torch.tensor([[15.0, 0, 5.5], [0, 16.0, 6.5], [0, 0, 1]])
    )
    assert float(loaded.Ks[1, 0, 0]) == 20.0


def _edit_meta(scene, edit) -> None:
    path = scene / "transforms_train.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _set_matrix(index, matrix):
    def edit(meta):
        meta["frames"][index]["transform_matrix"] = matrix

    return edit


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.zeros((4, 4)).tolist(), "last row must be"),
        ([[0, 0, 0, 0]] * 3 + [[0, 0, 0, 1]], "not a rigid camera pose"),
        ([[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "off by 3"),
        ([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not a rigid camera pose"),
        ([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], r"reflection \(det -1\)"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], "last row must be"),
        ([[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "must be finite"),
        ([[1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "must be 4 rows of 4 numbers"),
        ([[1, 0, 0, "x"], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "must be 4 rows of 4 numbers"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], "must be 4x4, got shape 3x4"),
    ],
)
def test_degenerate_camera_names_file_and_frame(tiny_demo_scene, tmp_path, matrix, message):
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    _edit_meta(scene, _set_matrix(2, matrix))
    with pytest.raises(ValueError, match=message) as error:
        load_blender(scene, progress=False)
    assert "transforms_train.json: frame 2 (./train/r_2)" in str(error.value)


def test_nearly_rigid_camera_is_accepted(tiny_demo_scene, tmp_path):
    """Matrices written with a few decimals are rigid up to rounding: still accepted."""
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    _edit_meta(
        scene,
        lambda meta: [
            f.update(transform_matrix=np.round(f["transform_matrix"], 4).tolist())
            for f in meta["frames"]
        ],
    )
    assert len(load_blender(scene, progress=False)) == 4


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m.update(camera_angle_x=-0.5),
            r"transforms_train.json: 'camera_angle_x' must be a finite number > 0 and < 3.14159, "
            r"got -0.5",
        ),
        (lambda m: m.update(camera_angle_x="wide"), "'camera_angle_x' must be a finite number"),
        (lambda m: m["frames"][1].update(fl_x=0), r"frame 1: 'fl_x' must be a finite number > 0"),
        (lambda m: m.update(cx=float("nan")), "'cx' must be a finite number"),
        (lambda m: m.update(near="close"), "'near' must be a finite number > 0"),
        (lambda m: m.update(aabb=[1, 2, 3]), "'aabb' must hold 6 finite numbers"),
        (lambda m: m["frames"].__setitem__(0, 7), "frame 0 needs 'file_path'"),
        (lambda m: m["frames"][0].update(file_path=3), "frame 0: 'file_path' must be a non-empty"),
    ],
)
def test_bad_values_name_file(tiny_demo_scene, tmp_path, edit, message):
    scene = _copy_scene(tiny_demo_scene, tmp_path / "s")
    _edit_meta(scene, edit)
    with pytest.raises(ValueError, match=message):
        load_blender(scene, progress=False)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("white", [1, 1, 1]),
        ("Black", [0, 0, 0]),
        ("0.5", [0.5] * 3),
        (0.25, [0.25] * 3),
        ("0.1,0.2,0.3", [0.1, 0.2, 0.3]),
        ((0, 1, 0), [0, 1, 0]),
    ],
)
def test_parse_background(given, expected):
    torch.testing.assert_close(parse_background(given), torch.tensor(expected).float())


@pytest.mark.parametrize(
    "given", ["pink", "nan", "1.5", "-0.1", "0.1,0.2", float("nan"), [0, 0, 2], "inf", ""]
)
def test_parse_background_refuses(given):
    with pytest.raises(ValueError, match="background must be one of"):
        parse_background(given)


def _with_depths(scene_dir, root, edit=None):
    """A copy of the scene whose train frames name depth maps 1 + x/W (0 in a corner)."""
    scene = _copy_scene(scene_dir, root / "scene")
    meta_path = scene / "transforms_train.json"
    meta = json.loads(meta_path.read_text())
    for i, frame in enumerate(meta["frames"]):
        width, height = Image.open(scene / f"{frame['file_path']}.png").size
        depth = np.tile(1.0 + np.arange(width, dtype=np.float32) / width, (height, 1))
        depth[0, 0] = 0.0  # unknown
        np.save(scene / f"depth_{i}.npy", depth)
        frame["depth_file_path"] = f"./depth_{i}.npy"
    if edit is not None:
        edit(scene, meta)
    meta_path.write_text(json.dumps(meta))
    return scene


def test_depth_maps_load_and_downscale_by_their_known_values(tiny_demo_scene, tmp_path):
    scene_dir = _with_depths(tiny_demo_scene, tmp_path)
    full = load_blender(scene_dir, progress=False)
    assert full.depths.shape == full.alphas.shape
    assert full.depths[0, 0, 0] == 0 and full.depths[0, 3, 5] == pytest.approx(1 + 5 / 24)
    half = load_blender(scene_dir, downscale=2, progress=False)
    assert half.depths.shape == half.alphas.shape
    # The corner block averages its three known depths, ignoring the unknown one.
    assert half.depths[0, 0, 0] == pytest.approx((1 + 1 / 24) * 2 / 3 + 1 / 3, rel=1e-6)
    assert half.depths[0, 1, 1] == pytest.approx(1 + 2.5 / 24, rel=1e-6)
    assert torch.equal(full.subset([1]).depths[0], full.depths[1])
    plain = load_blender(tiny_demo_scene, progress=False)
    assert plain.depths is None and plain.subset([0]).depths is None


@pytest.mark.parametrize(
    "edit, culprit",
    [
        (lambda scene, meta: (scene / "depth_1.npy").unlink(), "depth_1.npy"),
        (lambda scene, meta: np.save(scene / "depth_0.npy", np.ones((3, 3))), "depth_0.npy"),
        (lambda scene, meta: np.save(scene / "depth_2.npy", -np.ones((24, 24))), "depth_2.npy"),
        (lambda scene, meta: meta["frames"][1].pop("depth_file_path"), "frame 1"),
        (lambda scene, meta: meta.update(depth_type="ray"), "depth_type"),
    ],
    ids=["missing", "wrong-shape", "negative", "not-every-frame", "ray-depth"],
)
def test_bad_depth_maps_name_the_file(tiny_demo_scene, tmp_path, edit, culprit):
    scene_dir = _with_depths(tiny_demo_scene, tmp_path, edit)
    with pytest.raises((ValueError, FileNotFoundError), match=culprit):
        load_blender(scene_dir, progress=False)
