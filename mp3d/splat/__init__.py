"""3D Gaussian splatting: scenes of Gaussians, their PLY files (3DGS layout), training."""

from mp3d.splat.ply import load_ply, ply_property_names, save_ply
from mp3d.splat.model import GaussianModel
from mp3d.splat.density import DensityStats, densify_and_prune, replace_rows, reset_opacity

__all__ = [
    "DensityStats",
    "GaussianModel",
    "densify_and_prune",
    "load_ply",
    "ply_property_names",
    "replace_rows",
    "reset_opacity",
    "save_ply",
]
