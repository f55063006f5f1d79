"""Gaussian splats (3DGS PLY files, mp3d splatting checkpoints): drawn in the browser by
viser's splat renderer (colour from the SH band-0 term, covariances from scales and
quaternions), or exactly on the server by mp3d.ops.gaussians.rasterize at the client's
camera (view-dependent SH colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mp3d.cameras import Camera
from mp3d.rendering import Rendering
from mp3d.splat.model import SH_C0, GaussianModel
from mp3d.viewer.layers import Layer, bounds_of

__all__ = ["SplatLayer", "splat_arrays"]

BACKGROUND = 1.0  # the viewer's white page, for the server-side render


@torch.no_grad()
def splat_arrays(model: GaussianModel) -> dict[str, np.ndarray]:
    """What viser's splat renderer takes, float32: centers [N,3], covariances [N,3,3]
    (R diag(s)^2 R^T, world units squared), rgbs [N,3] in [0,1] (SH band 0 only:
    SH_C0 * dc + 0.5, clamped) and opacities [N,1] in (0,1)."""
    means = model.means.detach().float().cpu()
    rotations = torch.nn.functional.normalize(model.quats.detach().float().cpu(), dim=-1)
    from mp3d.transforms import quaternion_to_matrix

    rs = quaternion_to_matrix(rotations) * model.scales.detach().float().cpu()[:, None, :]
    covariances = rs @ rs.transpose(1, 2)
    rgbs = (SH_C0 * model.sh_dc.detach().float().cpu()[:, 0] + 0.5).clamp(0.0, 1.0)
    opacities = model.opacities.detach().float().cpu()[:, None]
    return {
        "centers": means.numpy(),
        "covariances": covariances.numpy(),
        "rgbs": rgbs.numpy(),
        "opacities": opacities.numpy(),
    }


class SplatLayer(Layer):
    """A GaussianModel shown as splats; renders_on_server for the exact, view-dependent image."""

    kind = "splats"
    renders_on_server = True
    render_strips = 1

    def __init__(self, path, name, model: GaussianModel) -> None:
        super().__init__(path, name)
        self.model = model.eval()
        self.handle = None

    @classmethod
    def from_ply(cls, path: str | Path, name: str) -> SplatLayer:
        """The Gaussians of a 3DGS PLY file (every SH band it holds)."""
        return cls(path, name, GaussianModel.load_ply(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str) -> SplatLayer:
        """The Gaussians of a checkpoint written by `mp3d splat train`."""
        from mp3d.splat.checkpoint import load_checkpoint

        return cls(path, name, load_checkpoint(path)[0])

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.path.name} ({len(self.model):,} Gaussians)"

    def bounds(self) -> np.ndarray | None:
        """The box of the Gaussians' centres between the 1st and 99th percentiles (a few
        far-off floaters must not shrink the first view)."""
        means = self.model.means.detach().float().cpu().numpy()
        if len(means) < 100:
            return bounds_of(means)
        return np.percentile(means, [1.0, 99.0], axis=0)

    def attach(self, server) -> None:
        super().attach(server)
        self.upload()

    def upload(self) -> None:
        """Sends the current Gaussians to the browser (again, after training changed them)."""
        arrays = splat_arrays(self.model)
        visible = self.handle.visible if self.handle is not None else True
        self.handle = self.server.scene.add_gaussian_splats(f"{self.name}/splats", **arrays)
        self.handle.visible = visible

    def set_server_rendered(self, active: bool) -> None:
        if self.handle is not None:
            self.handle.visible = not active

    @torch.no_grad()
    def render(self, camera: Camera) -> Rendering:
        """The exact rasterization (all active SH bands) on a white background."""
        return self.model.render(camera, background=BACKGROUND)
