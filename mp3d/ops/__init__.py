"""Differentiable kernels. Each family has a torch reference, a C++ CPU and a CUDA path,
picked with ``impl="auto" | "cpp" | "cuda" | "torch"`` (see mp3d._backend), and checks its
inputs: shapes, dtypes and devices always, values (finite, ranges, sortedness) unless turned
off with ``validate=False`` or ``set_checks(False)``.

mp3d.ops imports nothing from the rest of mp3d but mp3d._backend and two leaf modules,
mp3d.transforms (rotation conversions) and mp3d.metrics (the reference SSIM of
mp3d.ops.ssim, the training loss's SSIM kernel).
"""

from mp3d.ops import (
    gaussians,
    hash_encoding,
    ray_marching,
    sh,
    skinning,
    ssim,
    volume_rendering,
)
from mp3d.ops._validation import HostReads, checks, checks_enabled, set_checks
from mp3d.ops.gaussians import (
    project_gaussians,
    quaternion_to_rotation,
    rasterize,
    rasterize_reference,
    rasterize_splats,
    sh_colors,
)
from mp3d.ops.hash_encoding import hash_encode
from mp3d.ops.ray_marching import march_occupancy
from mp3d.ops.sh import spherical_harmonics
from mp3d.ops.skinning import forward_kinematics, lbs
from mp3d.ops.volume_rendering import ray_offsets, render_rays, render_weights

# The op families with compiled kernels (mp3d._backend.FAMILY_OPS lists their operators).
FAMILIES = {
    "volume_rendering": volume_rendering,
    "hash_encoding": hash_encoding,
    "gaussians": gaussians,
    "skinning": skinning,
    "kinematics": skinning,  # forward_kinematics, beside lbs
    "ray_marching": ray_marching,
    "ssim": ssim,
}

__all__ = [
    "FAMILIES",
    "HostReads",
    "checks",
    "checks_enabled",
    "gaussians",
    "hash_encode",
    "march_occupancy",
    "hash_encoding",
    "forward_kinematics",
    "lbs",
    "project_gaussians",
    "quaternion_to_rotation",
    "rasterize",
    "rasterize_reference",
    "rasterize_splats",
    "ray_offsets",
    "render_rays",
    "render_weights",
    "set_checks",
    "ray_marching",
    "sh",
    "sh_colors",
    "skinning",
    "spherical_harmonics",
    "volume_rendering",
]
