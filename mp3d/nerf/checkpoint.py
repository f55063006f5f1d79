"""NeRF checkpoints: one file with the model spec, weights, optimizer and progress,
written atomically so an interrupted save never replaces a good checkpoint."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from mp3d.io import atomic_path, read_checkpoint
from mp3d.nerf.model import ModelSpec, NeRFModel

FORMAT = "mp3d.nerf"
VERSION = 1


def save_checkpoint(path: str | Path, model: NeRFModel, optimizer, step: int, elapsed: float,
                    generator: torch.Generator, config, meta: dict | None = None) -> Path:
    """Writes model, optimizer state, progress and `meta` to `path` (atomically)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": asdict(model.spec),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "elapsed": elapsed,
        "generator": generator.get_state() if generator is not None else None,
        "config": asdict(config) if config is not None else None,
        "meta": meta or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[NeRFModel, dict]:
    """Reads a NeRF checkpoint -> (model on `device`, the rest of the payload)."""
    path = Path(path)
    payload = read_checkpoint(path, FORMAT, VERSION, "NeRF")
    model = NeRFModel(ModelSpec(**payload["spec"]))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit a {payload['spec']['kind']!r} model "
                         f"({error})") from error
    return model.to(device), payload
