"""mp3d: a PyTorch toolkit for 3D machine perception."""

from __future__ import annotations

__version__ = "0.1.0"

# The check switches live with the ops; they are looked up on first use so that `import mp3d`
# (and with it `mp3d --help`) does not import torch.
_FROM_VALIDATION = ("checks", "checks_enabled", "set_checks")

__all__ = ["__version__", *_FROM_VALIDATION]


def __getattr__(name: str):
    if name in _FROM_VALIDATION:
        from mp3d.ops import _validation

        return getattr(_validation, name)
    raise AttributeError(f"module 'mp3d' has no attribute {name!r}")
