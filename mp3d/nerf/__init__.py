"""Neural radiance fields: fields, samplers, training, rendering and mesh export."""

from mp3d.nerf.checkpoint import load_checkpoint, save_checkpoint
from mp3d.nerf.export import evaluate, extract_mesh, render_turntable
from mp3d.nerf.model import ModelSpec, NeRFModel
from mp3d.nerf.trainer import TrainConfig, train

__all__ = [
    "ModelSpec",
    "NeRFModel",
    "TrainConfig",
    "evaluate",
    "extract_mesh",
    "load_checkpoint",
    "render_turntable",
    "save_checkpoint",
    "train",
]
