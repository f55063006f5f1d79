"""Differentiable kernels. Each family has a torch reference, a C++ CPU and a CUDA path,
picked with ``impl="auto" | "cpp" | "cuda" | "torch"``."""

from mp3d.ops import hash_encoding, volume_rendering

FAMILIES = {"volume_rendering": volume_rendering, "hash_encoding": hash_encoding}

__all__ = ["FAMILIES", "hash_encoding", "volume_rendering"]
