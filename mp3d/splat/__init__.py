"""3D Gaussian splatting: scenes of Gaussians, their PLY files (3DGS layout), training."""

from mp3d.rendering import evaluate, render_turntable
from mp3d.splat.checkpoint import load_checkpoint, save_checkpoint
from mp3d.splat.density import (
    DensityControl,
    DensityStats,
    densify_and_prune,
    replace_rows,
    reset_opacity,
)
from mp3d.splat.export import orbit_of_gaussians
from mp3d.splat.model import GaussianModel
from mp3d.splat.ply import load_ply, ply_property_names, save_ply
from mp3d.splat.trainer import SplatConfig, scene_extent, splat_loss, train

__all__ = [
    "DensityControl",
    "DensityStats",
    "GaussianModel",
    "SplatConfig",
    "densify_and_prune",
    "evaluate",
    "load_checkpoint",
    "load_ply",
    "orbit_of_gaussians",
    "ply_property_names",
    "render_turntable",
    "replace_rows",
    "reset_opacity",
    "save_checkpoint",
    "save_ply",
    "scene_extent",
    "splat_loss",
    "train",
]
