"""mp3d.body.export: posed meshes (OBJ/PLY) and animations (frames, poses.npz, .pc2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from mp3d.body import SMPL, save_animation, save_body_mesh
from mp3d.body.export import load_point_cache, save_point_cache


@pytest.fixture(scope="module")
def model() -> SMPL:
    return SMPL()


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_mesh_round_trip(model, tmp_path, suffix):
    out = model(body_pose=model.body_pose_from({"left_knee": (1.0, 0.0, 0.0)}))
    path = save_body_mesh(out.vertices[0], out.faces, tmp_path / f"body{suffix}")
    mesh = trimesh.load(path, process=False)
    np.testing.assert_allclose(mesh.vertices, out.vertices[0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, out.faces.numpy())
    assert mesh.is_watertight
    assert [p.name for p in tmp_path.iterdir()] == [f"body{suffix}"]  # no temporary left


def test_animation_writes_frames_poses_and_point_cache(model, tmp_path):
    angles = torch.linspace(0.0, 1.5, 3)
    pose = torch.zeros(3, 69)
    pose[:, 3 * 17 + 1] = -angles  # left elbow about y
    transl = torch.stack([angles, torch.zeros(3), torch.zeros(3)], dim=1)
    out = model(body_pose=pose, transl=transl)
    paths = save_animation(
        out.vertices,
        out.faces,
        tmp_path / "anim",
        fps=24,
        params={"body_pose": pose, "transl": transl},
    )
    assert [p.name for p in paths["meshes"]] == [
        "frame_0000.obj",
        "frame_0001.obj",
        "frame_0002.obj",
    ]
    last = trimesh.load(paths["meshes"][-1], process=False)
    np.testing.assert_allclose(last.vertices, out.vertices[-1].numpy(), atol=1e-6)
    poses = np.load(paths["params"])
    np.testing.assert_array_equal(poses["body_pose"], pose.numpy())
    assert float(poses["fps"]) == 24.0
    cache = load_point_cache(paths["point_cache"])
    np.testing.assert_array_equal(cache, out.vertices.numpy())
    assert sorted(p.name for p in (tmp_path / "anim").iterdir()) == [
        "animation.pc2",
        "frame_0000.obj",
        "frame_0001.obj",
        "frame_0002.obj",
        "poses.npz",
    ]


def test_point_cache_header(tmp_path):
    vertices = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    data = save_point_cache(vertices, tmp_path / "a.pc2").read_bytes()
    assert data[:12] == b"POINTCACHE2\0" and len(data) == 32 + 2 * 4 * 12
    assert np.frombuffer(data[12:20], "<i4").tolist() == [1, 4]
    assert np.frombuffer(data[28:32], "<i4").tolist() == [2]


def test_bad_export_inputs(tmp_path):
    faces = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match="vertices must have shape"):
        save_body_mesh(np.zeros((3, 2)), faces, tmp_path / "a.obj")
    with pytest.raises(ValueError, match="faces must index"):
        save_body_mesh(np.zeros((2, 3)), faces, tmp_path / "a.obj")
    with pytest.raises(ValueError, match="mesh path must end"):
        save_body_mesh(np.zeros((3, 3)), faces, tmp_path / "a.txt")
    with pytest.raises(ValueError, match=r"params\['betas'\] must have shape \[T=2"):
        save_animation(np.zeros((2, 3, 3)), faces, tmp_path, params={"betas": np.zeros((3, 10))})
    with pytest.raises(ValueError, match="mesh_format"):
        save_animation(np.zeros((2, 3, 3)), faces, tmp_path, mesh_format="stl")
    (tmp_path / "x.pc2").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a Point Cache 2"):
        load_point_cache(tmp_path / "x.pc2")
