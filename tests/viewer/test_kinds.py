"""Opening paths as layers without a browser: each kind, its bounds and arrays, and the errors
that name the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mp3d.viewer.bodies import BodyLayer, FitLayer, backprojected_keypoints
from mp3d.viewer.datasets import DatasetLayer, thumbnail_downscale
from mp3d.viewer.geometry import MeshLayer, PointCloudLayer
from mp3d.viewer.kinds import open_path, ply_kind
from mp3d.viewer.splats import SplatLayer, splat_arrays

from tests.viewer.scenes import SPLAT_COLOURS, write_mesh, write_points, write_splats

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mesh_point_cloud_and_splat_files(tmp_path):
    mesh = open_path(write_mesh(tmp_path / "sphere.ply"), "/0")
    assert isinstance(mesh, MeshLayer) and mesh.has_vertex_colours()
    np.testing.assert_allclose(mesh.bounds(), [[-1, -1, -1], [1, 1, 1]], atol=1e-6)
    points = open_path(write_points(tmp_path / "cloud.npz"), "/1")
    assert isinstance(points, PointCloudLayer) and points.colours.dtype == np.uint8
    assert points.colours.shape == (2000, 3) and points.colours.max() > 200
    splats = open_path(write_splats(tmp_path / "splats.ply", n=500), "/2")
    assert isinstance(splats, SplatLayer) and len(splats.model) == 500
    assert ply_kind(tmp_path / "splats.ply") == "splats"
    assert ply_kind(tmp_path / "sphere.ply") == "mesh"


def test_splat_arrays_band_zero_colour_and_covariance(tmp_path):
    layer = open_path(write_splats(tmp_path / "splats.ply", n=50), "/0")
    arrays = splat_arrays(layer.model)
    expected = np.where(arrays["centers"][:, :1] > 0, *SPLAT_COLOURS.numpy()[:, None])
    np.testing.assert_allclose(arrays["rgbs"], expected, atol=1e-5)
    np.testing.assert_allclose(arrays["opacities"], 0.9, atol=1e-5)
    # Isotropic scale 0.05: covariance 0.0025 I whatever the rotation.
    expected = np.tile(0.0025 * np.eye(3), (50, 1, 1))
    np.testing.assert_allclose(arrays["covariances"], expected, atol=1e-6)
    assert arrays["centers"].shape == (50, 3)


def test_anisotropic_covariance_follows_the_quaternion():
    from mp3d.splat.model import GaussianModel

    half = float(np.sqrt(0.5))
    model = GaussianModel(
        torch.zeros(1, 3),
        torch.tensor([[half, 0.0, 0.0, half]]),  # 90 degrees about z: x -> y
        torch.log(torch.tensor([[2.0, 1.0, 1.0]])),
        torch.zeros(1),
        torch.zeros(1, 1, 3),
    )
    covariance = splat_arrays(model)["covariances"][0]
    np.testing.assert_allclose(covariance, np.diag([1.0, 4.0, 1.0]), atol=1e-5)


def test_body_layer_poses_through_the_sliders():
    layer = BodyLayer("builtin", "/0")
    rest = layer.vertices.copy()
    elbow = layer.model.joint_names.index("left_elbow")
    layer.set_value("pose", elbow, 2, 90.0)
    moved = np.linalg.norm(layer.vertices - rest, axis=1)
    assert moved.max() > 0.1 and np.median(moved) < 1e-6  # the forearm moves, the rest does not
    layer.set_value("shape", 0, 0, 2.0)
    assert not np.allclose(layer.vertices, rest)
    with pytest.raises(ValueError, match="group must be 'shape' or 'pose'"):
        layer.set_value("size", 0, 0, 1.0)


def test_fit_folder_with_keypoints(tmp_path):
    from mp3d.body import SMPL
    from mp3d.body.fit import SMPLifyConfig, fit_smplify
    from mp3d.body.keypoints import keypoints_from_joints, save_fit

    model = SMPL()
    with torch.no_grad():
        joints = model().joints[0]
    keypoint_file = keypoints_from_joints(joints, model.joint_names, width=128, height=128)
    (tmp_path / "kp.json").write_text(json.dumps(keypoint_file.to_json()))
    keypoints, confidences = keypoint_file.for_model(model.joint_names)
    config = SMPLifyConfig(yaw_starts=1, torso_iterations=5, iterations=(5, 5, 5))
    result = fit_smplify(model, keypoints, keypoint_file.K, confidences=confidences, config=config)
    info = {"keypoints": str(tmp_path / "kp.json"), "model": "built-in body"}
    save_fit(result, model, tmp_path / "fit", info=info)
    layer = open_path(tmp_path / "fit", "/0")
    assert isinstance(layer, FitLayer) and layer.keypoint_file is not None
    np.testing.assert_allclose(layer.joints, result.joints[0].numpy(), atol=1e-4)


def test_backprojection_inverts_projection():
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    viewmat = np.eye(4)
    viewmat[:3, 3] = [0.1, -0.2, 2.0]
    points = np.array([[0.0, 0.0, 0.0], [0.3, -0.1, 0.5]])
    camera = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    pixels = (camera @ K.T)[:, :2] / camera[:, 2:]
    np.testing.assert_allclose(
        backprojected_keypoints(pixels, K, viewmat, camera[:, 2]), points, atol=1e-9
    )


def test_dataset_folder(tiny_demo_scene):
    layer = open_path(tiny_demo_scene, "/0")
    assert isinstance(layer, DatasetLayer)
    assert sum(len(v) for v in layer.splits.values()) == 8
    assert layer.up() == "+z" and layer.frustum_scale() > 0
    assert thumbnail_downscale(800, 600) == 7 and thumbnail_downscale(64, 64) == 1


def test_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        open_path(tmp_path / "missing.ply", "/0")
    (tmp_path / "broken.ply").write_bytes(b"not a ply at all")
    with pytest.raises(ValueError, match=r"broken.ply: not a PLY file"):
        open_path(tmp_path / "broken.ply", "/0")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes.txt: cannot show a .txt file"):
        open_path(tmp_path / "notes.txt", "/0")
    from mp3d.io import write_checkpoint

    write_checkpoint(tmp_path / "other.pt", "mp3d.onet", 1, {"x": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"other.pt: unknown checkpoint kind 'mp3d.onet'"):
        open_path(tmp_path / "other.pt", "/0")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: not a folder the viewer knows"):
        open_path(tmp_path / "empty", "/0")


def test_clicking_a_frustum_looks_through_its_camera():
    from types import SimpleNamespace

    from mp3d.viewer.cameras import pose_from_viewmat
    from mp3d.viewer.datasets import _look_through

    from mp3d.cameras import look_at

    class Client:
        def __init__(self) -> None:
            self.camera = SimpleNamespace(fov=1.0, wxyz=None, position=None, look_at=None)

        def atomic(self):
            import contextlib

            return contextlib.nullcontext()

    wxyz, position = pose_from_viewmat(look_at(torch.tensor([0.0, -4.0, 0.0]), torch.zeros(3)))
    client = Client()
    _look_through(wxyz, position, 0.7, 0.2)(SimpleNamespace(client=client))
    assert client.camera.fov == 0.7
    np.testing.assert_allclose(client.camera.position, [0.0, -4.0, 0.0], atol=1e-6)
    # It looks along the camera's +z axis (towards the origin), two units ahead.
    np.testing.assert_allclose(client.camera.look_at, [0.0, -2.0, 0.0], atol=1e-5)
