"""3D Gaussian splatting: scenes of Gaussians, their PLY files (3DGS layout), training."""

from mp3d.splat.ply import load_ply, ply_property_names, save_ply

__all__ = ["load_ply", "ply_property_names", "save_ply"]
