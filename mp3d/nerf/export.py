"""Outputs of a trained NeRF: held-out metrics, rendered images, turntables and meshes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from mp3d.data.blender import BlenderScene
from mp3d.io import atomic_path, save_gif, save_image
from mp3d.mesh.marching_cubes import extract_mesh as _marching_cubes
from mp3d.metrics import psnr, ssim
from mp3d.nerf.model import NeRFModel, orbit_cameras


def depth_image(depth: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Expected depth [H,W] and opacity [H,W] -> grey image [H,W,3]: the surface depth
    (depth / opacity) stretched over the image's range, near bright, faded by opacity."""
    surface = depth / opacity.clamp(min=1e-6)
    solid = opacity > 0.5
    if not bool(solid.any()):
        return torch.zeros(*depth.shape, 3, device=depth.device)
    low, high = surface[solid].min(), surface[solid].max()
    scaled = 0.15 + 0.85 * ((high - surface) / (high - low).clamp(min=1e-6)).clamp(0, 1)
    return (scaled * opacity.clamp(0, 1))[..., None].expand(*depth.shape, 3)


def evaluate(model: NeRFModel, dataset: BlenderScene, out_dir: str | Path | None = None,
             progress: bool = True) -> dict:
    """Renders every view of `dataset` on its background; returns mean PSNR/SSIM and
    per-view values, and with out_dir writes rgb/depth PNGs and metrics.json there."""
    out = Path(out_dir) if out_dir is not None else None
    views = []
    for i in tqdm(range(len(dataset)), desc="rendering views", disable=not progress, leave=False):
        image = model.render(dataset.camera(i), background=dataset.background)
        target = dataset.images[i].to(image["rgb"].device)
        views.append({"name": dataset.names[i], "psnr": psnr(image["rgb"], target),
                      "ssim": float(ssim(image["rgb"], target))})
        if out is not None:
            save_image(image["rgb"], out / f"{dataset.names[i]}_rgb.png")
            save_image(depth_image(image["depth"], image["opacity"]),
                       out / f"{dataset.names[i]}_depth.png")
    metrics = {"psnr": sum(v["psnr"] for v in views) / len(views),
               "ssim": sum(v["ssim"] for v in views) / len(views), "views": views}
    if out is not None:
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def render_turntable(model: NeRFModel, dataset: BlenderScene, path: str | Path, n_frames: int = 36,
                     background=(1.0, 1.0, 1.0), progress: bool = True) -> Path:
    """A GIF of the model seen from a circle at the dataset cameras' mean distance."""
    radius = float(dataset.c2ws[:, :3, 3].norm(dim=-1).mean())
    cameras = orbit_cameras(dataset.Ks[0].cpu(), dataset.width, dataset.height, radius, n_frames)
    frames = [model.render(c, background=background)["rgb"].cpu()
              for c in tqdm(cameras, desc="rendering turntable", disable=not progress, leave=False)]
    return save_gif(torch.stack(frames), path)


def extract_mesh(model: NeRFModel, resolution: int = 256, threshold: float = 10.0,
                 colour: bool = False, progress: bool = True):
    """Marching-cubes mesh of {density = threshold} in the model's box, in world coordinates,
    optionally with vertex colours from the field (seen from above). Returns trimesh.Trimesh."""
    device = model.aabb.device
    return _marching_cubes(model.density, model.aabb.cpu(), resolution, threshold,
                           colour_fn=model.colour if colour else None, device=device,
                           progress=progress)
