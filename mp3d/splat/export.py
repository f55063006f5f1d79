"""Outputs of trained Gaussians: rendered views, held-out metrics and turntables.

Turntables circle a centre about an `up` axis. For a trained scene both come from its
cameras (`orbit_of_views`: the point nearest every optical axis, and the mean of the cameras'
image-up directions), so Blender and COLMAP scenes alike turn about their own vertical;
for a bare PLY file they come from the Gaussians (`orbit_of_gaussians`) and an up axis the
caller names.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mp3d.cameras import Camera, look_at
from mp3d.data.views import PosedViews
from mp3d.io import atomic_path, save_gif, save_image
from mp3d.metrics import psnr, ssim
from mp3d.nerf.export import depth_image
from mp3d.splat.model import GaussianModel

__all__ = [
    "AXES",
    "Orbit",
    "evaluate",
    "orbit_of_gaussians",
    "orbit_of_views",
    "render_turntable",
    "render_view",
    "view_background",
    "write_json",
]

AXES = {"+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0), "+y": (0.0, 1.0, 0.0),
        "-y": (0.0, -1.0, 0.0), "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0)}
FRAMING_OPACITY = 0.1  # Gaussians at least this opaque decide where a PLY's object is
FRAMING_QUANTILE = 0.95  # ... and the radius that holds this fraction of them is framed


def render_view(
    model: GaussianModel,
    camera: Camera,
    background: torch.Tensor | float | None = None,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """rgb [H,W,3], alpha [H,W], depth [H,W] (expected camera z, not divided by alpha) and
    info (see mp3d.ops.gaussians.rasterize) of the model seen by `camera`."""
    means = model.means
    return model.render(camera.viewmat.to(means), camera.K.to(means), camera.width,
                        camera.height, background=background, impl=impl)


def view_background(dataset: PosedViews) -> torch.Tensor:
    """The background [3] a dataset's images are composited on (black if it has none)."""
    background = getattr(dataset, "background", None)
    if background is None:
        return torch.zeros(3)
    return torch.as_tensor(background, dtype=torch.float32).reshape(3)


def _image_stem(name: str) -> str:
    """A file-name stem for a view name (COLMAP names may hold folders and suffixes)."""
    return Path(name).with_suffix("").as_posix().replace("/", "_")


@torch.no_grad()
def evaluate(
    model: GaussianModel,
    dataset: PosedViews,
    out_dir: str | Path | None = None,
    background: torch.Tensor | None = None,
    impl: str = "auto",
    progress: bool = True,
) -> dict:
    """Renders every view of `dataset` (on its background unless `background` [3] is
    given); returns mean PSNR (dB) / SSIM and per-view values, and with out_dir writes
    NAME_rgb.png and NAME_depth.png there."""
    if len(dataset) == 0:
        raise ValueError("dataset must hold at least one view, got 0")
    out = Path(out_dir) if out_dir is not None else None
    device = model.means.device
    bg = (view_background(dataset) if background is None else background).to(model.means)
    views = []
    for i in tqdm(range(len(dataset)), desc="rendering views", disable=not progress, leave=False):
        rgb, alpha, depth, _ = render_view(model, dataset.camera(i).to(device), bg, impl)
        target = dataset.images[i].to(rgb)
        rgb = rgb.clamp(0.0, 1.0)
        views.append({"name": dataset.names[i], "psnr": psnr(rgb, target),
                      "ssim": float(ssim(rgb, target))})
        if out is not None:
            stem = _image_stem(dataset.names[i])
            save_image(rgb, out / f"{stem}_rgb.png")
            save_image(depth_image(depth, alpha), out / f"{stem}_depth.png")
    return {"psnr": sum(v["psnr"] for v in views) / len(views),
            "ssim": sum(v["ssim"] for v in views) / len(views), "views": views}


def write_json(path: str | Path, values: dict) -> Path:
    """Writes `values` as indented JSON to `path` (atomically); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(values, indent=2) + "\n")
    return Path(path)


# ----------------------------------------------------------------------------- orbits


@dataclass
class Orbit:
    """A circle of cameras: centre [3], unit up axis [3], radius and elevation (degrees)."""

    centre: torch.Tensor
    up: torch.Tensor
    radius: float
    elevation_deg: float

    def viewmats(self, n_frames: int) -> torch.Tensor:
        """World-to-camera [n_frames,4,4] (float32) of cameras evenly spaced on the circle,
        each looking at the centre with `up` upwards in the image."""
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be an int >= 1, got {n_frames!r}")
        up = torch.nn.functional.normalize(self.up.double(), dim=0)
        # Any unit vector orthogonal to up starts the circle.
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        if abs(float(helper @ up)) > 0.9:
            helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        first = torch.nn.functional.normalize(helper - (helper @ up) * up, dim=0)
        second = torch.linalg.cross(up, first)
        azimuth = torch.arange(n_frames, dtype=torch.float64) * (2 * math.pi / n_frames)
        elevation = math.radians(self.elevation_deg)
        directions = (math.cos(elevation) * (torch.cos(azimuth)[:, None] * first
                                             + torch.sin(azimuth)[:, None] * second)
                      + math.sin(elevation) * up)
        centre = self.centre.double()
        eyes = centre + self.radius * directions
        return look_at(eyes, centre.expand_as(eyes), up).float()


def orbit_of_views(c2ws: torch.Tensor) -> Orbit:
    """The orbit the cameras c2ws [N,4,4] (OpenCV) suggest: centred on the point nearest all
    their optical axes (their mean position if the axes are near parallel), up = the mean of
    their image-up directions, at their mean distance and mean elevation."""
    c2ws = c2ws.detach().double().cpu()
    positions, forwards = c2ws[:, :3, 3], c2ws[:, :3, 2]
    up = -c2ws[:, :3, 1].mean(dim=0)  # image y points down in OpenCV
    if float(up.norm()) < 1e-6:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    up = up / up.norm()
    # Least squares: sum_i (I - f_i f_i^T) (p - c_i) = 0.
    projectors = torch.eye(3, dtype=torch.float64) - forwards[:, :, None] * forwards[:, None, :]
    system = projectors.sum(dim=0)
    if torch.linalg.matrix_rank(system, rtol=1e-3) == 3:
        centre = torch.linalg.solve(system, (projectors @ positions[:, :, None]).sum(dim=0))[:, 0]
    else:
        centre = positions.mean(dim=0)
    offsets = positions - centre
    distances = offsets.norm(dim=-1)
    radius = float(distances.mean())
    if radius <= 0.0:
        radius = 1.0
    sines = ((offsets @ up) / distances.clamp(min=1e-12)).clamp(-1.0, 1.0)
    elevation = math.degrees(float(torch.asin(sines).mean()))
    return Orbit(centre.float(), up.float(), radius, max(-80.0, min(80.0, elevation)))


def orbit_of_gaussians(
    model: GaussianModel, up: str = "+z", fov_deg: float = 40.0, elevation_deg: float = 20.0
) -> Orbit:
    """An orbit framing a model's reasonably opaque Gaussians (FRAMING_OPACITY): centred on
    their median, at the distance where a sphere holding 95% of them fills a `fov_deg` view."""
    if up not in AXES:
        raise ValueError(f"up must be one of {sorted(AXES)}, got {up!r}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg!r}")
    if len(model) == 0:
        raise ValueError("model must hold at least one Gaussian to frame, got 0")
    means = model.means.detach().double().cpu()
    opaque = model.opacities.detach().cpu() >= FRAMING_OPACITY
    if int(opaque.sum()) > 0:
        means = means[opaque]
    centre = means.median(dim=0).values
    extent = float(torch.quantile((means - centre).norm(dim=-1), FRAMING_QUANTILE))
    extent = max(extent, 1e-3)
    radius = extent / math.sin(math.radians(fov_deg) / 2)
    return Orbit(centre.float(), torch.tensor(AXES[up]), radius, elevation_deg)


@torch.no_grad()
def render_turntable(
    model: GaussianModel,
    orbit: Orbit,
    K: torch.Tensor,
    width: int,
    height: int,
    path: str | Path,
    n_frames: int = 36,
    background: torch.Tensor | float | None = None,
    frames_dir: str | Path | None = None,
    impl: str = "auto",
    progress: bool = True,
) -> Path:
    """Renders n_frames views around `orbit` with intrinsics K [3,3] into a GIF at `path`
    (and, with frames_dir, each frame as frame_NNN.png); returns the GIF's path."""
    device = model.means.device
    frames = []
    for i, viewmat in enumerate(tqdm(orbit.viewmats(n_frames), desc="rendering turntable",
                                     disable=not progress, leave=False)):
        camera = Camera(K, viewmat, width, height).to(device)
        bg = background.to(model.means) if isinstance(background, torch.Tensor) else background
        rgb = render_view(model, camera, bg, impl)[0].clamp(0.0, 1.0).cpu()
        if frames_dir is not None:
            save_image(rgb, Path(frames_dir) / f"frame_{i:03d}.png")
        frames.append(rgb)
    return save_gif(torch.stack(frames), path)
