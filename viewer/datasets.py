"""Dataset folders (Blender `transforms_*.json`, COLMAP `sparse/0`): every camera as a frustum
with its image as a thumbnail (click one to look through it), and COLMAP's sparse points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mp3d.cameras import orbit_of_views
from mp3d.viewer.cameras import fov_y_of, pose_from_viewmat
from mp3d.viewer.layers import Layer, bounds_of

__all__ = ["DatasetLayer", "thumbnail_downscale"]

THUMBNAIL_SIDE = 128  # pixels, at most, of a thumbnail's longer side
SPLIT_COLOURS = {"train": (40, 90, 200), "val": (230, 150, 30), "test": (200, 40, 40)}


def thumbnail_downscale(width: int, height: int, side: int = THUMBNAIL_SIDE) -> int:
    """The integer downscale factor that brings an image's longer side to at most `side`."""
    return max(1, -(-max(width, height) // side))


def _first_image_size(root: Path, kind: str) -> tuple[int, int]:
    """(width, height) of the dataset's first image, read from its header only."""
    from PIL import Image

    if kind == "blender":
        import json

        for split in ("train", "val", "test"):
            meta_path = root / f"transforms_{split}.json"
            if meta_path.is_file():
                frames = json.loads(meta_path.read_text()).get("frames") or []
                if frames:
                    from mp3d.data.blender import _image_path

                    with Image.open(_image_path(root, frames[0]["file_path"])) as image:
                        return image.size
        raise ValueError(f"{root}: no frames in its transforms_*.json")
    images = sorted(p for p in (root / "images").iterdir() if p.is_file())
    if not images:
        raise ValueError(f"{root / 'images'}: holds no images")
    with Image.open(images[0]) as image:
        return image.size


class DatasetLayer(Layer):
    """The posed views of a Blender or COLMAP folder (per split for Blender)."""

    kind = "dataset"

    def __init__(self, path, name, splits: dict, points=None, colours=None, fmt="blender"):
        super().__init__(path, name)
        self.splits = splits  # split name -> PosedViews (downscaled images)
        self.points, self.colours, self.format = points, colours, fmt
        self.frusta = []

    @classmethod
    def from_folder(cls, path: str | Path, name: str) -> DatasetLayer:
        """The cameras of a Blender or COLMAP scene folder, images read downscaled."""
        from mp3d.data.scene import detect_format

        path = Path(path)
        fmt = detect_format(path)
        downscale = thumbnail_downscale(*_first_image_size(path, fmt))
        if fmt == "colmap":
            from mp3d.data.colmap import load_colmap

            scene = load_colmap(path, downscale, progress=False)
            points, colours = scene.points.numpy(), scene.colours.numpy()
            return cls(path, name, {"images": scene}, points, colours, fmt)
        from mp3d.data.blender import load_blender

        splits = {
            split: load_blender(path, split, downscale, progress=False)
            for split in ("train", "val", "test")
            if (path / f"transforms_{split}.json").is_file()
        }
        return cls(path, name, splits, fmt=fmt)

    @property
    def label(self) -> str:
        count = sum(len(views) for views in self.splits.values())
        return f"{self.format} dataset: {self.path.name} ({count} views)"

    def _c2ws(self) -> torch.Tensor:
        return torch.cat([views.c2ws for views in self.splits.values()])

    def bounds(self) -> np.ndarray | None:
        positions = self._c2ws()[:, :3, 3].numpy()
        if self.points is not None and len(self.points):
            return bounds_of(np.concatenate([positions, np.percentile(self.points, [2, 98], 0)]))
        return bounds_of(positions)

    def up(self) -> str | None:
        """The named axis nearest the mean image-up direction of the cameras."""
        up = orbit_of_views(self._c2ws()).up.numpy()
        axis = int(np.argmax(np.abs(up)))
        return ("+" if up[axis] > 0 else "-") + "xyz"[axis]

    def frustum_scale(self) -> float:
        """Frustum depth: 0.15 of the median distance between camera centres and their
        centroid (world units)."""
        positions = self._c2ws()[:, :3, 3].numpy()
        spread = np.median(np.linalg.norm(positions - positions.mean(axis=0), axis=1))
        return float(max(spread, 1e-3)) * 0.15

    def attach(self, server) -> None:
        super().attach(server)
        scale = self.frustum_scale()
        for split, views in self.splits.items():
            colour = SPLIT_COLOURS.get(split, (40, 90, 200))
            for i in range(len(views)):
                camera = views.camera(i)
                wxyz, position = pose_from_viewmat(camera.viewmat)
                fov_y = fov_y_of(camera.K, camera.height)
                image = (views.images[i].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
                frustum = server.scene.add_camera_frustum(
                    f"{self.name}/{split}/{i:04d}",
                    fov=fov_y,
                    aspect=camera.width / camera.height,
                    scale=scale,
                    color=colour,
                    image=image,
                    wxyz=wxyz,
                    position=position,
                )
                frustum.on_click(_look_through(wxyz, position, fov_y, scale))
                self.frusta.append(frustum)
        if self.points is not None and len(self.points):
            server.scene.add_point_cloud(
                f"{self.name}/points",
                self.points.astype(np.float32),
                (np.clip(self.colours, 0, 1) * 255).astype(np.uint8),
                point_size=scale * 0.05,
            )


def _look_through(wxyz: np.ndarray, position: np.ndarray, fov_y: float, scale: float):
    """A click handler that puts the clicking client's camera at a dataset camera."""

    def look(event) -> None:
        camera = event.client.camera
        with event.client.atomic():
            camera.fov = fov_y
            camera.wxyz = wxyz
            camera.position = position
            # look_at one frustum depth ahead, so orbiting turns about what the view shows
            forward = torch.as_tensor(pose_matrix(wxyz))[:, 2].numpy()
            camera.look_at = position + forward * scale * 10

    return look


def pose_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix [3,3] of the w-first quaternion wxyz [4]."""
    from mp3d.transforms import quaternion_to_matrix

    return quaternion_to_matrix(torch.as_tensor(np.asarray(wxyz, dtype=np.float64))).numpy()
