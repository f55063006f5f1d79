"""Differentiable kernels. Each family has a torch reference, a C++ CPU and a CUDA path,
picked with ``impl="auto" | "cpp" | "cuda" | "torch"``."""

from mp3d.ops import gaussians, hash_encoding, skinning, volume_rendering

FAMILIES = {
    "volume_rendering": volume_rendering,
    "hash_encoding": hash_encoding,
    "gaussians": gaussians,
    "skinning": skinning,
}

__all__ = ["FAMILIES", "gaussians", "hash_encoding", "skinning", "volume_rendering"]
