"""Keypoint files for body fitting (the format of `mp3d body fit`) and saving fit results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import torch

from mp3d.body.result import FitResult
from mp3d.body.smpl import SMPL
from mp3d.io import atomic_path
from mp3d.transforms import project_points

__all__ = [
    "KEYPOINTS_FORMAT",
    "KeypointFile",
    "keypoints_from_joints",
    "load_keypoints",
    "save_fit",
]

# ----------------------------------------------------------------------------- keypoint files

KEYPOINTS_FORMAT = """\
KEYPOINTS.json, one person seen by one pinhole camera (OpenCV convention: x right, y down,
pixel centres at +0.5):
  "keypoints":   [[x, y], ...] or [[x, y, confidence], ...], pixels, one row per joint in the
                 model's joint order (SMPL: pelvis, left_hip, ..., right_hand), unless
  "joint_names": [name, ...] (optional) names the rows: they are matched to the model's joints
                 by name, and joints not named get confidence 0
  "confidences": [c, ...] (optional, with [x, y] rows; default 1; 0 ignores a joint)
  "intrinsics":  {"fx": .., "fy": .., "cx": .., "cy": ..} or "K": [[fx, 0, cx], [0, fy, cy],
                 [0, 0, 1]]; cx, cy default to the image centre when width and height are given
  "width", "height": image size in pixels (optional)
  "viewmat":     4x4 world-to-camera matrix (optional; the fit is then in world coordinates,
                 else in camera coordinates: camera at the origin looking down +z)"""


@dataclass
class KeypointFile:
    """The contents of a KEYPOINTS.json file (KEYPOINTS_FORMAT)."""

    keypoints: np.ndarray  # [N,2] float64 pixels
    confidences: np.ndarray  # [N] float64 >= 0
    K: np.ndarray  # [3,3] float64
    width: int | None = None
    height: int | None = None
    joint_names: tuple[str, ...] | None = None  # names of the N rows (None: the model's order)
    viewmat: np.ndarray | None = None  # [4,4] float64 world-to-camera

    def for_model(self, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [J,2] and confidences [J] in the order of a model's joint_names [J]."""
        n_joints = len(joint_names)
        if self.joint_names is None:
            if len(self.keypoints) != n_joints:
                raise ValueError(
                    f"keypoints has {len(self.keypoints)} rows, the model has "
                    f"{n_joints} joints (give joint_names to match them by name)"
                )
            return self.keypoints.copy(), self.confidences.copy()
        unknown = [name for name in self.joint_names if name not in joint_names]
        if unknown:
            raise ValueError(
                f"joint_names has names the model lacks: {', '.join(unknown)} "
                f"(the model's: {', '.join(joint_names)})"
            )
        keypoints = np.zeros((n_joints, 2))
        confidences = np.zeros(n_joints)
        for row, name in enumerate(self.joint_names):
            keypoints[joint_names.index(name)] = self.keypoints[row]
            confidences[joint_names.index(name)] = self.confidences[row]
        return keypoints, confidences

    def to_json(self) -> dict:
        """The file's JSON object."""
        data: dict[str, object] = {
            "keypoints": [
                [float(x), float(y), float(c)]
                for (x, y), c in zip(self.keypoints, self.confidences, strict=True)
            ],
            "intrinsics": {
                "fx": float(self.K[0, 0]),
                "fy": float(self.K[1, 1]),
                "cx": float(self.K[0, 2]),
                "cy": float(self.K[1, 2]),
            },
        }
        if self.K[0, 1] != 0:
            data["K"] = self.K.tolist()
            del data["intrinsics"]
        if self.width is not None and self.height is not None:
            data["width"], data["height"] = int(self.width), int(self.height)
        if self.joint_names is not None:
            data["joint_names"] = list(self.joint_names)
        if self.viewmat is not None:
            data["viewmat"] = np.asarray(self.viewmat, dtype=np.float64).tolist()
        return data

    def save(self, path: str | Path) -> Path:
        """Writes the file as JSON, atomically."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return Path(path)


def _array(path: Path, data: Mapping, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        array = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {key!r} must be numbers") from None
    if array.ndim != len(shape) or any(
        s is not None and a != s for a, s in zip(array.shape, shape, strict=True)
    ):
        text = ", ".join("N" if s is None else str(s) for s in shape)
        raise ValueError(f"{path}: {key!r} must have shape [{text}], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: {key!r} has non-finite values")
    return array


def load_keypoints(path: str | Path) -> KeypointFile:
    """Reads and checks a KEYPOINTS.json file (format: KEYPOINTS_FORMAT)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or "keypoints" not in data:
        raise ValueError(f"{path}: expected a JSON object with 'keypoints'\n{KEYPOINTS_FORMAT}")
    rows = _array(path, data, "keypoints", (None, None))
    if rows.shape[1] not in (2, 3) or rows.shape[0] == 0:
        raise ValueError(
            f"{path}: 'keypoints' must be N rows of [x, y] or [x, y, confidence], "
            f"got shape {list(rows.shape)}"
        )
    keypoints = rows[:, :2]
    if rows.shape[1] == 3:
        if "confidences" in data:
            raise ValueError(
                f"{path}: give confidences either in the keypoint rows or as "
                "'confidences', not both"
            )
        confidences = rows[:, 2]
    elif "confidences" in data:
        confidences = _array(path, data, "confidences", (len(rows),))
    else:
        confidences = np.ones(len(rows))
    if (confidences < 0).any():
        raise ValueError(f"{path}: confidences must be >= 0")
    width = height = None
    if ("width" in data) != ("height" in data):
        raise ValueError(f"{path}: give both 'width' and 'height' or neither")
    if "width" in data:
        width, height = data["width"], data["height"]
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)
        ):
            raise ValueError(
                f"{path}: 'width' and 'height' must be positive integers, got "
                f"{width!r} and {height!r}"
            )
    if ("K" in data) == ("intrinsics" in data):
        raise ValueError(
            f"{path}: give the camera as exactly one of 'intrinsics' "
            "({'fx', 'fy', 'cx', 'cy'}) or 'K' (3x3)"
        )
    if "K" in data:
        K = _array(path, data, "K", (3, 3))
    else:
        intrinsics = data["intrinsics"]
        if not isinstance(intrinsics, dict) or not {"fx", "fy"} <= intrinsics.keys():
            raise ValueError(f"{path}: 'intrinsics' must be an object with fx, fy, cx, cy")
        if width is not None:
            intrinsics = {"cx": 0.5 * width, "cy": 0.5 * height, **intrinsics}
        if not {"cx", "cy"} <= intrinsics.keys():
            raise ValueError(f"{path}: 'intrinsics' needs cx and cy (or give width and height)")
        try:
            fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: 'intrinsics' values must be numbers") from None
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if not (
        K[0, 0] > 0
        and K[1, 1] > 0
        and np.array_equal(K[2], [0.0, 0.0, 1.0])
        and K[1, 0] == 0
        and np.isfinite(K).all()
    ):
        raise ValueError(f"{path}: the intrinsics must have fx, fy > 0 and K's last row [0, 0, 1]")
    names = None
    if "joint_names" in data:
        names = data["joint_names"]
        if (
            not isinstance(names, list)
            or len(names) != len(rows)
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ValueError(
                f"{path}: 'joint_names' must be {len(rows)} distinct strings, one per keypoint row"
            )
        names = tuple(names)
    viewmat = _array(path, data, "viewmat", (4, 4)) if "viewmat" in data else None
    return KeypointFile(
        keypoints=keypoints,
        confidences=confidences,
        K=K,
        width=width,
        height=height,
        joint_names=names,
        viewmat=viewmat,
    )


def keypoints_from_joints(
    joints: torch.Tensor | np.ndarray,
    joint_names: Sequence[str] | None = None,
    width: int = 512,
    height: int = 512,
    fov_deg: float = 40.0,
    distance: float | None = None,
    noise_px: float = 0.0,
    generator: torch.Generator | None = None,
) -> KeypointFile:
    """Keypoints of posed joints [J,3] (model frame: y up, facing +z) seen by a camera in front
    of the body looking at its centre, the body filling most of the image; for trying out
    `mp3d body fit`. distance (model units) defaults to what frames the joints."""
    from mp3d.cameras import intrinsics_from_fov, look_at

    joints = torch.as_tensor(np.asarray(joints, dtype=np.float64))
    if joints.dim() != 2 or joints.shape[1] != 3 or joints.shape[0] < 2:
        raise ValueError(f"joints must have shape [J>=2, 3], got {list(joints.shape)}")
    if not 1.0 <= fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in [1, 180), got {fov_deg}")
    K = intrinsics_from_fov(math.radians(fov_deg), width, height, dtype=torch.float64)
    centre = 0.5 * (joints.min(dim=0).values + joints.max(dim=0).values)
    if distance is None:
        half = (joints[:, :2] - centre[:2]).abs().max(dim=0).values  # half extents in x, y
        needed = torch.maximum(
            half[0] * K[0, 0] / (0.4 * width), half[1] * K[1, 1] / (0.4 * height)
        )
        distance = float(needed) + float((joints[:, 2] - centre[2]).abs().max())
    if not distance > 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    eye = centre + torch.tensor([0.0, 0.0, distance], dtype=torch.float64)
    viewmat = look_at(eye, centre, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    pixels, _ = project_points(joints[None], K[None], viewmat[None])
    pixels = pixels[0]
    if noise_px > 0:
        pixels = pixels + noise_px * torch.randn(
            pixels.shape, generator=generator, dtype=torch.float64
        )
    return KeypointFile(
        keypoints=pixels.numpy(),
        confidences=np.ones(len(pixels)),
        K=K.numpy(),
        width=width,
        height=height,
        joint_names=None if joint_names is None else tuple(joint_names),
        viewmat=viewmat.numpy(),
    )


def save_fit(
    result: FitResult,
    model: SMPL,
    out_dir: str | Path,
    info: Mapping[str, object] | None = None,
    config: object | None = None,
) -> dict[str, Path]:
    """Writes a fit to out_dir, atomically: params.npz (betas, body_pose, global_orient,
    transl [B,...], joints [B,J,3], joint_names), mesh.obj (the posed body; mesh_<i>.obj for
    B > 1) and fit.json (per-stage losses, per-joint reprojection errors, info, and the
    settings `config`, a dataclass such as mp3d.body.fit.SMPLifyConfig)."""
    if config is not None and not (is_dataclass(config) and not isinstance(config, type)):
        raise ValueError(
            f"config must be a dataclass instance (e.g. SMPLifyConfig) or None, "
            f"got {type(config).__name__}"
        )
    from mp3d.body.export import save_body_mesh

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {name: value.detach().cpu() for name, value in result.params().items()}
    with torch.no_grad():
        output = model(**{name: value.to(model.v_template) for name, value in params.items()})
    n_batch = output.vertices.shape[0]
    paths: dict[str, Path] = {}
    with atomic_path(out_dir / "params.npz") as tmp:
        np.savez(
            tmp,
            **{name: value.numpy() for name, value in params.items()},
            joints=result.joints.detach().cpu().numpy(),
            joint_names=np.array(model.joint_names),
        )
    paths["params"] = out_dir / "params.npz"
    for i in range(n_batch):
        name = "mesh.obj" if n_batch == 1 else f"mesh_{i:03d}.obj"
        paths["mesh" if n_batch == 1 else f"mesh_{i}"] = save_body_mesh(
            output.vertices[i], output.faces, out_dir / name
        )
    names = model.joint_names
    people = []
    for i in range(n_batch):
        people.append(
            {
                "mean_error_px": float(result.mean_error()[i]),
                "initial_mean_error_px": float(
                    (result.confidences[i] * result.initial_joint_errors[i]).sum()
                    / result.confidences[i].sum()
                ),
                "final_loss": float(result.final_loss[i]),
                "joint_errors_px": {
                    n: round(float(e), 4)
                    for n, e in zip(names, result.joint_errors[i], strict=True)
                },
                "confidences": {
                    n: float(c) for n, c in zip(names, result.confidences[i], strict=True)
                },
            }
        )
    summary = {
        **dict(info or {}),
        "people": people if n_batch > 1 else None,
        **(people[0] if n_batch == 1 else {}),
        "losses": result.losses,
        "seconds": round(result.seconds, 3),
        "config": asdict(config) if config is not None else None,
    }
    summary = {key: value for key, value in summary.items() if value is not None}
    with atomic_path(out_dir / "fit.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1) + "\n")
    paths["summary"] = out_dir / "fit.json"
    return paths
