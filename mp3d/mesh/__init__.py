"""Mesh extraction from implicit fields and mesh file output."""

from mp3d.mesh.marching_cubes import NoSurfaceError, extract_mesh, save_mesh

__all__ = ["NoSurfaceError", "extract_mesh", "save_mesh"]
