"""Gaussian-splatting checkpoints: one file with the Gaussians (raw parameters and active SH
degree), the optimizer and densification state, progress and config, written atomically so
an interrupted save never replaces a good checkpoint, and read without running code."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from mp3d.io import read_checkpoint, write_checkpoint
from mp3d.splat.density import DensityStats
from mp3d.splat.model import GaussianModel

__all__ = [
    "FORMAT",
    "VERSION",
    "density_stats_of",
    "gaussians_from_payload",
    "load_checkpoint",
    "model_payload",
    "save_checkpoint",
]

FORMAT = "mp3d.splat"
VERSION = 1


def model_payload(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer | None = None,
    stats: DensityStats | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    """What a splatting checkpoint holds besides progress, config and meta: the Gaussians,
    optimizer state, density statistics and random state. Refuses (ValueError) a model with
    non-finite parameters rather than replace a good checkpoint with it."""
    for name in GaussianModel.PARAMETER_NAMES:
        if not bool(torch.isfinite(getattr(model, name).detach()).all()):
            raise ValueError(f"model.{name} holds non-finite values; not writing a checkpoint")
    return {
        "gaussians": {
            name: getattr(model, name).detach().cpu() for name in GaussianModel.PARAMETER_NAMES
        },
        "max_sh_degree": model.max_sh_degree,
        "active_sh_degree": model.active_sh_degree,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "density": None
        if stats is None
        else {
            "grad_sum": stats.grad_sum.cpu(),
            "count": stats.count.cpu(),
            "max_radii": stats.max_radii.cpu(),
        },
        "generator": generator.get_state() if generator is not None else None,
    }


def save_checkpoint(
    path: str | Path,
    model: GaussianModel,
    optimizer: torch.optim.Optimizer | None,
    stats: DensityStats | None,
    step: int,
    elapsed: float,
    generator: torch.Generator | None,
    config=None,
    meta: dict | None = None,
) -> Path:
    """Writes the Gaussians, optimizer state, density statistics, step, elapsed seconds,
    random state, config (a dataclass) and `meta` to `path` (atomically)."""
    try:
        payload = model_payload(model, optimizer, stats, generator)
    except ValueError as error:
        raise ValueError(f"{error} at step {step}; not overwriting {path}") from error
    return write_checkpoint(
        path,
        FORMAT,
        VERSION,
        {
            **payload,
            "step": step,
            "elapsed": elapsed,
            "config": asdict(config) if config is not None else None,
            "meta": meta or {},
        },
    )


def gaussians_from_payload(payload: dict, path: str | Path | None = None) -> GaussianModel:
    """The GaussianModel (on the CPU, at its saved active SH degree) a payload holds."""
    try:
        values = payload["gaussians"]
        return GaussianModel(
            values["means"],
            values["quats"],
            values["log_scales"],
            values["opacity_logits"],
            torch.cat([values["sh_dc"], values["sh_rest"]], dim=1),
            active_sh_degree=payload["active_sh_degree"],
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: its Gaussians do not form a model ({error})") from error


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[GaussianModel, dict]:
    """Reads a splatting checkpoint -> (GaussianModel on `device` at its saved active SH
    degree, the rest of the payload)."""
    path = Path(path)
    payload = read_checkpoint(path, FORMAT, VERSION, "splatting")
    missing = sorted({"gaussians", "active_sh_degree", "step", "elapsed"} - payload.keys())
    if missing:
        raise ValueError(f"{path}: splatting checkpoint lacks {', '.join(missing)}")
    payload.setdefault("meta", {})
    return gaussians_from_payload(payload, path).to(device), payload


def density_stats_of(payload: dict, n: int, device: str | torch.device) -> DensityStats:
    """The density statistics stored in a checkpoint payload, or zeros for n Gaussians if
    it holds none (or holds them for a different count)."""
    stored = payload.get("density")
    if stored is None or stored["grad_sum"].shape != (n,):
        return DensityStats.zeros(n, device)
    return DensityStats(
        stored["grad_sum"].to(device), stored["count"].to(device), stored["max_radii"].to(device)
    )
