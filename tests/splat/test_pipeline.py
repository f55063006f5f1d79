"""Gaussian-splatting jobs end to end at tiny sizes: fitting a Blender folder and a COLMAP
folder (initialised from points3D), held-out metrics and outputs, turntables, PLY renders."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.cameras import Orbit, invert_rigid, orbit_of_views, project
from mp3d.data.colmap import write_colmap_text
from mp3d.data.scene import detect_format, load_scene
from mp3d.io import save_image
from mp3d.splat import GaussianModel, SplatConfig
from mp3d.splat.export import orbit_of_gaussians
from mp3d.splat.model import SH_C0
from mp3d.splat.pipeline import fit_scene, initial_gaussians, render_ply, visual_hull_points

from .conftest import hidden_gaussians, render_scene

TINY = {"steps": 12, "densify_from": 3, "densify_every": 4, "sh_every": 5, "log_every": 5}


@pytest.fixture(scope="module")
def colmap_dir(tmp_path_factory):
    """A COLMAP text model of 9 views of known Gaussians; points3D = their means."""
    hidden = hidden_gaussians(n=30, seed=3)
    views = render_scene(hidden, n_views=9, size=20)
    root = tmp_path_factory.mktemp("colmap") / "scene"
    names = [f"img_{i:02d}.png" for i in range(len(views))]
    for name, image in zip(names, views.images):
        save_image(image, root / "images" / name)
    colours = (hidden.sh_dc[:, 0].detach() * SH_C0 + 0.5).clamp(0, 1)
    write_colmap_text(
        root,
        views.Ks,
        invert_rigid(views.c2ws.double()),
        names,
        20,
        20,
        hidden.means.detach(),
        colours,
    )
    return root, hidden, colours


@pytest.fixture(scope="module")
def blender_fit(tiny_demo_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("splat") / "fit"
    summary = fit_scene(
        tiny_demo_scene,
        out,
        SplatConfig(**TINY),
        init_points=120,
        turntable_frames=3,
        device="cpu",
        progress=False,
    )
    return summary, out


def test_fit_blender_scene_writes_everything(blender_fit, tiny_demo_scene):
    summary, out = blender_fit
    assert summary["format"] == "blender"
    assert summary["train_views"] == 4 and summary["eval_views"] == 2  # the test split
    assert summary["steps"] == 12 and summary["initial_gaussians"] == 120
    assert 0.0 < summary["psnr"] < 60.0 and -1.0 <= summary["ssim"] <= 1.0
    for name in (
        "checkpoint.pt",
        "point_cloud.ply",
        "metrics.json",
        "turntable.gif",
        "test/r_0_rgb.png",
        "test/r_1_depth.png",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(summary["psnr"])
    assert [view["name"] for view in metrics["views"]] == ["r_0", "r_1"]
    loaded = GaussianModel.load_ply(out / "point_cloud.ply")
    assert len(loaded) == summary["gaussians"] == len(summary["model"])
    torch.testing.assert_close(loaded.means, summary["model"].means.detach())
    with Image.open(out / "turntable.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (24, 24)
    with Image.open(out / "test" / "r_0_rgb.png") as image:
        assert image.size == (24, 24)


def test_blender_without_test_split_holds_out_every_8th_view(tiny_demo_scene, tmp_path):
    folder = tmp_path / "scene"
    folder.mkdir()
    meta = json.loads((tiny_demo_scene / "transforms_train.json").read_text())
    meta["frames"] = [
        dict(meta["frames"][i % 4], file_path=str(tiny_demo_scene / "train" / f"r_{i % 4}"))
        for i in range(10)
    ]
    (folder / "transforms_train.json").write_text(json.dumps(meta))
    train_views, eval_views, kind = load_scene(folder, progress=False)
    assert kind == "blender" and len(train_views) == 8 and len(eval_views) == 2
    with pytest.raises(ValueError, match="holdout must be an int >= 2, got 1"):
        load_scene(folder, holdout=1, progress=False)


def test_colmap_folder_starts_from_points3d(colmap_dir):
    root, hidden, colours = colmap_dir
    assert detect_format(root) == "colmap"
    train_views, eval_views, kind = load_scene(root, progress=False)
    assert kind == "colmap" and len(train_views) == 7 and len(eval_views) == 2
    assert eval_views.names == ["img_00.png", "img_08.png"]
    model = initial_gaussians(train_views, n_points=5)  # n_points: only for random starts
    assert len(model) == 30
    torch.testing.assert_close(model.means, hidden.means.detach(), atol=1e-5, rtol=0)
    # Colours went through COLMAP's 8-bit storage.
    torch.testing.assert_close(
        model.sh_dc[:, 0] * SH_C0 + 0.5, colours, atol=0.5 / 255 + 1e-6, rtol=0
    )


def test_fit_colmap_scene(colmap_dir, tmp_path):
    root, _, _ = colmap_dir
    out = tmp_path / "fit"
    summary = fit_scene(
        root,
        out,
        SplatConfig(steps=6, log_every=3),
        turntable_frames=2,
        device="cpu",
        progress=False,
    )
    assert summary["format"] == "colmap" and summary["initial_gaussians"] == 30
    assert summary["eval_views"] == 2 and (out / "test" / "img_08_rgb.png").is_file()
    assert (out / "point_cloud.ply").is_file() and (out / "turntable.gif").is_file()


def test_scene_folder_errors_name_what_is_missing(tmp_path, tiny_demo_scene):
    with pytest.raises(FileNotFoundError, match="transforms_train.json.*sparse/0"):
        detect_format(tmp_path)
    with pytest.raises(ValueError, match="init_points must be an int >= 2, got 1"):
        fit_scene(
            tiny_demo_scene, tmp_path / "out", SplatConfig(steps=1), init_points=1, progress=False
        )
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- turntables


def test_orbit_of_views_finds_the_demo_cameras_centre_and_up(gaussian_scene):
    orbit = orbit_of_views(gaussian_scene.views.c2ws)
    torch.testing.assert_close(orbit.centre, torch.zeros(3), atol=1e-4, rtol=0)
    assert orbit.radius == pytest.approx(4.0, abs=1e-4)
    assert float(orbit.up @ torch.tensor([0.0, 0.0, 1.0])) > 0.9


def test_orbit_cameras_look_at_the_centre_upright():
    orbit = Orbit(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, -1.0, 0.0]), 5.0, 30.0)
    viewmats = orbit.viewmats(6)
    K = torch.tensor([[20.0, 0, 10], [0, 20.0, 10], [0, 0, 1]])
    for viewmat in viewmats:
        eye = invert_rigid(viewmat)[:3, 3]
        assert float((eye - orbit.centre).norm()) == pytest.approx(5.0, abs=1e-4)
        pixels, _ = project(orbit.centre[None], viewmat, K)
        torch.testing.assert_close(pixels[0], torch.tensor([10.0, 10.0]), atol=1e-4, rtol=0)
        above, _ = project((orbit.centre + orbit.up)[None], viewmat, K)
        assert float(above[0, 1]) < 10.0  # up is up in the image (y grows downwards)
    with pytest.raises(ValueError, match="n_frames"):
        orbit.viewmats(0)


def test_render_ply_turntable(blender_fit, tmp_path):
    summary, out = blender_fit
    result = render_ply(
        out / "point_cloud.ply",
        tmp_path / "render",
        width=20,
        height=14,
        n_frames=3,
        device="cpu",
        progress=False,
    )
    assert result["gaussians"] == summary["gaussians"] and result["radius"] > 0
    frames = sorted((tmp_path / "render" / "frames").glob("*.png"))
    assert [f.name for f in frames] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    with Image.open(tmp_path / "render" / "turntable.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (20, 14)
    # Something is in view: not every pixel is the white background.
    with Image.open(frames[0]) as image:
        assert int(np.asarray(image.convert("L")).min()) < 250


def test_render_ply_bad_arguments(blender_fit, tmp_path):
    _, out = blender_fit
    ply = out / "point_cloud.ply"
    with pytest.raises(ValueError, match="width must be an int >= 1, got 0"):
        render_ply(ply, tmp_path, width=0, progress=False)
    with pytest.raises(ValueError, match="up must be one of"):
        render_ply(ply, tmp_path, up="z", progress=False)
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        render_ply(ply, tmp_path, radius=-1.0, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        render_ply(tmp_path / "missing.ply", tmp_path, progress=False)
    with pytest.raises(ValueError, match="fov_deg"):
        orbit_of_gaussians(GaussianModel.load_ply(ply), fov_deg=180.0)


def test_blender_start_is_carved_to_the_masks_visual_hull():
    # A compact object: 20 small opaque Gaussians within 0.3 of the origin.
    hidden = hidden_gaussians(n=20, seed=4)
    with torch.no_grad():
        hidden.means.mul_(0.5)
        hidden.log_scales.fill_(-3.0)
    views = render_scene(hidden, n_views=16)
    points = visual_hull_points(views, 300, torch.Generator().manual_seed(0))
    assert points.shape == (300, 3)
    viewmats = invert_rigid(views.c2ws.double()).float()
    for i in range(len(views)):  # every view that sees a point sees foreground there
        pixels, depth = project(points, viewmats[i], views.Ks[i])
        cols, rows = pixels.floor().long().unbind(-1)
        seen = (cols >= 0) & (cols < 24) & (rows >= 0) & (rows < 24) & (depth > 0)
        alphas = views.alphas[i, rows.clamp(0, 23), cols.clamp(0, 23)]
        assert bool((alphas[seen] > 0.01).all())
    carved = initial_gaussians(views, n_points=300, seed=2)
    uniform = initial_gaussians(views, n_points=300, seed=2, carve=False)
    assert len(carved) == len(uniform) == 300
    assert float(carved.means.detach().norm(dim=-1).max()) < 0.8
    assert float(uniform.means.detach().norm(dim=-1).max()) > 1.2
    # Empty masks leave no hull: the start falls back to the whole box.
    empty = dataclasses.replace(views, alphas=torch.zeros_like(views.alphas))
    assert len(visual_hull_points(empty, 50, max_rounds=2)) == 0
    assert float(initial_gaussians(empty, n_points=50).means.detach().norm(dim=-1).max()) > 1.2
