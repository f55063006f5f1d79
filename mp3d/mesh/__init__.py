"""Mesh extraction from implicit fields, mesh file output and surface metrics."""

from mp3d.mesh.marching_cubes import NoSurfaceError, extract_mesh, save_mesh
from mp3d.mesh.metrics import (
    SurfaceMetrics,
    mesh_metrics,
    point_cloud_metrics,
    sample_surface,
    volumetric_iou,
)

__all__ = [
    "NoSurfaceError",
    "SurfaceMetrics",
    "extract_mesh",
    "mesh_metrics",
    "point_cloud_metrics",
    "sample_surface",
    "save_mesh",
    "volumetric_iou",
]
