"""NeRF checkpoints: one file with the model spec, weights, optimizer and progress,
written atomically so an interrupted save never replaces a good checkpoint, and read
without running code (tensors and plain containers only)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from mp3d.io import read_checkpoint, write_checkpoint
from mp3d.nerf.model import ModelSpec, NeRFModel

FORMAT = "mp3d.nerf"
VERSION = 1


def model_payload(
    model: NeRFModel,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    """What a NeRF checkpoint holds besides progress, config and meta: spec, weights,
    optimizer state and the random state of the ray draws."""
    return {
        "spec": asdict(model.spec),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state() if generator is not None else None,
    }


def save_checkpoint(
    path: str | Path,
    model: NeRFModel,
    optimizer,
    step: int,
    elapsed: float,
    generator: torch.Generator | None,
    config=None,
    meta: dict | None = None,
) -> Path:
    """Writes model, optimizer state, progress, config (a dataclass) and `meta` to `path`
    (atomically)."""
    return write_checkpoint(
        path,
        FORMAT,
        VERSION,
        {
            **model_payload(model, optimizer, generator),
            "step": step,
            "elapsed": elapsed,
            "config": asdict(config) if config is not None else None,
            "meta": meta or {},
        },
    )


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[NeRFModel, dict]:
    """Reads a NeRF checkpoint -> (model on `device`, the rest of the payload)."""
    path = Path(path)
    payload = read_checkpoint(path, FORMAT, VERSION, "NeRF")
    missing = sorted({"spec", "model", "step", "elapsed"} - payload.keys())
    if missing:
        raise ValueError(f"{path}: NeRF checkpoint lacks {', '.join(missing)}")
    try:
        model = NeRFModel(ModelSpec(**payload["spec"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: its model spec is not valid ({error})") from error
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path}: weights do not fit a {payload['spec'].get('kind')!r} model ({error})"
        ) from error
    payload.setdefault("meta", {})
    return model.to(device), payload
