"""Camera conversions between viser's viewport and mp3d cameras.

viser reports a client's camera as ``wxyz`` (the rotation R_world_camera as a w-first
quaternion), ``position`` (the camera centre in world coordinates) and ``fov`` (the vertical
field of view in radians), with camera axes in the OpenCV convention (x right, y down,
z forward): the same axes as mp3d, so the camera-to-world matrix is [R | position] and
no axis flip is needed. mp3d's ``viewmat`` is its inverse.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mp3d.cameras import Camera, intrinsics, invert_rigid
from mp3d.transforms import matrix_to_quaternion, quaternion_to_matrix

__all__ = [
    "camera_from_pose",
    "fov_y_of",
    "pose_from_viewmat",
    "resolution_for",
]


def camera_from_pose(
    wxyz, position, fov_y: float, width: int, height: int, dtype=torch.float32
) -> Camera:
    """The mp3d Camera (OpenCV) of a viser pose: wxyz [4] (R_world_camera, w first),
    position [3] (world units), vertical field of view fov_y (radians, in (0, pi)), and an
    image of width x height pixels (square pixels, principal point at the centre)."""
    if not 0.0 < float(fov_y) < math.pi:
        raise ValueError(f"fov_y must be in (0, pi) radians, got {fov_y!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    quat = torch.as_tensor(np.asarray(wxyz, dtype=np.float64)).reshape(-1)
    centre = torch.as_tensor(np.asarray(position, dtype=np.float64)).reshape(-1)
    if quat.shape != (4,) or not bool(torch.isfinite(quat).all()) or float(quat.norm()) == 0:
        raise ValueError(f"wxyz must be 4 finite numbers, not all 0, got {list(quat.tolist())}")
    if centre.shape != (3,) or not bool(torch.isfinite(centre).all()):
        raise ValueError(f"position must be 3 finite numbers, got {list(centre.tolist())}")
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = quaternion_to_matrix(quat)
    c2w[:3, 3] = centre
    focal = 0.5 * height / math.tan(0.5 * float(fov_y))
    K = intrinsics(focal, focal, 0.5 * width, 0.5 * height, dtype=dtype)
    return Camera(K, invert_rigid(c2w).to(dtype), width, height)


def pose_from_viewmat(viewmat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz [4], position [3]) float64 arrays, viser's pose, of a world-to-camera viewmat
    [4,4] in the OpenCV convention."""
    viewmat = torch.as_tensor(viewmat).detach().double().cpu()
    if viewmat.shape != (4, 4):
        raise ValueError(f"viewmat must have shape [4, 4], got {list(viewmat.shape)}")
    c2w = invert_rigid(viewmat)
    return matrix_to_quaternion(c2w[:3, :3]).numpy(), c2w[:3, 3].numpy()


def fov_y_of(K: torch.Tensor, height: int) -> float:
    """Vertical field of view (radians) of intrinsics K [3,3] over `height` pixels."""
    return 2.0 * math.atan(0.5 * height / float(K[1, 1]))


def resolution_for(aspect: float, max_side: int) -> tuple[int, int]:
    """(width, height) in pixels of an image with aspect width/height = `aspect` whose longer
    side is `max_side` pixels (each side at least 1)."""
    if not (math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"aspect must be a finite number > 0, got {aspect!r}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be an int >= 1, got {max_side!r}")
    if aspect >= 1.0:
        return max_side, max(1, round(max_side / aspect))
    return max(1, round(max_side * aspect)), max_side
