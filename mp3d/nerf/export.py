"""Outputs of a trained NeRF beyond the shared evaluation and turntables (mp3d.rendering):
marching-cubes meshes of its density."""

from __future__ import annotations

from mp3d.mesh.marching_cubes import extract_mesh as _marching_cubes
from mp3d.nerf.model import NeRFModel
from mp3d.rendering import evaluate, render_turntable

__all__ = ["evaluate", "extract_mesh", "render_turntable"]


def extract_mesh(
    model: NeRFModel,
    resolution: int = 256,
    threshold: float = 10.0,
    colour: bool = False,
    progress: bool = True,
):
    """Marching-cubes mesh of {density = threshold} in the model's box, in world coordinates,
    optionally with vertex colours from the field (seen from above). Returns trimesh.Trimesh."""
    device = model.aabb.device
    return _marching_cubes(
        model.density,
        model.aabb.cpu(),
        resolution,
        threshold,
        colour_fn=model.colour if colour else None,
        device=device,
        progress=progress,
    )
