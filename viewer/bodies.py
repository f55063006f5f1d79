"""SMPL bodies: the built-in body or an official model file, with sliders for the shape and
for each joint's pose, posed live through the LBS kernel (mp3d.body.SMPL); and the result of
`mp3d body fit` (DIR/params.npz, DIR/fit.json) shown over its keypoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from mp3d.viewer.layers import Layer, bounds_of

__all__ = [
    "MAX_SHAPE_SLIDERS",
    "BodyLayer",
    "FitLayer",
    "backprojected_keypoints",
    "wrapped_axis_angle",
]

MAX_SHAPE_SLIDERS = 10  # betas beyond the first 10 change little
SHAPE_RANGE = 3.0  # standard deviations
POSE_RANGE_DEG = 180.0
BODY_COLOUR = (200, 170, 150)
JOINT_COLOUR = (220, 40, 40)
KEYPOINT_COLOUR = (30, 160, 60)


class BodyLayer(Layer):
    """An SMPL model posed by GUI sliders: betas, and an axis-angle rotation (x, y, z
    components in degrees) for every joint, the root's being the global orientation."""

    kind = "body"

    def __init__(self, path, name, model=None, params: dict[str, np.ndarray] | None = None):
        super().__init__(path, name)
        from mp3d.body import SMPL

        self.model = model if model is not None else SMPL()
        n_shape = min(self.model.n_betas, MAX_SHAPE_SLIDERS)
        params = params or {}
        self.betas = np.zeros(n_shape)
        given = np.asarray(params.get("betas", np.zeros(0)), dtype=np.float64).reshape(-1)
        self.betas[: min(len(given), n_shape)] = given[:n_shape]
        self.extra_betas = given[n_shape:]  # fitted betas beyond the sliders, kept as they are
        pose = np.zeros((self.model.n_joints, 3))
        if "global_orient" in params:
            pose[0] = np.asarray(params["global_orient"], dtype=np.float64).reshape(3)
        if "body_pose" in params:
            pose[1:] = np.asarray(params["body_pose"], dtype=np.float64).reshape(-1, 3)
        self.pose = wrapped_axis_angle(pose)  # [J,3] axis-angle, radians, angles <= pi
        self.transl = np.asarray(params.get("transl", np.zeros(3)), dtype=np.float64).reshape(3)
        self.mesh_handle = None
        self.sliders: dict[tuple[str, int, int], object] = {}
        self.vertices, self.joints = self.posed()

    @classmethod
    def from_model_file(cls, path: str | Path, name: str) -> BodyLayer:
        """The body of an official SMPL-family model file (.pkl or .npz)."""
        from mp3d.body import SMPL

        return cls(path, name, SMPL(path))

    @property
    def label(self) -> str:
        from mp3d.body.smpl import BUILTIN_BODY

        builtin = self.model.model_path is None or self.model.model_path == BUILTIN_BODY
        return f"{self.kind}: {'built-in' if builtin else self.path.name}"

    @torch.no_grad()
    def posed(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices [V,3] and joints [J,3] (model units) of the current shape and pose."""
        like = self.model.v_template
        betas = np.concatenate([self.betas, self.extra_betas])
        output = self.model(
            betas=torch.as_tensor(betas, dtype=like.dtype)[None],
            body_pose=torch.as_tensor(self.pose[1:].reshape(1, -1), dtype=like.dtype),
            global_orient=torch.as_tensor(self.pose[:1], dtype=like.dtype),
            transl=torch.as_tensor(self.transl, dtype=like.dtype)[None],
        )
        return output.vertices[0].float().numpy(), output.joints[0].float().numpy()

    def bounds(self) -> np.ndarray | None:
        return bounds_of(self.vertices)

    def up(self) -> str:
        return "+y"  # SMPL's rest pose stands along +y

    def attach(self, server) -> None:
        super().attach(server)
        faces = self.model.faces.cpu().numpy().astype(np.uint32)
        self.mesh_handle = server.scene.add_mesh_simple(
            f"{self.name}/mesh", self.vertices, faces, color=BODY_COLOUR
        )
        self.joint_handle = server.scene.add_point_cloud(
            f"{self.name}/joints", self.joints, JOINT_COLOUR, point_size=0.02
        )
        with server.gui.add_folder(self.label, expand_by_default=False):
            with server.gui.add_folder("shape"):
                for i in range(len(self.betas)):
                    self._slider(server, "shape", i, 0, f"beta {i}", -SHAPE_RANGE, SHAPE_RANGE)
            with server.gui.add_folder("pose (degrees)", expand_by_default=False):
                for j, joint in enumerate(self.model.joint_names):
                    with server.gui.add_folder(joint, expand_by_default=False):
                        for axis, letter in enumerate("xyz"):
                            self._slider(
                                server, "pose", j, axis, letter, -POSE_RANGE_DEG, POSE_RANGE_DEG
                            )
            server.gui.add_button("rest pose").on_click(lambda _: self.reset())

    def _slider(self, server, group: str, index: int, axis: int, label: str, lo, hi) -> None:
        value = self.betas[index] if group == "shape" else math.degrees(self.pose[index, axis])
        value = min(max(float(value), lo), hi)  # fitted shapes may lie beyond the sliders
        slider = server.gui.add_slider(
            label, min=lo, max=hi, step=0.01 if group == "shape" else 1.0, initial_value=value
        )
        self.sliders[(group, index, axis)] = slider

        @slider.on_update
        def _(_event) -> None:
            self.set_value(group, index, axis, slider.value)

    def set_value(self, group: str, index: int, axis: int, value: float) -> None:
        """Sets beta `index` (group "shape") or the `axis` component, in degrees, of joint
        `index`'s rotation (group "pose"), and re-poses the mesh in the browser."""
        if group == "shape":
            self.betas[index] = float(value)
        elif group == "pose":
            self.pose[index, axis] = math.radians(float(value))
        else:
            raise ValueError(f"group must be 'shape' or 'pose', got {group!r}")
        self.update()

    def update(self) -> None:
        """Re-poses the body and sends the new vertices and joints to the browser."""
        self.vertices, self.joints = self.posed()
        if self.mesh_handle is not None:
            self.mesh_handle.vertices = self.vertices
            self.joint_handle.points = self.joints

    def reset(self) -> None:
        """Rest pose and mean shape (the sliders follow)."""
        for slider in self.sliders.values():
            slider.value = 0.0  # its callback sets the value and re-poses


def wrapped_axis_angle(rotations: np.ndarray) -> np.ndarray:
    """Axis-angle vectors [...,3] (radians) with angles above pi replaced by the same
    rotations turned the other way (angle - 2 pi), so each component lies in [-pi, pi]."""
    rotations = np.asarray(rotations, dtype=np.float64)
    angles = np.linalg.norm(rotations, axis=-1, keepdims=True)
    factor = np.where(angles > math.pi, 1.0 - 2.0 * math.pi / np.maximum(angles, 1e-12), 1.0)
    return rotations * factor


def backprojected_keypoints(
    keypoints: np.ndarray, K: np.ndarray, viewmat: np.ndarray, depths: np.ndarray
) -> np.ndarray:
    """World points [J,3] on the rays through pixels keypoints [J,2] (K [3,3], world-to-
    camera viewmat [4,4]) at camera depths z [J]: where the fitted joints would lie if they
    projected exactly onto their keypoints."""
    pixels = np.concatenate([keypoints, np.ones((len(keypoints), 1))], axis=1)
    camera = np.linalg.solve(K, pixels.T).T * depths[:, None]
    c2w = np.linalg.inv(viewmat)
    return camera @ c2w[:3, :3].T + c2w[:3, 3]


class FitLayer(BodyLayer):
    """A fitted body (`mp3d body fit` output) posed by its parameters, its fitted joints,
    and its 2D keypoints lifted onto their camera rays at the fitted joints' depths, joined
    to the joints by lines (the reprojection residuals), with the camera's frustum."""

    kind = "body fit"

    @classmethod
    def from_folder(cls, path: str | Path, name: str) -> FitLayer:
        """The fit in DIR (params.npz; fit.json names the model and the keypoints file)."""
        from mp3d.body import SMPL

        path = Path(path)
        summary = _read_summary(path / "fit.json")
        try:
            with np.load(path / "params.npz", allow_pickle=False) as data:
                params = {key: data[key] for key in data.files if key != "joint_names"}
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"{path / 'params.npz'}: not a readable fit ({error})") from error
        missing = [k for k in ("betas", "body_pose", "global_orient", "transl") if k not in params]
        if missing:
            raise ValueError(f"{path / 'params.npz'}: lacks {', '.join(missing)}")
        if params["betas"].ndim == 2 and params["betas"].shape[0] > 1:
            raise ValueError(
                f"{path / 'params.npz'}: holds {params['betas'].shape[0]} people; "
                f"the viewer shows single-person fits"
            )
        params = {
            key: value.reshape(value.shape[1:]) if value.ndim > 1 and value.shape[0] == 1 else value
            for key, value in params.items()
        }
        model_name = summary.get("model", "built-in body")
        model = SMPL(None if model_name == "built-in body" else _resolve(model_name, path))
        layer = cls(path, name, model, params)
        layer.keypoint_file = None
        keypoints = summary.get("keypoints")
        if keypoints is not None:
            from mp3d.body.keypoints import load_keypoints

            layer.keypoint_file = load_keypoints(_resolve(keypoints, path))
        return layer

    def up(self) -> str | None:
        if getattr(self, "keypoint_file", None) is not None and self.keypoint_file.viewmat is None:
            return "-y"  # camera coordinates: image up is -y
        return None

    def attach(self, server) -> None:
        super().attach(server)
        if self.keypoint_file is None:
            return
        kp = self.keypoint_file
        keypoints, confidences = kp.for_model(self.model.joint_names)
        viewmat = kp.viewmat if kp.viewmat is not None else np.eye(4)
        joints = self.joints.astype(np.float64)
        depths = (joints @ viewmat[:3, :3].T + viewmat[:3, 3])[:, 2]
        seen = confidences > 0
        lifted = backprojected_keypoints(keypoints[seen], kp.K, viewmat, depths[seen])
        server.scene.add_point_cloud(
            f"{self.name}/keypoints", lifted.astype(np.float32), KEYPOINT_COLOUR, point_size=0.025
        )
        segments = np.stack([joints[seen], lifted], axis=1).astype(np.float32)
        server.scene.add_line_segments(
            f"{self.name}/residuals",
            segments,
            colors=KEYPOINT_COLOUR,
            thickness=2.0,
            thickness_units="screen",
        )
        from mp3d.viewer.cameras import fov_y_of, pose_from_viewmat

        wxyz, position = pose_from_viewmat(torch.as_tensor(viewmat))
        height = kp.height or int(round(2 * kp.K[1, 2]))
        width = kp.width or int(round(2 * kp.K[0, 2]))
        server.scene.add_camera_frustum(
            f"{self.name}/camera",
            fov=fov_y_of(torch.as_tensor(kp.K), height),
            aspect=width / height,
            scale=0.2,
            wxyz=wxyz,
            position=position,
        )


def _read_summary(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"body fit summary not found: {path}")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON ({error})") from error
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    return summary


def _resolve(name: str, folder: Path) -> Path:
    """A file named in fit.json: as written (relative to where the fit ran), else beside
    the fit folder."""
    candidate = Path(name)
    if candidate.exists() or candidate.is_absolute():
        return candidate
    beside = folder / candidate.name
    return beside if beside.exists() else candidate
