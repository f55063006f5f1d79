"""mp3d: a PyTorch toolkit for 3D machine perception."""

from mp3d.ops._validation import checks, checks_enabled, set_checks

__version__ = "0.1.0"

__all__ = ["__version__", "checks", "checks_enabled", "set_checks"]
