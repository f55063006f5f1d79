"""A tiny scene rendered from known Gaussians, for training, pipeline and CLI tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from mp3d.cameras import Camera, intrinsics_from_fov, invert_rigid
from mp3d.data.blender import BlenderScene
from mp3d.data.demo import orbit_c2ws, view_directions
from mp3d.splat import GaussianModel

SIZE = 24
N_VIEWS = 12
HIDDEN_BOX = torch.tensor([[-0.6, -0.6, -0.6], [0.6, 0.6, 0.6]])


@dataclass
class GaussianScene:
    """Views of `hidden` (Gaussians at known places) on a white background."""

    views: BlenderScene
    hidden: GaussianModel


def hidden_gaussians(n: int = 40, seed: int = 0) -> GaussianModel:
    """Fairly opaque, fairly large Gaussians in HIDDEN_BOX with random colours (SH degree 0)."""
    model = GaussianModel.random_in_box(
        n, HIDDEN_BOX, torch.Generator().manual_seed(seed), sh_degree=0
    )
    with torch.no_grad():
        model.opacity_logits.fill_(3.0)
        model.log_scales.add_(0.3)
    return model


@torch.no_grad()
def render_scene(
    hidden: GaussianModel, n_views: int = N_VIEWS, size: int = SIZE, offset: float = 0.0
) -> BlenderScene:
    """n_views images [size,size] of `hidden` from the demo scene's camera sphere."""
    c2ws = orbit_c2ws(view_directions(n_views, offset)).float()
    K = intrinsics_from_fov(0.6911, size, size)
    white = torch.ones(3)
    images, alphas = [], []
    for c2w in c2ws:
        image = hidden.render(Camera(K, invert_rigid(c2w), size, size), white)
        images.append(image.rgb.clamp(0, 1))
        alphas.append(image.opacity)
    return BlenderScene(
        torch.stack(images),
        torch.stack(alphas),
        K.expand(n_views, 3, 3).clone(),
        c2ws,
        [f"view_{i}" for i in range(n_views)],
        white,
    )


@pytest.fixture(scope="session")
def gaussian_scene() -> GaussianScene:
    """12 views at 24x24 of 40 known Gaussians."""
    hidden = hidden_gaussians()
    return GaussianScene(render_scene(hidden), hidden)
