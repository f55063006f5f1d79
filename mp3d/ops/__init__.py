"""Differentiable kernels. Each family has a torch reference, a C++ CPU and a CUDA path,
picked with ``impl="auto" | "cpp" | "cuda" | "torch"``."""

from mp3d.ops import volume_rendering

FAMILIES = {"volume_rendering": volume_rendering}

__all__ = ["FAMILIES", "volume_rendering"]
