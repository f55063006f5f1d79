"""Training 3D Gaussians on posed images, as in the original 3D Gaussian splatting code.

One random training view per step; loss (1 - lambda) L1 + lambda (1 - SSIM) with
lambda = 0.2; Adam (eps 1e-15) with one learning rate per parameter group; SH degree raised
every 1000 steps; adaptive density control (mp3d.splat.density) on the original schedule:
gradient statistics before step 15000, densify and prune every 100 steps after step 500,
opacities reset every 3000 steps, Gaussians larger than 20 px on screen pruned once past the
first reset. The scene extent, which scales the means' learning rate and the size tests of
densification, is 1.1 x the largest distance of a camera from the cameras' mean centre.

Short runs: the original schedule is written for 30000 steps. Here the schedule's ends follow
the run's length, its intervals do not:
- the means' learning rate decays exponentially from 1.6e-4 to 1.6e-6 (x extent) over the
  whole run, whatever its length: by steps, or by wall time under a `minutes` budget,
  whichever is further along (as the NeRF trainer does);
- densification (and with it opacity resets) stops at step 15000 or half-way through the
  run, whichever comes first, so every run ends with a settling phase free of resets;
- intervals (densify every 100, reset every 3000, SH every 1000 steps) stay in steps: they
  set how many views the gradient statistics average over and how long the optimizer has to
  recover, which do not shrink with the run. A run shorter than 1000 steps therefore never
  densifies with the defaults; shorten `densify_from`/`densify_every` for such runs.
For 30000 steps all of this is exactly the original schedule.

Checkpoints go to out_dir/checkpoint.pt (atomically: a crash never loses the previous one),
and training resumes from there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mp3d._backend import IMPLS
from mp3d.cameras import invert_rigid
from mp3d.data.views import PosedViews
from mp3d.metrics import mse_to_psnr, ssim
from mp3d.splat.checkpoint import density_stats_of, load_checkpoint, save_checkpoint
from mp3d.splat.density import (
    GRAD_THRESHOLD,
    MIN_OPACITY,
    PERCENT_DENSE,
    DensityStats,
    densify_and_prune,
    reset_opacity,
)
from mp3d.splat.export import view_background
from mp3d.splat.model import GaussianModel

__all__ = ["SplatConfig", "means_lr_factor", "scene_extent", "splat_loss", "train"]

CHECKPOINT_NAME = "checkpoint.pt"
EXTENT_MARGIN = 1.1
SSIM_WINDOW = 11


@dataclass
class SplatConfig:
    """How to train Gaussians; defaults are those of the original 3DGS code. `steps` and/or
    `minutes` bound the run (either may be None, not both); learning rates of the means are
    multiplied by the scene extent. See the module docstring for short runs."""

    steps: int | None = 30_000
    minutes: float | None = None
    means_lr: float = 1.6e-4
    means_lr_final: float = 1.6e-6
    sh_dc_lr: float = 2.5e-3
    sh_rest_lr: float = 2.5e-3 / 20
    opacity_lr: float = 0.05
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    adam_eps: float = 1e-15
    ssim_weight: float = 0.2
    sh_every: int = 1000
    densify_from: int = 500
    densify_until: int = 15_000
    densify_until_fraction: float = 0.5
    densify_every: int = 100
    grad_threshold: float = GRAD_THRESHOLD
    percent_dense: float = PERCENT_DENSE
    min_opacity: float = MIN_OPACITY
    opacity_reset_every: int = 3000
    max_screen_size: float | None = 20.0
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    impl: str = "auto"

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("steps and minutes must not both be None: one has to bound the run")
        if self.steps is not None:
            _check_int("steps", self.steps, 1)
        if self.minutes is not None and not _positive(self.minutes):
            raise ValueError(f"minutes must be > 0 or None, got {self.minutes!r}")
        for name in ("means_lr", "means_lr_final", "sh_dc_lr", "sh_rest_lr", "opacity_lr",
                     "scales_lr", "quats_lr", "adam_eps", "grad_threshold", "percent_dense"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        for name in ("ssim_weight", "densify_until_fraction", "min_opacity"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("sh_every", "densify_every", "opacity_reset_every", "checkpoint_every",
                     "log_every"):
            _check_int(name, getattr(self, name), 1)
        for name in ("densify_from", "densify_until", "seed"):
            _check_int(name, getattr(self, name), 0)
        if self.max_screen_size is not None and not _positive(self.max_screen_size):
            raise ValueError(f"max_screen_size must be > 0 or None, got {self.max_screen_size!r}")
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")

    def learning_rates(self, extent: float) -> dict[str, float]:
        """Initial learning rate of each GaussianModel parameter for a scene of `extent`."""
        return {"means": self.means_lr * extent, "quats": self.quats_lr,
                "log_scales": self.scales_lr, "opacity_logits": self.opacity_lr,
                "sh_dc": self.sh_dc_lr, "sh_rest": self.sh_rest_lr}


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------- pieces


def scene_extent(c2ws: torch.Tensor) -> float:
    """1.1 x the largest distance of a camera centre from their mean, for c2ws [N,4,4]
    (as 3DGS); 1.0 when every camera sits at one point (a single view)."""
    if not isinstance(c2ws, torch.Tensor) or c2ws.dim() != 3 or c2ws.shape[1:] != (4, 4) \
            or c2ws.shape[0] == 0:
        shape = list(c2ws.shape) if isinstance(c2ws, torch.Tensor) else type(c2ws).__name__
        raise ValueError(f"c2ws must have shape [N>0, 4, 4], got {shape}")
    centres = c2ws[:, :3, 3].double()
    largest = float((centres - centres.mean(dim=0)).norm(dim=-1).max())
    return EXTENT_MARGIN * largest if largest > 0.0 else 1.0


def means_lr_factor(progress: float, config: SplatConfig) -> float:
    """Multiplier of the initial means learning rate at `progress` in [0,1] through the run:
    log-linear from 1 to means_lr_final / means_lr."""
    t = min(max(progress, 0.0), 1.0)
    return math.exp(t * math.log(config.means_lr_final / config.means_lr))


def splat_loss(rgb: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.2
               ) -> torch.Tensor:
    """(1 - w) mean |rgb - target| + w (1 - SSIM) of images [H,W,3] (scalar tensor)."""
    l1 = (rgb - target).abs().mean()
    if ssim_weight == 0.0:
        return l1
    return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - ssim(rgb, target))


def _optimizer(model: GaussianModel, config: SplatConfig, extent: float) -> torch.optim.Adam:
    """Adam with one group per parameter, in GaussianModel.PARAMETER_NAMES order."""
    rates = config.learning_rates(extent)
    return torch.optim.Adam([{"params": [getattr(model, name)], "lr": rates[name], "name": name}
                             for name in GaussianModel.PARAMETER_NAMES],
                            lr=rates["means"], eps=config.adam_eps)


def _set_learning_rates(optimizer: torch.optim.Optimizer, config: SplatConfig, extent: float,
                        progress: float) -> None:
    rates = config.learning_rates(extent)
    rates["means"] *= means_lr_factor(progress, config)
    for group in optimizer.param_groups:
        group["lr"] = rates[group["name"]]


class _Clock:
    """Progress in [0,1] by steps and by wall time, whichever is further along."""

    def __init__(self, config: SplatConfig, elapsed: float) -> None:
        self.config = config
        self.started = time.perf_counter() - elapsed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def progress(self, step: int) -> float:
        fraction = 0.0
        if self.config.steps is not None:
            fraction = step / self.config.steps
        if self.config.minutes is not None:
            fraction = max(fraction, self.elapsed / (60.0 * self.config.minutes))
        return min(fraction, 1.0)


def _check_dataset(dataset: PosedViews) -> None:
    for name in ("images", "Ks", "c2ws"):
        if not isinstance(getattr(dataset, name, None), torch.Tensor):
            raise ValueError(f"dataset must have a tensor .{name} (a PosedViews such as "
                             f"BlenderScene or ColmapScene), got {type(dataset).__name__}")
    images = dataset.images
    if images.dim() != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"dataset.images must have shape [N>0, H, W, 3], got {list(images.shape)}")
    n = images.shape[0]
    if dataset.Ks.shape != (n, 3, 3) or dataset.c2ws.shape != (n, 4, 4):
        raise ValueError(f"dataset.Ks and dataset.c2ws must have shapes [{n},3,3] and [{n},4,4], "
                         f"got {list(dataset.Ks.shape)} and {list(dataset.c2ws.shape)}")


def _restore(model: GaussianModel, saved: GaussianModel, path: Path) -> None:
    """Puts the checkpoint's Gaussians into `model` (the caller's object) in place."""
    if saved.max_sh_degree != model.max_sh_degree:
        raise ValueError(f"{path}: holds Gaussians with SH degree {saved.max_sh_degree}, but "
                         f"model has max_sh_degree {model.max_sh_degree}")
    for name in GaussianModel.PARAMETER_NAMES:
        setattr(model, name, getattr(saved, name))
    model.active_sh_degree = saved.active_sh_degree


# ----------------------------------------------------------------------------- training


def train(
    dataset: PosedViews,
    model: GaussianModel,
    config: SplatConfig | None = None,
    out_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    meta: dict | None = None,
) -> GaussianModel:
    """Trains `model` in place on `dataset` (images [N,H,W,3] composited on its
    .background, black if it has none; cameras Ks [N,3,3], c2ws [N,4,4]) and returns it.

    With `out_dir`, checkpoints to out_dir/checkpoint.pt every config.checkpoint_every steps
    and at the end, and resumes from that file if it exists (the model's parameters are then
    replaced by the checkpoint's); `meta` is stored with it. Sets model.train_stats.
    """
    config = config if config is not None else SplatConfig()
    if not isinstance(config, SplatConfig):
        raise ValueError(f"config must be a SplatConfig, got {type(config).__name__}")
    if not isinstance(model, GaussianModel):
        raise ValueError(f"model must be a GaussianModel, got {type(model).__name__}")
    _check_dataset(dataset)
    width, height = dataset.width, dataset.height
    if config.ssim_weight > 0 and min(width, height) < SSIM_WINDOW:
        raise ValueError(f"dataset images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
                         f"for the SSIM loss (or set ssim_weight=0), got {width}x{height}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir) if out_dir is not None else None
    checkpoint = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    extent = scene_extent(dataset.c2ws)

    model.to(device)
    step, elapsed, payload = 0, 0.0, None
    if checkpoint is not None and checkpoint.is_file():
        saved, payload = load_checkpoint(checkpoint, device=device)
        _restore(model, saved, checkpoint)
        step, elapsed = payload["step"], payload["elapsed"]
        if payload.get("generator") is not None:
            generator.set_state(payload["generator"])
    if len(model) == 0:
        raise ValueError("model must hold at least one Gaussian, got 0")
    optimizer = _optimizer(model, config, extent)
    stats = DensityStats.zeros(len(model), device)
    if payload is not None:
        if payload.get("optimizer") is not None:
            optimizer.load_state_dict(payload["optimizer"])
        stats = density_stats_of(payload, len(model), device)

    dtype = model.means.dtype
    images = dataset.images.to(device, dtype)
    Ks = dataset.Ks.to(device, dtype)
    viewmats = invert_rigid(dataset.c2ws.double()).to(device, dtype)
    background = view_background(dataset).to(device, dtype)

    clock = _Clock(config, elapsed)
    timed = config.minutes is not None
    bar = tqdm(total=round(60 * config.minutes) if timed else config.steps,
               initial=min(round(elapsed), round(60 * config.minutes)) if timed else step,
               unit="s" if timed else "step", desc="training Gaussians", disable=not progress,
               dynamic_ncols=True)
    start_step, start_elapsed = step, elapsed
    saved_step = step if payload is not None else None  # the checkpoint on disk, if any
    totals = {"densifications": 0, "cloned": 0, "split": 0, "pruned": 0, "opacity_resets": 0}
    loss = mse = float("nan")
    model.train()
    while (config.steps is None or step < config.steps) and clock.progress(step) < 1.0:
        iteration = step + 1  # 1-based, as the original schedule counts
        window = iteration < config.densify_until \
            and clock.progress(step) < config.densify_until_fraction
        _set_learning_rates(optimizer, config, extent, clock.progress(step))
        view = int(torch.randint(len(images), (1,), generator=generator))
        loss, mse = _train_step(model, optimizer, images[view], viewmats[view], Ks[view],
                                background, config, stats if window else None)
        step = iteration
        if step % config.sh_every == 0:
            model.raise_sh_degree()
        if window and step > config.densify_from and step % config.densify_every == 0:
            screen = config.max_screen_size if step > config.opacity_reset_every else None
            counts = densify_and_prune(model, optimizer, stats, extent,
                                       grad_threshold=config.grad_threshold,
                                       percent_dense=config.percent_dense,
                                       min_opacity=config.min_opacity,
                                       max_screen_size=screen, generator=generator)
            totals["densifications"] += 1
            for key, value in counts.items():
                totals[key] += value
            if len(model) == 0:
                raise RuntimeError(f"densification at step {step} pruned every Gaussian "
                                   f"(min_opacity={config.min_opacity})")
        if window and step % config.opacity_reset_every == 0:
            reset_opacity(model, optimizer)
            totals["opacity_resets"] += 1
        bar.update(min(round(clock.elapsed), bar.total) - bar.n if timed else 1)
        if step % config.log_every == 0 or step == start_step + 1:
            bar.set_postfix(step=step, loss=f"{loss:.4f}", psnr=f"{mse_to_psnr(mse):.2f}",
                            gaussians=len(model))
        if checkpoint is not None and step % config.checkpoint_every == 0:
            save_checkpoint(checkpoint, model, optimizer, stats, step, clock.elapsed, generator,
                            config, meta)
            saved_step = step
    bar.close()
    if checkpoint is not None and saved_step != step:
        save_checkpoint(checkpoint, model, optimizer, stats, step, clock.elapsed, generator,
                        config, meta)
    seconds = clock.elapsed
    model.train_stats = {
        "steps": step, "start_step": start_step, "seconds": seconds,
        "steps_per_second": (step - start_step) / max(seconds - start_elapsed, 1e-9),
        "gaussians": len(model), "scene_extent": extent, "active_sh_degree":
        model.active_sh_degree, "last_loss": loss, **totals,
    }
    return model.eval()


def _train_step(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    target: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    background: torch.Tensor,
    config: SplatConfig,
    stats: DensityStats | None,
) -> tuple[float, float]:
    """One view: render, loss, backward, density statistics, Adam step -> (loss, mse)."""
    height, width = target.shape[:2]
    rgb, _, _, info = model.render(viewmat, K, width, height, background=background,
                                   impl=config.impl)
    means2d = info["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    loss = splat_loss(rgb, target, config.ssim_weight)
    optimizer.zero_grad(set_to_none=True)
    if loss.requires_grad:
        loss.backward()
    if stats is not None:
        grad = means2d.grad if means2d.grad is not None else torch.zeros_like(means2d)
        stats.update(grad, info["visible"], width, height, info["radii"])
    optimizer.step()
    with torch.no_grad():
        mse = torch.mean((rgb.detach() - target) ** 2)
    return float(loss.detach()), float(mse)

