"""The built-in body: file format, a closed mesh, sound rigging, and a deterministic script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.body import (
    BUILTIN_BODY,
    SMPL,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    load_model_file,
)
from mp3d.body.skeleton import parents_from_kintree

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_builtin_body.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_builtin_body", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def body() -> dict[str, np.ndarray]:
    return load_model_file(BUILTIN_BODY)


def test_file_is_small_and_in_the_official_format(body):
    assert BUILTIN_BODY.stat().st_size < 3e6
    n_vertices = body["v_template"].shape[0]
    assert 3000 <= n_vertices <= 12000
    assert body["shapedirs"].shape[1:] == (3, 13)
    assert body["posedirs"].shape == (n_vertices, 3, 207)
    assert body["J_regressor"].shape == (24, n_vertices)
    assert parents_from_kintree(body["kintree_table"]).tolist() == list(SMPL_PARENTS)
    stored = np.load(BUILTIN_BODY)
    assert stored["kintree_table"][0, 0] == 2**32 - 1  # the root as official files store it
    assert tuple(stored["joint_names"]) == SMPL_JOINT_NAMES


def test_mesh_is_closed_and_adult_sized(body):
    import trimesh

    mesh = trimesh.Trimesh(body["v_template"], body["f"], process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert len(mesh.split(only_watertight=False)) == 1 and mesh.euler_number == 2
    low, high = mesh.bounds
    assert 1.6 < high[1] - low[1] < 1.9  # height in metres, y up
    assert 1.5 < high[0] - low[0] < 1.9  # T-pose arm span along x
    assert 0.04 < mesh.volume < 0.1  # cubic metres: 40-100 kg at water's density


def test_weights_are_convex_and_follow_the_bones(body):
    weights = body["weights"]
    assert weights.min() >= 0 and np.abs(weights.sum(axis=1) - 1).max() < 1e-6
    vertices = body["v_template"]
    dominant = np.array(SMPL_JOINT_NAMES)[weights.argmax(axis=1)]
    forearm = (vertices[:, 0] > 0.5) & (vertices[:, 0] < 0.62)  # between elbow and wrist
    assert set(dominant[forearm]) == {"left_elbow"}
    shin = (vertices[:, 1] < -0.8) & (vertices[:, 1] > -0.95) & (vertices[:, 0] < 0)
    assert set(dominant[shin]) == {"right_knee"}
    assert (weights > 0).sum(axis=1).max() <= 4


def test_regressor_reproduces_the_rest_joints(body, script):
    regressor = body["J_regressor"]
    assert regressor.min() >= 0 and np.abs(regressor.sum(axis=1) - 1).max() < 1e-6
    joints = regressor @ body["v_template"]
    assert np.abs(joints - script.rest_joints()).max() < 1e-3
    # each joint from vertices near it, not from the whole body
    for j, joint in enumerate(joints):
        support = body["v_template"][regressor[j] > 0]
        assert np.linalg.norm(support - joint, axis=1).max() < 0.35, SMPL_JOINT_NAMES[j]


def test_pose_correctives_are_local_and_ignore_twist(body):
    posedirs = body["posedirs"].reshape(len(body["weights"]), 3, 23, 9)
    for k in range(1, 24):
        active = np.abs(posedirs[:, :, k - 1]).max(axis=(1, 2)) > 0
        assert active.any() and not (active & (body["weights"][:, k] == 0)).any()
        assert active.mean() < 0.35, SMPL_JOINT_NAMES[k]
    model = SMPL(body, dtype=torch.float64)
    elbow = SMPL_JOINT_NAMES.index("left_elbow")
    axis = model().joints[0, SMPL_JOINT_NAMES.index("left_wrist")] - model().joints[0, elbow]
    twist = model.body_pose_from({elbow: (1.2 * axis / axis.norm()).tolist()})
    bend = model.body_pose_from({elbow: (0.0, 1.2, 0.0)})

    def offsets(pose: torch.Tensor) -> torch.Tensor:
        return model(body_pose=pose).rest_vertices - model().rest_vertices

    assert float(offsets(twist).abs().max()) < 2e-4  # the bone's rest axis is nearly this one
    assert 2e-3 < float(offsets(bend).norm(dim=-1).max()) < 2e-2


def test_script_is_deterministic(script, tmp_path):
    first = script.make_body(voxel=0.05)
    second = script.make_body(voxel=0.05)
    assert set(first) == set(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    path = script.write_body(first, tmp_path / "coarse.npz")
    coarse = load_model_file(path)  # loads like any official file
    assert coarse["shapedirs"].shape[-1] == len(script.SHAPE_NAMES) >= 10
    model = SMPL(path)
    assert model(betas=torch.ones(2, 13)).vertices.shape == (2, len(first["v_template"]), 3)


@pytest.mark.slow
def test_script_regenerates_the_shipped_file(script):
    shipped = np.load(BUILTIN_BODY)
    body = script.make_body()
    for key, value in body.items():
        if key in ("f", "kintree_table"):
            np.testing.assert_array_equal(shipped[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(shipped[key], value, atol=1e-6, err_msg=key)
