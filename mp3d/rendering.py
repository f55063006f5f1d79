"""What every renderable model shares: one output type, held-out evaluation, turntables.

A renderable model has ``render(camera, background=...) -> Rendering``. The functions here
take such a model (rendered on the views' background, or the one given) or any function
``camera -> Rendering``, so NeRFs, Gaussians and later models are evaluated and exported the
same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, NamedTuple, Protocol

import torch
from tqdm import tqdm

from mp3d.cameras import Camera
from mp3d.data.views import PosedViews
from mp3d.io import atomic_path, save_gif, save_image
from mp3d.metrics import psnr, ssim


class Rendering(NamedTuple):
    """An image seen by one camera: rgb [H,W,3] in [0,1] composited on the background,
    depth [H,W] (expected camera-space z of the surface, weighted by opacity, so that
    depth / opacity is the surface's depth), opacity [H,W] in [0,1]."""

    rgb: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor


class Renderable(Protocol):
    """A model that renders what a camera sees, composited on a background."""

    def render(self, camera: Camera, background=...) -> Rendering: ...


RenderFn = Callable[[Camera], Rendering]


def render_function(renderer: Renderable | RenderFn, background=None) -> RenderFn:
    """`renderer` as a function camera -> Rendering: a model's render on `background` (its
    own default if None), or the function itself."""
    if hasattr(renderer, "render"):
        if background is None:
            return renderer.render
        return lambda camera: renderer.render(camera, background=background)
    if not callable(renderer):
        raise ValueError(
            f"renderer must be a model with .render(camera) or a function "
            f"camera -> Rendering, got {type(renderer).__name__}"
        )
    return renderer


def _model_device(renderer: Renderable | RenderFn) -> torch.device | None:
    """Where a torch model's parameters or buffers live (None for a plain function)."""
    if isinstance(renderer, torch.nn.Module):
        for tensor in (*renderer.parameters(), *renderer.buffers()):
            return tensor.device
    return None


# The polynomial fit of Google's Turbo colour map (coefficients of 1, x, ..., x^5 per
# channel): a perceptually ordered map, so depth differences read as hue differences.
_TURBO = torch.tensor(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ],
    dtype=torch.float64,
)


def turbo(values: torch.Tensor) -> torch.Tensor:
    """Values [...] in [0,1] (clamped) -> RGB [...,3] in [0,1] of the Turbo colour map."""
    x = values.detach().double().clamp(0.0, 1.0)
    powers = torch.stack([x**k for k in range(6)], dim=-1)
    return (powers @ _TURBO.to(x.device).T).clamp(0.0, 1.0).float()


def depth_image(depth: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Expected depth [H,W] and opacity [H,W] -> RGB image [H,W,3]: the surface depth
    (depth / opacity) over the range of the solid pixels in the Turbo colour map (from 0.1,
    far, blue, to 0.95, near, red; its dark ends are left for the background), faded to
    black where the opacity is low."""
    surface = depth / opacity.clamp(min=1e-6)
    solid = opacity > 0.5
    if not bool(solid.any()):
        return torch.zeros(*depth.shape, 3, device=depth.device)
    low, high = surface[solid].min(), surface[solid].max()
    nearness = ((high - surface) / (high - low).clamp(min=1e-6)).clamp(0, 1)
    colour = turbo(0.1 + 0.85 * nearness).to(depth.device)
    return colour * opacity.clamp(0, 1)[..., None].float()


def image_stem(name: str) -> str:
    """A file-name stem for a view name (COLMAP names may hold folders and suffixes)."""
    return Path(name).with_suffix("").as_posix().replace("/", "_")


def write_json(path: str | Path, values: dict) -> Path:
    """Writes `values` as indented JSON to `path` (atomically); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(values, indent=2, default=_json_default) + "\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@torch.no_grad()
def evaluate(
    renderer: Renderable | RenderFn,
    views: PosedViews,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Renders every view of `views` (a model on the views' background, or a function) and
    scores it against the view's image: returns {"psnr" (dB), "ssim", "seconds" (means; the
    render alone), "rays_per_second" (pixels rendered over the render time), "views":
    [{"name", "psnr", "ssim", "seconds"}, ...]}; with `out_dir`, writes NAME_rgb.png,
    NAME_depth.png (Turbo colour map) and metrics.json there."""
    if len(views) == 0:
        raise ValueError("views must hold at least one view to evaluate, got 0")
    render_fn = render_function(renderer, views.background_rgb)
    device = _model_device(renderer)
    out = Path(out_dir) if out_dir is not None else None
    scores = []
    for i in tqdm(range(len(views)), desc="rendering views", disable=not progress, leave=False):
        camera = views.camera(i)
        start = perf_counter()
        image = render_fn(camera.to(device) if device is not None else camera)
        if image.rgb.device.type == "cuda":
            torch.cuda.synchronize(image.rgb.device)
        seconds = perf_counter() - start
        rgb = image.rgb.clamp(0.0, 1.0)
        target = views.images[i].to(rgb)
        scores.append(
            {
                "name": views.names[i],
                "psnr": psnr(rgb, target),
                "ssim": float(ssim(rgb, target)),
                "seconds": seconds,
            }
        )
        if out is not None:
            stem = image_stem(views.names[i])
            save_image(rgb, out / f"{stem}_rgb.png")
            save_image(depth_image(image.depth, image.opacity), out / f"{stem}_depth.png")
    seconds = sum(v["seconds"] for v in scores)
    metrics = {
        "psnr": sum(v["psnr"] for v in scores) / len(scores),
        "ssim": sum(v["ssim"] for v in scores) / len(scores),
        "seconds": seconds / len(scores),
        "rays_per_second": views.width * views.height * len(scores) / max(seconds, 1e-9),
        "views": scores,
    }
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics


def evaluation_summary(metrics: dict) -> dict:
    """The means of evaluate's `metrics` under a run summary's names: psnr, ssim,
    render_seconds (per view) and render_rays_per_second."""
    return {
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "render_seconds": metrics["seconds"],
        "render_rays_per_second": metrics["rays_per_second"],
    }


@torch.no_grad()
def render_turntable(
    renderer: Renderable | RenderFn,
    cameras: Sequence[Camera],
    path: str | Path,
    background=None,
    frames_dir: str | Path | None = None,
    fps: float = 12.0,
    progress: bool = True,
) -> Path:
    """Renders `cameras` in order (a model on `background`, or a function) into a looping GIF
    at `path` (and, with frames_dir, each frame as frame_NNN.png); returns the GIF's path."""
    if len(cameras) == 0:
        raise ValueError("cameras must hold at least one camera for a turntable, got 0")
    render_fn = render_function(renderer, background)
    device = _model_device(renderer)
    frames = []
    for i, camera in enumerate(
        tqdm(cameras, desc="rendering turntable", disable=not progress, leave=False)
    ):
        rgb = render_fn(camera.to(device) if device is not None else camera).rgb
        rgb = rgb.clamp(0.0, 1.0).cpu()
        if frames_dir is not None:
            save_image(rgb, Path(frames_dir) / f"frame_{i:03d}.png")
        frames.append(rgb)
    return save_gif(torch.stack(frames), path, fps=fps)
