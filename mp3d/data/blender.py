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

    PER_VIEW = ("images", "alphas", "Ks", "c2ws")


def parse_background(background) -> torch.Tensor:
    """"white", "black", a grey level or an (r, g, b) triple in [0,1] -> tensor [3]."""
    if isinstance(background, str):
        if background not in NAMED_BACKGROUNDS:
            raise ValueError(
                f"background must be one of {sorted(NAMED_BACKGROUNDS)} or an RGB triple, "
                f"got {background!r}"
            )
        background = NAMED_BACKGROUNDS[background]
    value = torch.as_tensor(background, dtype=torch.float32).flatten()
    if value.numel() == 1:
        value = value.expand(3).clone()
    if value.numel() != 3 or not bool(((value >= 0) & (value <= 1)).all()):
        raise ValueError(f"background must be 3 values in [0, 1], got {background!r}")
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


def _intrinsics(meta: dict, frame: dict, width: int, height: int, json_path: Path) -> list[float]:
    """(fx, fy, cx, cy) in pixels of the full-resolution image; per-frame keys win."""

    def get(key):
        return frame.get(key, meta.get(key))

    if get("fl_x") is not None:
        fx = float(get("fl_x"))
        fy = float(get("fl_y")) if get("fl_y") is not None else fx
    elif get("camera_angle_x") is not None:
        fx = focal_from_fov(float(get("camera_angle_x")), width)
        fy = focal_from_fov(float(get("camera_angle_y")), height) \
            if get("camera_angle_y") is not None else fx
    else:
        raise ValueError(f"{json_path}: needs 'camera_angle_x' or 'fl_x' for the intrinsics")
    cx = float(get("cx")) if get("cx") is not None else 0.5 * width
    cy = float(get("cy")) if get("cy") is not None else 0.5 * height
    return [fx, fy, cx, cy]


def load_blender(
    root: str | Path,
    split: str = "train",
    downscale: int = 1,
    background="white",
    progress: bool = True,
) -> BlenderScene:
    """Loads one split of a Blender-format scene folder.

    downscale: integer factor (8 turns 800x800 into 100x100); background: "white",
    "black", a grey level or an RGB triple in [0,1].
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be an int >= 1, got {downscale!r}")
    bg = parse_background(background)
    json_path = root / f"transforms_{split}.json"
    meta = _read_json(json_path)
    frames = meta["frames"]
    if not frames:
        raise ValueError(f"{json_path}: 'frames' is empty")
    paths = []
    for i, frame in enumerate(frames):
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise ValueError(f"{json_path}: frame {i} needs 'file_path' and 'transform_matrix'")
        paths.append(_image_path(root, frame["file_path"]))

    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(tqdm(
            pool.map(lambda p: read_image(p, "RGBA", downscale), paths), total=len(paths),
            desc=f"reading {split} views", disable=not progress, leave=False,
        ))
    images, alphas, Ks, c2ws = [], [], [], []
    first_size = loaded[0][1]
    for (rgba, size), path, frame in zip(loaded, paths, frames):
        if size != first_size:
            raise ValueError(
                f"{path}: image size {size[0]}x{size[1]} differs from the first view's "
                f"{first_size[0]}x{first_size[1]}"
            )
        fx, fy, cx, cy = _intrinsics(meta, frame, size[0], size[1], json_path)
        sx, sy = rgba.shape[1] / size[0], rgba.shape[0] / size[1]
        Ks.append([[fx * sx, 0.0, cx * sx], [0.0, fy * sy, cy * sy], [0.0, 0.0, 1.0]])
        matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise ValueError(f"{json_path}: transform_matrix of {path.name} must be a finite 4x4")
        c2ws.append(matrix)
        rgba_t = torch.from_numpy(rgba)
        alpha = rgba_t[..., 3]
        images.append(rgba_t[..., :3] + (1.0 - alpha[..., None]) * bg)
        alphas.append(alpha)

    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws))).float()
    scene = BlenderScene(
        images=torch.stack(images).clamp_(0.0, 1.0),
        alphas=torch.stack(alphas),
        Ks=torch.tensor(Ks, dtype=torch.float32),
        c2ws=c2w,
        names=[p.stem for p in paths],
        background=bg,
    )
    if "near" in meta and "far" in meta:
        scene.near, scene.far = float(meta["near"]), float(meta["far"])
    if "aabb" in meta:
        aabb = torch.tensor(meta["aabb"], dtype=torch.float32).flatten()
        if aabb.numel() != 6:
            raise ValueError(f"{json_path}: 'aabb' must hold 6 numbers (min xyz, max xyz)")
        scene.aabb = aabb
    if not 0 < scene.near < scene.far or not math.isfinite(scene.far):
        raise ValueError(f"{json_path}: needs 0 < near < far, got {scene.near}, {scene.far}")
    return scene
