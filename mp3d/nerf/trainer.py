"""Training a NeRF on posed images: random ray batches, Adam with a decaying learning rate,
occupancy-grid refreshes, on the shared training layer (budget, progress, TensorBoard
scalars, atomic checkpoints to resume). Under torchrun each rank draws its own rays, the
model is wrapped in DistributedDataParallel (gradients averaged; its buffers, the occupancy
grid among them, broadcast from rank 0 at every step), and rank 0 alone writes checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.profiler import record_function

from mp3d import distributed
from mp3d.cameras import invert_rigid, random_rays
from mp3d.data.views import PosedViews
from mp3d.metrics import mse_to_psnr
from mp3d.nerf.checkpoint import FORMAT, VERSION, load_checkpoint, model_payload
from mp3d.nerf.model import ModelLayout, ModelSpec, NeRFModel
from mp3d.training import (
    TrainerConfig,
    TrainingRun,
    check_choice,
    check_float,
    check_int,
    resolve_device,
)

BACKGROUNDS = ("white", "black", "random")
# The automatic march step follows the pixel size up to about 340x340 images. Following it
# further multiplied the samples per ray, and with them the cost of a step and of a render
# (5x at 800x800: bench/profile_nerf_step.py); 512 rather than 300 steps at 800x800 cost
# 0.7x the steps of a 10-minute CPU run and gain 0.9 dB (bench/quality_nerf_lego.py).
MAX_AUTO_MARCH_STEPS = 512


@dataclass
class TrainConfig(TrainerConfig, ModelLayout):
    """How to train. `steps` bounds the run; `minutes`, if set, bounds it by wall time too.
    The inherited layout fields size the model (march_steps defaults to 1.5 per pixel of
    the larger image side, at most MAX_AUTO_MARCH_STEPS).
    `batch_rays` is the batch of each process (under torchrun the total is N times it)."""

    model: str = "hash"
    steps: int | None = 5000
    batch_rays: int = 4096
    lr: float | None = None  # default: 1e-2 for hash, 5e-4 for vanilla
    lr_final_factor: float = 0.03
    background: str = "random"
    grid_update_every: int = 16

    def validate(self) -> None:
        super().validate()
        check_choice("model", self.model, ("hash", "vanilla"))
        check_choice("background", self.background, BACKGROUNDS)
        check_int("batch_rays", self.batch_rays, 1, 1 << 24)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_int("grid_update_every", self.grid_update_every, 1)

    def model_spec(self, dataset: PosedViews) -> ModelSpec:
        """The spec of a model for `dataset`: its box and depth range, this layout."""
        layout = {f.name: getattr(self, f.name) for f in fields(ModelLayout)}
        if layout["march_steps"] is None:
            per_pixel = round(1.5 * max(dataset.width, dataset.height))
            layout["march_steps"] = min(max(64, per_pixel), MAX_AUTO_MARCH_STEPS)
        return ModelSpec(
            kind=self.model,
            aabb=[float(v) for v in dataset.aabb.tolist()],
            near=float(dataset.near),
            far=float(dataset.far),
            **layout,
        )

    @property
    def initial_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-2 if self.model == "hash" else 5e-4


def _optimizer(model: NeRFModel, config: TrainConfig) -> torch.optim.Optimizer:
    # The fused Adam updates a hash table in one pass: on the CPU 11x faster than the
    # per-parameter loop (4.3 vs 48.5 ms a step for 2^17 entries x 16 levels, one thread).
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    if config.model == "hash":
        return torch.optim.Adam(
            model.parameters(), lr=config.initial_lr, betas=(0.9, 0.99), eps=1e-15, fused=fused
        )
    return torch.optim.Adam(model.parameters(), lr=config.initial_lr, fused=fused)


def _training_targets(
    dataset: PosedViews, image: torch.Tensor, pixels: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """Ground-truth colours [n,3] of the sampled pixels, re-composited on `background` [n,3]
    where the views have alpha masks (opaque images are their own targets)."""
    rgb = dataset.images[image, pixels[:, 1], pixels[:, 0]]
    alphas = getattr(dataset, "alphas", None)
    if alphas is None:
        return rgb
    alpha = alphas[image, pixels[:, 1], pixels[:, 0]][:, None]
    return rgb + (1.0 - alpha) * (background - dataset.background_rgb.to(rgb))


def _lr_factor(progress: float, final: float) -> float:
    """Full learning rate for the first half of training, then exponential decay to `final`."""
    return final ** max(0.0, 2.0 * progress - 1.0)


def _check_dataset(dataset: PosedViews) -> None:
    for name in ("images", "Ks", "c2ws", "aabb"):
        if not isinstance(getattr(dataset, name, None), torch.Tensor):
            raise ValueError(
                f"dataset must have a tensor .{name} (a PosedViews such as "
                f"BlenderScene or ColmapScene), got {type(dataset).__name__}"
            )
    if len(dataset) == 0:
        raise ValueError("dataset must hold at least one view, got 0")


def train(
    dataset: PosedViews,
    config: TrainConfig | None = None,
    out_dir=None,
    device: str | torch.device | None = None,
    progress: bool = True,
    meta: dict | None = None,
    fresh: bool = False,
) -> NeRFModel:
    """Trains a NeRF on `dataset` (any PosedViews with a scene box: Blender, COLMAP); with
    `out_dir`, checkpoints to out_dir/checkpoint.pt and resumes from it if present (unless
    `fresh`; a checkpoint whose `meta`, e.g. where the data came from, differs is refused).
    Returns the model (in eval mode) with .train_stats."""
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_dataset(dataset)
    device = resolve_device(device)
    distributed.init(device)
    rank = distributed.rank()
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    rays = torch.Generator().manual_seed(config.seed + rank)  # each rank its own batches
    grid_draws = torch.Generator().manual_seed(config.seed)  # identical grid updates

    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=meta,
        desc="training NeRF",
        progress=progress,
        fresh=fresh,
        kind="NeRF",
    )
    payload = run.resume()
    if payload is not None:
        model, _ = load_checkpoint(run.checkpoint, device=device)
        if model.spec.kind != config.model:
            raise ValueError(
                f"{run.checkpoint}: holds a {model.spec.kind!r} model, "
                f"but config.model is {config.model!r}"
            )
        optimizer = _optimizer(model, config)
        optimizer.load_state_dict(payload["optimizer"])
        if payload.get("generator") is not None and rank == 0:
            rays.set_state(payload["generator"])
        else:
            rays.manual_seed(config.seed + rank + 7919 * run.step)
        grid_draws.manual_seed(config.seed + run.step)
    else:
        model = NeRFModel(config.model_spec(dataset)).to(device)
        optimizer = _optimizer(model, config)

    data = dataset.to(device)
    alphas = getattr(data, "alphas", None)
    if config.model == "hash" and run.step == 0 and alphas is not None:
        model.grid.carve(data.Ks, invert_rigid(data.c2ws), alphas)
    network = model
    if distributed.active():
        distributed.broadcast_(list(model.state_dict().values()))
        network = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    model.train()
    rays_seen = 0
    while run.running():
        for group in optimizer.param_groups:
            group["lr"] = config.initial_lr * _lr_factor(run.progress, config.lr_final_factor)
        if config.model == "hash" and run.step % config.grid_update_every == 0:
            model.grid.update(model.field.density, model.step_size, generator=grid_draws)
        loss, mse = _train_step(network, optimizer, data, config, rays, device)
        rays_seen += config.batch_rays
        run.advance(loss=loss, psnr=mse_to_psnr(mse))
        if run.checkpoint_due():
            run.save(model_payload(model, optimizer, rays))
    stats = run.finish(model_payload(model, optimizer, rays))
    seconds = max(stats["seconds"] - run.start_elapsed, 1e-9)
    model.train_stats = {**stats, "rays_per_second": rays_seen * distributed.world_size() / seconds}
    return model.eval()


def _train_step(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: PosedViews,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[float, float]:
    """One batch of random rays: render, MSE (plus the coarse MSE of the vanilla model),
    backward, Adam step -> (loss, mse). Its stages are labelled "nerf.*" for torch.profiler
    (bench/profile_nerf_step.py)."""
    with record_function("nerf.rays"):
        origins, directions, image, pixels = random_rays(
            data.Ks, data.c2ws, data.width, data.height, config.batch_rays, generator=generator
        )
        n = origins.shape[0]
        if config.background == "random":
            background = torch.rand(n, 3, generator=generator).to(device)
        else:
            value = 1.0 if config.background == "white" else 0.0
            background = torch.full((n, 3), value, device=device)
        target = _training_targets(data, image, pixels, background)
    out = network(origins, directions, background, jitter=True, generator=generator)
    with record_function("nerf.loss"):
        mse = torch.mean((out["rgb"] - target) ** 2)
        loss = mse
        if "coarse_rgb" in out:
            loss = loss + torch.mean((out["coarse_rgb"] - target) ** 2)
    with record_function("nerf.backward"):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with record_function("nerf.optimizer"):
        optimizer.step()
    return float(loss.detach()), float(mse.detach())
