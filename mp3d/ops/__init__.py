"""Differentiable kernels. Each family has a torch reference, a C++ CPU and a CUDA path,
picked with ``impl="auto" | "cpp" | "cuda" | "torch"`` (gaussians: the torch reference only,
see mp3d._backend.FAMILIES_WITHOUT_KERNELS)."""

from mp3d.ops import gaussians, hash_encoding, volume_rendering

FAMILIES = {
    "volume_rendering": volume_rendering,
    "hash_encoding": hash_encoding,
    "gaussians": gaussians,
}

__all__ = ["FAMILIES", "gaussians", "hash_encoding", "volume_rendering"]
