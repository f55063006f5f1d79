"""What every dataset of posed images shares: per-view tensors, cameras, subsets, the
hold-out rule for evaluation views, and reading an image file downscaled by area
averaging."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mp3d.cameras import Camera, invert_rigid


class PosedViews:
    """Mixin for dataclasses with images [N,H,W,3], Ks [N,3,3], c2ws [N,4,4] (OpenCV) and
    names; PER_VIEW names the tensor fields indexed by view."""

    PER_VIEW = ("images", "Ks", "c2ws")

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def __len__(self) -> int:
        return self.images.shape[0]

    def camera(self, index: int) -> Camera:
        """Camera of view `index`."""
        return Camera(self.Ks[index], invert_rigid(self.c2ws[index]), self.width, self.height)

    def subset(self, indices):
        """The views at `indices` (a list, range or index tensor); scene-wide fields are kept."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        views = {
            name: getattr(self, name)[idx]
            for name in self.PER_VIEW
            if getattr(self, name) is not None  # optional per-view fields (depths)
        }
        return dataclasses.replace(self, names=[self.names[i] for i in idx.tolist()], **views)

    def to(self, device: torch.device | str):
        """The same views with every tensor field on `device`."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **moved)

    @property
    def background_rgb(self) -> torch.Tensor:
        """The background [3] the images are composited on (black if the scene has none)."""
        background = getattr(self, "background", None)
        if background is None:
            return torch.zeros(3)
        return torch.as_tensor(background, dtype=torch.float32).reshape(3)


def hold_out(
    views: PosedViews, every: int, where: object = "views"
) -> tuple[PosedViews, PosedViews]:
    """(views kept for training, views held back for evaluation): every `every`-th view,
    indices 0, every, 2 every, ... is held back. `where` names the data in errors."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 2:
        raise ValueError(f"holdout must be an int >= 2, got {every!r}")
    if len(views) < 2:
        raise ValueError(f"{where}: needs at least 2 views to hold some back, got {len(views)}")
    held = list(range(0, len(views), every))
    kept = [i for i in range(len(views)) if i % every != 0]
    return views.subset(kept), views.subset(held)


def read_image(
    path: Path, mode: str, downscale: int, missing: str = "image not found"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Image file -> float32 [h,w,C] in [0,1] in PIL `mode` ("RGB" or "RGBA"), downscaled by
    an integer factor (mean of each factor x factor block; RGBA colour is premultiplied
    first, so edges blend as at full resolution); also the file's (W, H)."""
    if not path.is_file():
        raise FileNotFoundError(f"{missing}: {path}")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except OSError as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
    size = (pixels.shape[1], pixels.shape[0])
    if mode == "RGBA":
        pixels[..., :3] *= pixels[..., 3:]
    if downscale > 1:
        h, w = pixels.shape[0] // downscale, pixels.shape[1] // downscale
        if h == 0 or w == 0:
            raise ValueError(
                f"{path}: downscale {downscale} leaves no pixels of {size[0]}x{size[1]}"
            )
        pixels = pixels[: h * downscale, : w * downscale]
        pixels = pixels.reshape(h, downscale, w, downscale, -1).mean(axis=(1, 3))
    return pixels, size
