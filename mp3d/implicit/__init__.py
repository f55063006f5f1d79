"""Implicit surfaces: ground truth from meshes (occupancy, signed distance, samples) and the
networks that learn them (so far IGR, a signed-distance field fitted to a point cloud)."""

from mp3d.implicit.igr import IGRConfig, IGRField, fit_igr, sdf_mesh
from mp3d.implicit.sampling import (
    Normalisation,
    near_surface_points,
    normalise_mesh,
    occupancy,
    signed_distance,
    surface_points,
    uniform_points,
)

__all__ = [
    "IGRConfig",
    "IGRField",
    "Normalisation",
    "fit_igr",
    "sdf_mesh",
    "near_surface_points",
    "normalise_mesh",
    "occupancy",
    "signed_distance",
    "surface_points",
    "uniform_points",
]
