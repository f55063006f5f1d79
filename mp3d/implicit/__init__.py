"""Implicit surfaces: ground truth from meshes (occupancy, signed distance, samples) and,
later, the occupancy and signed-distance networks that learn them."""

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
    "Normalisation",
    "near_surface_points",
    "normalise_mesh",
    "occupancy",
    "signed_distance",
    "surface_points",
    "uniform_points",
]
