"""Training a NeRF on posed images: random ray batches, Adam with a decaying learning rate,
occupancy-grid refreshes, progress, TensorBoard scalars, and atomic checkpoints to resume."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from tqdm import tqdm

from mp3d.cameras import invert_rigid, random_rays
from mp3d.data.blender import BlenderScene
from mp3d.metrics import mse_to_psnr
from mp3d.nerf.checkpoint import load_checkpoint, save_checkpoint
from mp3d.nerf.model import ModelLayout, ModelSpec, NeRFModel

BACKGROUNDS = ("white", "black", "random")


@dataclass
class TrainConfig(ModelLayout):
    """How to train. `steps` bounds the run; `minutes`, if set, bounds it by wall time too.
    The inherited layout fields size the model (march_steps defaults to ~1.5 per pixel)."""

    model: str = "hash"
    steps: int = 5000
    minutes: float | None = None
    batch_rays: int = 4096
    lr: float | None = None  # default: 1e-2 for hash, 5e-4 for vanilla
    lr_final_factor: float = 0.03
    background: str = "random"
    grid_update_every: int = 16
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.steps < 1 or self.batch_rays < 1:
            raise ValueError(f"steps and batch_rays must be >= 1, got {self.steps}, {self.batch_rays}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")

    def model_spec(self, dataset: BlenderScene) -> ModelSpec:
        """The spec of a model for `dataset`: its box and depth range, this layout."""
        layout = {f.name: getattr(self, f.name) for f in fields(ModelLayout)}
        if layout["march_steps"] is None:
            layout["march_steps"] = max(64, round(1.5 * max(dataset.width, dataset.height)))
        return ModelSpec(kind=self.model, aabb=dataset.aabb.tolist(), near=dataset.near,
                         far=dataset.far, **layout)

    @property
    def initial_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-2 if self.model == "hash" else 5e-4


def _optimizer(model: NeRFModel, config: TrainConfig) -> torch.optim.Optimizer:
    if config.model == "hash":
        return torch.optim.Adam(model.parameters(), lr=config.initial_lr, betas=(0.9, 0.99),
                                eps=1e-15)
    return torch.optim.Adam(model.parameters(), lr=config.initial_lr)


def _training_targets(dataset: BlenderScene, image: torch.Tensor, pixels: torch.Tensor,
                      background: torch.Tensor) -> torch.Tensor:
    """Ground-truth colours [n,3] of the sampled pixels, re-composited on `background` [n,3]."""
    rgb = dataset.images[image, pixels[:, 1], pixels[:, 0]]
    alpha = dataset.alphas[image, pixels[:, 1], pixels[:, 0]][:, None]
    return rgb + (1.0 - alpha) * (background - dataset.background)


def _lr_factor(progress: float, final: float) -> float:
    """Full learning rate for the first half of training, then exponential decay to `final`."""
    return final ** max(0.0, 2.0 * progress - 1.0)


class _Clock:
    """Training progress in [0,1] by steps and by wall time, whichever is further."""

    def __init__(self, config: TrainConfig, elapsed: float):
        self.config = config
        self.started = time.perf_counter() - elapsed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def progress(self, step: int) -> float:
        fraction = step / self.config.steps
        if self.config.minutes is not None:
            fraction = max(fraction, self.elapsed / (60.0 * self.config.minutes))
        return min(fraction, 1.0)


def _tensorboard(out_dir: Path | None):
    if out_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def train(dataset: BlenderScene, config: TrainConfig | None = None,
          out_dir: str | Path | None = None, device: str | torch.device | None = None,
          progress: bool = True, meta: dict | None = None) -> NeRFModel:
    """Trains a NeRF on `dataset`; with `out_dir`, checkpoints to out_dir/checkpoint.pt and
    resumes from it if present (`meta`, e.g. where the data came from, is stored with it).
    Returns the model (in eval mode)."""
    config = config or TrainConfig()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir) if out_dir is not None else None
    checkpoint = out_dir / "checkpoint.pt" if out_dir is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)

    if checkpoint is not None and checkpoint.is_file():
        model, state = load_checkpoint(checkpoint, device=device)
        if model.spec.kind != config.model:
            raise ValueError(f"{checkpoint}: holds a {model.spec.kind!r} model, "
                             f"but config.model is {config.model!r}")
        optimizer = _optimizer(model, config)
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        generator.set_state(state["generator"])
    else:
        model = NeRFModel(config.model_spec(dataset)).to(device)
        optimizer = _optimizer(model, config)
        step, elapsed = 0, 0.0

    data = _on_device(dataset, device)
    if config.model == "hash" and step == 0:
        model.grid.carve(data.Ks, invert_rigid(data.c2ws), data.alphas)
    clock = _Clock(config, elapsed)
    writer = _tensorboard(out_dir)
    model.train()
    # A time-bounded run shows its progress in seconds of the budget, else in steps.
    timed = config.minutes is not None
    bar = tqdm(total=round(60 * config.minutes) if timed else config.steps,
               initial=round(elapsed) if timed else step, unit="s" if timed else "step",
               desc="training NeRF", disable=not progress, dynamic_ncols=True)
    rays_seen = 0
    while step < config.steps and clock.progress(step) < 1.0:
        for group in optimizer.param_groups:
            group["lr"] = config.initial_lr * _lr_factor(clock.progress(step), config.lr_final_factor)
        if config.model == "hash" and step % config.grid_update_every == 0:
            model.grid.update(model.field.density, model.step_size, generator=generator)
        loss, mse = _train_step(model, optimizer, data, config, generator, device)
        step += 1
        rays_seen += config.batch_rays
        bar.update(min(round(clock.elapsed), bar.total) - bar.n if timed else 1)
        if step % config.log_every == 0 or step == 1:
            psnr = mse_to_psnr(mse)
            bar.set_postfix(step=step, loss=f"{loss:.4f}", psnr=f"{psnr:.2f}")
            if writer is not None:
                writer.add_scalar("train/loss", loss, step)
                writer.add_scalar("train/psnr", psnr, step)
        if checkpoint is not None and step % config.checkpoint_every == 0:
            save_checkpoint(checkpoint, model, optimizer, step, clock.elapsed, generator, config,
                            meta)
    bar.close()
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, step, clock.elapsed, generator, config, meta)
    if writer is not None:
        writer.close()
    model.train_stats = {"steps": step, "seconds": clock.elapsed,
                         "rays_per_second": rays_seen / max(clock.elapsed - elapsed, 1e-9)}
    return model.eval()


def _on_device(dataset: BlenderScene, device: torch.device) -> BlenderScene:
    return BlenderScene(dataset.images.to(device), dataset.alphas.to(device),
                        dataset.Ks.to(device), dataset.c2ws.to(device), dataset.names,
                        dataset.background.to(device), dataset.near, dataset.far,
                        dataset.aabb.to(device))


def _train_step(model: NeRFModel, optimizer: torch.optim.Optimizer, data: BlenderScene,
                config: TrainConfig, generator: torch.Generator, device: torch.device
                ) -> tuple[float, float]:
    origins, directions, image, pixels = random_rays(data.Ks, data.c2ws, data.width, data.height,
                                                     config.batch_rays, generator=generator)
    n = origins.shape[0]
    if config.background == "random":
        background = torch.rand(n, 3, generator=generator).to(device)
    else:
        value = 1.0 if config.background == "white" else 0.0
        background = torch.full((n, 3), value, device=device)
    target = _training_targets(data, image, pixels, background)
    out = model.render_rays(origins, directions, background, jitter=True, generator=generator)
    mse = torch.mean((out["rgb"] - target) ** 2)
    loss = mse
    if "coarse_rgb" in out:
        loss = loss + torch.mean((out["coarse_rgb"] - target) ** 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), float(mse.detach())
