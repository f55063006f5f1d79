"""Reader for Blender / NeRF-synthetic scenes: ``transforms_{split}.json`` plus RGBA images.

Cameras come out in mp3d's convention (OpenCV axes, see mp3d.cameras); images are composited
on a chosen background and optionally downscaled by an integer factor (area averaging of
premultiplied colour, so edges blend as the full-resolution image would).
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mp3d.cameras import focal_from_fov, opengl_to_opencv
from mp3d.data.views import PosedViews, read_image

SPLITS = ("train", "val", "test")
NAMED_BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
RIGID_TOLERANCE = 1e-3  # |R^T R - I| and |last row - [0,0,0,1]| allowed in camera matrices


@dataclass
class BlenderScene(PosedViews):
    """Posed images of one split. Images float32 in [0,1] composited on `background`."""

    images: torch.Tensor  # [N,H,W,3]
    alphas: torch.Tensor  # [N,H,W]
    Ks: torch.Tensor  # [N,3,3]
    c2ws: torch.Tensor  # [N,4,4], OpenCV axes
    names: list[str]
    background: torch.Tensor  # [3]
    near: float = 2.0
    far: float = 6.0
    aabb: torch.Tensor = field(default_factory=lambda: torch.tensor([-1.5] * 3 + [1.5] * 3))
    # [N,H,W] depth along each camera's optical axis (0: unknown), when the frames name
    # depth files ("depth_file_path", NPY; mp3d data render-mesh writes them), else None.
    depths: torch.Tensor | None = None

    PER_VIEW = ("images", "alphas", "Ks", "c2ws", "depths")


def parse_background(background) -> torch.Tensor:
    """ "white", "black", a grey level or an (r, g, b) triple in [0,1] -> tensor [3]. Strings
    may also spell the numbers: "0.5" (grey) or "0.2,0.4,0.6" (r,g,b)."""
    expected = (
        f"one of {sorted(NAMED_BACKGROUNDS)}, a grey level in [0, 1] or 3 values R,G,B in [0, 1]"
    )
    given = background
    if isinstance(background, str):
        if background.strip().lower() in NAMED_BACKGROUNDS:
            background = NAMED_BACKGROUNDS[background.strip().lower()]
        else:
            try:
                background = [float(part) for part in background.split(",")]
            except ValueError:
                raise ValueError(f"background must be {expected}, got {given!r}") from None
    try:
        value = torch.as_tensor(background, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"background must be {expected}, got {given!r}") from None
    if value.numel() == 1:
        value = value.expand(3).clone()
    if value.numel() != 3 or not bool(((value >= 0) & (value <= 1)).all()):
        raise ValueError(f"background must be {expected}, got {given!r}")
    return value


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"Blender scene file not found: {path}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON ({error})") from error
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise ValueError(f"{path}: expected an object with a 'frames' list")
    return meta


def _image_path(root: Path, file_path: str) -> Path:
    path = (root / file_path).resolve()
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return path
    for suffix in (".png", ".jpg", ".jpeg"):
        if path.with_name(path.name + suffix).is_file():
            return path.with_name(path.name + suffix)
    return path.with_name(path.name + ".png")


def _number(
    json_path: Path,
    where: str,
    key: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """`value` of `key` as a finite float in (minimum, maximum) (bounds exclusive, optional);
    ValueError naming the file, the frame (`where`) and the key otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if (
        not math.isfinite(number)
        or (minimum is not None and not number > minimum)
        or (maximum is not None and not number < maximum)
    ):
        low = "" if minimum is None else f" > {minimum:g}"
        high = "" if maximum is None else f" < {maximum:g}"
        bounds = " and".join(b for b in (low, high) if b)
        raise ValueError(
            f"{json_path}: {where}'{key}' must be a finite number{bounds}, got {value!r}"
        )
    return number


def _intrinsics(
    meta: dict, frame: dict, index: int, json_path: Path
) -> tuple[str, float, float, float | None, float | None]:
    """(kind, x, y, cx, cy) of one frame, checked: kind "focal" (x, y: focal lengths in
    pixels) or "fov" (x, y: full fields of view in radians); cx, cy None for the image
    centre. Per-frame keys win over the file's."""

    def get(key):
        return frame.get(key, meta.get(key))

    def where(key):
        return f"frame {index}: " if key in frame else ""

    def value(key, minimum=None, maximum=None):
        return _number(json_path, where(key), key, get(key), minimum, maximum)

    if get("fl_x") is not None:
        kind, x = "focal", value("fl_x", 0.0)
        y = value("fl_y", 0.0) if get("fl_y") is not None else x
    elif get("camera_angle_x") is not None:
        kind, x = "fov", value("camera_angle_x", 0.0, math.pi)
        y = value("camera_angle_y", 0.0, math.pi) if get("camera_angle_y") is not None else None
    else:
        raise ValueError(f"{json_path}: needs 'camera_angle_x' or 'fl_x' for the intrinsics")
    cx = value("cx") if get("cx") is not None else None
    cy = value("cy") if get("cy") is not None else None
    return kind, x, y, cx, cy


def _pixel_intrinsics(intrinsics: tuple, width: int, height: int) -> list[float]:
    """(fx, fy, cx, cy) in pixels of a width x height image from _intrinsics' values."""
    kind, x, y, cx, cy = intrinsics
    if kind == "fov":
        fx = focal_from_fov(x, width)
        fy = focal_from_fov(y, height) if y is not None else fx
    else:
        fx, fy = x, y
    return [fx, fy, 0.5 * width if cx is None else cx, 0.5 * height if cy is None else cy]


def check_camera_matrix(matrix, where: str, tolerance: float = RIGID_TOLERANCE) -> np.ndarray:
    """A camera-to-world matrix as a float64 [4,4] array, checked to be rigid: finite, its
    last row [0, 0, 0, 1], its rotation part orthonormal with determinant +1 (each entry of
    R^T R - I within `tolerance`). ValueError starting with `where` otherwise."""
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: transform_matrix must be 4 rows of 4 numbers, got {_short(matrix)}"
        ) from None
    if array.shape != (4, 4):
        raise ValueError(
            f"{where}: transform_matrix must be 4x4, got shape "
            f"{'x'.join(map(str, array.shape)) or 'scalar'}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: transform_matrix must be finite, got {_short(matrix)}")
    if np.abs(array[3] - (0.0, 0.0, 0.0, 1.0)).max() > tolerance:
        raise ValueError(
            f"{where}: transform_matrix's last row must be [0, 0, 0, 1], got {array[3].tolist()}"
        )
    rotation = array[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > tolerance or np.linalg.det(rotation) < 0:
        what = f"is off by {error:.3g}" if error > tolerance else "is a reflection (det -1)"
        raise ValueError(
            f"{where}: transform_matrix is not a rigid camera pose: its 3x3 "
            f"rotation part must be orthonormal with determinant +1 (R^T R = I "
            f"within {tolerance:g}), but {what}"
        )
    return array


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _depth_paths(frames: list, root: Path, json_path: Path) -> list[Path] | None:
    """The depth files the frames name ("depth_file_path"), or None when none does; every
    frame or none must name one."""
    named = ["depth_file_path" in frame for frame in frames]
    if not any(named):
        return None
    if not all(named):
        missing = named.index(False)
        raise ValueError(
            f"{json_path}: frame {missing} has no 'depth_file_path' though other frames do "
            f"(give every frame a depth file, or none)"
        )
    paths = []
    for i, frame in enumerate(frames):
        value = frame["depth_file_path"]
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"{json_path}: frame {i}: 'depth_file_path' must be a non-empty string, "
                f"got {_short(value)}"
            )
        paths.append((root / value).resolve())
    return paths


def _read_depth(path: Path, size: tuple[int, int], downscale: int) -> np.ndarray:
    """A depth map [H/downscale, W/downscale] float32 from an NPY file of the image's size:
    the mean of each block's known (non-zero) depths, 0 where a block has none."""
    if not path.is_file():
        raise FileNotFoundError(f"depth file not found: {path}")
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy depth map ({error})") from error
    width, height = size
    if depth.shape != (height, width) or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(
            f"{path}: depth must be a float array of the image's size [{height}, {width}], "
            f"got {depth.dtype} {list(depth.shape)}"
        )
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise ValueError(f"{path}: depth must be finite and >= 0 (0: unknown)")
    if downscale == 1:
        return depth.astype(np.float32)
    h, w = height // downscale, width // downscale
    blocks = depth[: h * downscale, : w * downscale].reshape(h, downscale, w, downscale)
    known = (blocks > 0).sum(axis=(1, 3))
    total = blocks.sum(axis=(1, 3))
    return np.where(known > 0, total / np.maximum(known, 1), 0.0).astype(np.float32)


def _check_frames(meta: dict, root: Path, json_path: Path) -> tuple[list, list, list]:
    """(image paths, c2w [4,4] arrays, intrinsics) of every frame, checked before any image
    is read; ValueError naming the file and the frame otherwise."""
    frames = meta["frames"]
    if not frames:
        raise ValueError(f"{json_path}: 'frames' is empty")
    paths, matrices, intrinsics = [], [], []
    for i, frame in enumerate(frames):
        if (
            not isinstance(frame, dict)
            or "file_path" not in frame
            or "transform_matrix" not in frame
        ):
            raise ValueError(f"{json_path}: frame {i} needs 'file_path' and 'transform_matrix'")
        if not isinstance(frame["file_path"], str) or not frame["file_path"]:
            raise ValueError(
                f"{json_path}: frame {i}: 'file_path' must be a non-empty string, "
                f"got {frame['file_path']!r}"
            )
        where = f"{json_path}: frame {i} ({frame['file_path']})"
        paths.append(_image_path(root, frame["file_path"]))
        matrices.append(check_camera_matrix(frame["transform_matrix"], where))
        intrinsics.append(_intrinsics(meta, frame, i, json_path))
    return paths, matrices, intrinsics


def load_blender(
    root: str | Path,
    split: str = "train",
    downscale: int = 1,
    background="white",
    progress: bool = True,
) -> BlenderScene:
    """Loads one split of a Blender-format scene folder.

    downscale: integer factor (8 turns 800x800 into 100x100); background: "white",
    "black", a grey level or an RGB triple in [0,1]. Every frame's camera is checked
    (check_camera_matrix, intrinsics) before any image is read.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be an int >= 1, got {downscale!r}")
    bg = parse_background(background)
    json_path = root / f"transforms_{split}.json"
    meta = _read_json(json_path)
    paths, c2ws, intrinsics = _check_frames(meta, root, json_path)
    depth_paths = _depth_paths(meta["frames"], root, json_path)
    if depth_paths is not None and meta.get("depth_type", "z") != "z":
        raise ValueError(
            f"{json_path}: 'depth_type' {meta['depth_type']!r} is not supported (only 'z', "
            f"depth along the camera's optical axis)"
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(
            tqdm(
                pool.map(lambda p: read_image(p, "RGBA", downscale), paths),
                total=len(paths),
                desc=f"reading {split} views",
                disable=not progress,
                leave=False,
            )
        )
    images, alphas, Ks = [], [], []
    first_size = loaded[0][1]
    for (rgba, size), path, camera in zip(loaded, paths, intrinsics):
        if size != first_size:
            raise ValueError(
                f"{path}: image size {size[0]}x{size[1]} differs from the first view's "
                f"{first_size[0]}x{first_size[1]}"
            )
        fx, fy, cx, cy = _pixel_intrinsics(camera, size[0], size[1])
        sx, sy = rgba.shape[1] / size[0], rgba.shape[0] / size[1]
        Ks.append([[fx * sx, 0.0, cx * sx], [0.0, fy * sy, cy * sy], [0.0, 0.0, 1.0]])
        rgba_t = torch.from_numpy(rgba)
        alpha = rgba_t[..., 3]
        images.append(rgba_t[..., :3] + (1.0 - alpha[..., None]) * bg)
        alphas.append(alpha)

    depths = None
    if depth_paths is not None:
        depths = torch.from_numpy(
            np.stack([_read_depth(path, first_size, downscale) for path in depth_paths])
        )
        if depths.shape[1:] != images[0].shape[:2]:
            raise ValueError(
                f"{json_path}: downscaled depth maps {list(depths.shape[1:])} do not match "
                f"the images {list(images[0].shape[:2])}"
            )
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws))).float()
    scene = BlenderScene(
        images=torch.stack(images).clamp_(0.0, 1.0),
        alphas=torch.stack(alphas),
        Ks=torch.tensor(Ks, dtype=torch.float32),
        c2ws=c2w,
        names=[p.stem for p in paths],
        background=bg,
        depths=depths,
    )
    if "near" in meta and "far" in meta:
        scene.near = _number(json_path, "", "near", meta["near"], 0.0)
        scene.far = _number(json_path, "", "far", meta["far"], 0.0)
    if "aabb" in meta:
        try:
            aabb = np.asarray(meta["aabb"], dtype=np.float64).flatten()
        except (TypeError, ValueError):
            aabb = np.zeros(0)
        if aabb.size != 6 or not np.isfinite(aabb).all() or not (aabb[:3] < aabb[3:]).all():
            raise ValueError(
                f"{json_path}: 'aabb' must hold 6 finite numbers (min xyz, max "
                f"xyz, each min below its max), got {_short(meta['aabb'])}"
            )
        scene.aabb = torch.tensor(aabb, dtype=torch.float32)
    if not 0 < scene.near < scene.far:
        raise ValueError(f"{json_path}: needs 0 < near < far, got {scene.near}, {scene.far}")
    return scene
