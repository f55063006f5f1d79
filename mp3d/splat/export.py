"""Framing trained Gaussians for a turntable: the orbit around a bare PLY file's content.

A trained scene turns about the orbit its cameras suggest (mp3d.cameras.orbit_of_views);
a PLY file has no cameras, so its orbit comes from the Gaussians and an up axis the caller
names. Evaluation and turntables themselves are shared by every model (mp3d.rendering).
"""

from __future__ import annotations

import math

import torch

from mp3d.cameras import AXES, Orbit
from mp3d.splat.model import GaussianModel

__all__ = ["orbit_of_gaussians"]

FRAMING_OPACITY = 0.1  # Gaussians at least this opaque decide where a PLY's object is
FRAMING_QUANTILE = 0.95  # ... and the radius that holds this fraction of them is framed


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
