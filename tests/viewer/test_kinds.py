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


@pytest.fixture(scope="module")
def fit_folder(tmp_path_factory):
    """A `mp3d body fit` output folder (a short fit of the built-in body's own keypoints)."""
    from mp3d.body import SMPL
    from mp3d.body.fit import SMPLifyConfig, fit_smplify
    from mp3d.body.keypoints import keypoints_from_joints, save_fit

    tmp_path = tmp_path_factory.mktemp("fit")
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
    return tmp_path / "fit", result


def test_fit_folder_with_keypoints(fit_folder):
    folder, result = fit_folder
    layer = open_path(folder, "/0")
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

    from mp3d.cameras import look_at
    from mp3d.viewer.cameras import pose_from_viewmat
    from mp3d.viewer.datasets import _look_through

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


def test_colmap_folder_with_points(tiny_demo_scene, tmp_path):
    from mp3d.cameras import invert_rigid
    from mp3d.data.blender import load_blender
    from mp3d.data.colmap import write_colmap_text
    from mp3d.io import save_image

    views = load_blender(tiny_demo_scene, "train", progress=False)
    names = [f"view_{i}.png" for i in range(len(views))]
    for name, image in zip(names, views.images):
        save_image(image, tmp_path / "images" / name)
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(50, 3))
    write_colmap_text(
        tmp_path,
        views.Ks,
        invert_rigid(views.c2ws),
        names,
        views.width,
        views.height,
        points,
        rng.uniform(size=(50, 3)),
    )
    layer = open_path(tmp_path, "/0")
    assert isinstance(layer, DatasetLayer) and layer.format == "colmap"
    assert len(layer.splits["images"]) == len(views) and layer.points.shape == (50, 3)
    np.testing.assert_allclose(layer.points, points, atol=1e-5)


def test_every_kind_attaches_to_a_viewer(tmp_path, tiny_demo_scene, fit_folder):
    """Each layer's scene nodes and controls are accepted by a real viser server."""
    import socket

    from mp3d.body.smpl import BUILTIN_BODY
    from mp3d.viewer.app import Viewer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    viewer = Viewer(port=port)
    try:
        paths = [
            write_mesh(tmp_path / "mesh.ply"),
            write_points(tmp_path / "cloud.npz"),
            write_splats(tmp_path / "splats.ply", n=100),
            tiny_demo_scene,
            fit_folder[0],
        ]
        for path in paths:
            assert viewer.add(path) is not None, viewer.errors
        assert viewer.add_layer(BodyLayer(BUILTIN_BODY, "/body")) is not None, viewer.errors
        assert viewer.add(tmp_path / "missing.obj") is None
        assert len(viewer.layers) == 6 and len(viewer.errors) == 1
        assert "missing.obj" in viewer.errors[0] and "missing.obj" in viewer.problems.content
        splats = viewer.layers[2]
        assert viewer.draw_control.options == ("off", splats.label)
        viewer.set_server_layer(splats)
        assert not splats.handle.visible and viewer.draw_control.value == splats.label
        viewer.set_server_layer(None)
        assert splats.handle.visible
        viewer.set_output("depth")
        with pytest.raises(ValueError, match="output must be one of rgb, depth, opacity"):
            viewer.set_output("normals")
        with pytest.raises(ValueError, match="up must be one of"):
            viewer.set_up("up")
        box = viewer.bounds()
        assert box.shape == (2, 3) and (box[1] > box[0]).all()
    finally:
        viewer.stop()


def test_wrapped_axis_angle_keeps_the_rotation():
    from mp3d.transforms import axis_angle_to_matrix
    from mp3d.viewer.bodies import wrapped_axis_angle

    rotations = np.array([[0.0, 0.0, 3.5], [0.3, -0.2, 0.1], [-2.5, -2.5, 0.0], [0.0, 0.0, 0.0]])
    wrapped = wrapped_axis_angle(rotations)
    assert (np.abs(wrapped) <= np.pi).all()
    np.testing.assert_allclose(wrapped[1], rotations[1])
    np.testing.assert_allclose(
        axis_angle_to_matrix(torch.as_tensor(wrapped)).numpy(),
        axis_angle_to_matrix(torch.as_tensor(rotations)).numpy(),
        atol=1e-9,
    )
