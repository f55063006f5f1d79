"""The built-in demo scene: deterministic, well framed, consistent with its geometry."""

from __future__ import annotations

import filecmp
import math

import pytest
import torch

from mp3d.cameras import intrinsics_from_fov
from mp3d.data import demo


def test_demo_is_deterministic(tiny_demo_scene, tmp_path):
    again = demo.write_demo_scene(
        tmp_path / "again", n_train=4, n_val=2, n_test=2, resolution=24, progress=False
    )
    comparison = filecmp.dircmp(tiny_demo_scene, again)
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    for split in ("train", "val", "test"):
        sub = filecmp.dircmp(tiny_demo_scene / split, again / split)
        assert sorted(sub.same_files) == sorted(p.name for p in (again / split).iterdir())


def test_rewrite_replaces_folder_whole(tmp_path):
    out = tmp_path / "scene"
    demo.write_demo_scene(out, n_train=3, n_val=1, n_test=1, resolution=8, progress=False)
    demo.write_demo_scene(out, n_train=2, n_val=1, n_test=1, resolution=8, progress=False)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["r_0.png", "r_1.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]  # no staging folder left


def test_sdf_of_primitives():
    # The sphere's top is at z = (0.3 + 0.45) * scale; the slab's bottom at -0.5 * scale.
    top = torch.tensor([[0.0, 0.0, 0.75 * demo.OBJECT_SCALE]])
    bottom = torch.tensor([[0.0, 0.0, -0.5 * demo.OBJECT_SCALE]])
    for point in (top, bottom):
        sdf, albedo = demo.demo_sdf(point)
        assert abs(float(sdf)) < 1e-5
        assert albedo.shape == (1, 3) and bool(((albedo >= 0) & (albedo <= 1)).all())
    far, _ = demo.demo_sdf(torch.tensor([[0.0, 0.0, 3.0]]))
    assert float(far) == pytest.approx(3.0 - 0.75 * demo.OBJECT_SCALE, abs=1e-5)


def test_rendered_silhouette_matches_geometry():
    """Looking straight down, the centre pixel hits the sphere (opaque) and a corner misses."""
    K = intrinsics_from_fov(demo.FOV_X, 32, 32)
    c2w = demo.orbit_c2ws(torch.tensor([[0.0, 0.001, 1.0]], dtype=torch.float64))[0].float()
    rgb, alpha = demo.render_demo_view(K, c2w, 32, 32)
    assert float(alpha[16, 16]) > 0.999 and float(alpha[0, 0]) < 1e-6
    assert rgb.shape == (32, 32, 3) and float(rgb.max()) <= 1.0


def test_turntable_frames():
    frames = demo.render_turntable(n_frames=3, resolution=16, progress=False)
    assert frames.shape == (3, 16, 16, 3)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert not torch.equal(frames[0], frames[1])


def test_view_directions_are_unit_and_spread():
    d = demo.view_directions(64)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    assert float(d[:, 2].min()) >= -0.35 - 1e-9 and float(d[:, 2].max()) <= 1.0
    azimuth = torch.atan2(d[:, 1], d[:, 0])
    assert float(azimuth.max() - azimuth.min()) > 1.5 * math.pi


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="resolution must be an int >= 1"):
        demo.write_demo_scene(tmp_path / "x", resolution=0)
    with pytest.raises(ValueError, match="n_train must be an int >= 1"):
        demo.write_demo_scene(tmp_path / "x", n_train=2.5)
