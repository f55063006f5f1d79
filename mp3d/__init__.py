"""mp3d: a PyTorch toolkit for 3D machine perception."""

__version__ = "0.1.0"
