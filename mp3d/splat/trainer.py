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

Coarse to fine (`resolution_schedule`, off by default): ((fraction, factor), ...) trains on
the views downscaled by `factor` (area averaging; intrinsics scaled alike) until the run's
progress reaches `fraction`, then on the next pair, then at full size. A step's cost grows
with its pixels, so on a CPU a large image makes every step slow and the densification
phase (the first half of the run) ends after a few rounds; at a quarter of the size the
same wall time holds many more steps and rounds, and the full-size steps that follow refine
what the coarse ones grew. Gradient statistics are in NDC units, which do not depend on the
size; screen sizes (radii, for `max_screen_size`) are those of the image each step renders,
so a coarse phase prunes as a run on views of its size does (counted in full-size pixels,
20 px at 800x800 would be 5 px at 200x200, and prune most of a short run's Gaussians).

Checkpoints go to out_dir/checkpoint.pt (atomically: a crash never loses the previous one),
and training resumes from there. Under torchrun the Gaussians are replicated on every rank,
each rank renders its own views, gradients are averaged and the densification statistics
summed (mp3d.splat.density.DensityControl), so every rank edits the same Gaussians; rank 0
alone writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import record_function

from mp3d import distributed
from mp3d._backend import IMPLS, Impl
from mp3d.cameras import invert_rigid
from mp3d.data.views import PosedViews
from mp3d.metrics import mse_to_psnr
from mp3d.ops.ssim import training_ssim
from mp3d.splat.checkpoint import (
    FORMAT,
    VERSION,
    density_stats_of,
    gaussians_from_payload,
    model_payload,
)
from mp3d.splat.density import (
    GRAD_THRESHOLD,
    MIN_OPACITY,
    PERCENT_DENSE,
    DensityControl,
    DensityStats,
)
from mp3d.splat.model import GaussianModel
from mp3d.training import (
    CHECKPOINT_NAME,
    TrainerConfig,
    TrainingRun,
    check_choice,
    check_float,
    check_int,
    resolve_device,
)

__all__ = [
    "CHECKPOINT_NAME",
    "SplatConfig",
    "downscale_views",
    "means_lr_factor",
    "scene_extent",
    "splat_loss",
    "train",
]

EXTENT_MARGIN = 1.1
SSIM_WINDOW = 11


@dataclass
class SplatConfig(TrainerConfig):
    """How to train Gaussians; defaults are those of the original 3DGS code. `steps` and/or
    `minutes` bound the run (either may be None, not both); learning rates of the means are
    multiplied by the scene extent. See the module docstring for short runs."""

    steps: int | None = 30_000
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
    checkpoint_every: int = 1000
    log_every: int = 50
    resolution_schedule: tuple[tuple[float, int], ...] = ()
    impl: Impl = "auto"

    def validate(self) -> None:
        super().validate()
        for name in (
            "means_lr",
            "means_lr_final",
            "sh_dc_lr",
            "sh_rest_lr",
            "opacity_lr",
            "scales_lr",
            "quats_lr",
            "adam_eps",
            "grad_threshold",
            "percent_dense",
        ):
            check_float(name, getattr(self, name), 0.0, exclusive_minimum=True)
        for name in ("ssim_weight", "densify_until_fraction", "min_opacity"):
            check_float(name, getattr(self, name), 0.0, 1.0)
        for name in ("sh_every", "densify_every", "opacity_reset_every"):
            check_int(name, getattr(self, name), 1)
        for name in ("densify_from", "densify_until"):
            check_int(name, getattr(self, name), 0)
        if self.max_screen_size is not None:
            check_float("max_screen_size", self.max_screen_size, 0.0, exclusive_minimum=True)
        self.resolution_schedule = _check_resolution_schedule(self.resolution_schedule)
        check_choice("impl", self.impl, IMPLS)

    def downscale_at(self, progress: float) -> int:
        """The factor by which resolution_schedule downscales the views at `progress`."""
        for fraction, factor in self.resolution_schedule:
            if progress < fraction:
                return factor
        return 1

    def learning_rates(self, extent: float) -> dict[str, float]:
        """Initial learning rate of each GaussianModel parameter for a scene of `extent`."""
        return {
            "means": self.means_lr * extent,
            "quats": self.quats_lr,
            "log_scales": self.scales_lr,
            "opacity_logits": self.opacity_lr,
            "sh_dc": self.sh_dc_lr,
            "sh_rest": self.sh_rest_lr,
        }

    def density_control(self, extent: float) -> DensityControl:
        """The densification strategy this config describes, for a scene of `extent`."""
        return DensityControl(
            extent,
            densify_from=self.densify_from,
            densify_until=self.densify_until,
            densify_until_fraction=self.densify_until_fraction,
            densify_every=self.densify_every,
            opacity_reset_every=self.opacity_reset_every,
            grad_threshold=self.grad_threshold,
            percent_dense=self.percent_dense,
            min_opacity=self.min_opacity,
            max_screen_size=self.max_screen_size,
        )


# ----------------------------------------------------------------------------- pieces


def _check_resolution_schedule(schedule: object) -> tuple[tuple[float, int], ...]:
    """schedule as a tuple of (fraction, factor): fractions in (0, 1] increasing, factors
    ints >= 1."""
    message = (
        "resolution_schedule must be pairs (fraction, factor) with fractions in (0, 1] "
        f"increasing and integer factors >= 1, got {schedule!r}"
    )
    if not isinstance(schedule, (tuple, list)):
        raise ValueError(message)
    pairs, last = [], 0.0
    for pair in schedule:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(message)
        fraction, factor = pair
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not last < fraction <= 1.0
            or isinstance(factor, bool)
            or not isinstance(factor, int)
            or factor < 1
        ):
            raise ValueError(message)
        pairs.append((float(fraction), factor))
        last = fraction
    return tuple(pairs)


def downscale_views(
    images: torch.Tensor, Ks: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N,H,W,C] averaged over factor x factor blocks ([N,H//f,W//f,C]; a remainder
    of rows and columns at the bottom and right is dropped) and their intrinsics [N,3,3]
    (pixel centres at +0.5 map exactly: u / factor)."""
    if factor == 1:
        return images, Ks
    small = torch.nn.functional.avg_pool2d(images.permute(0, 3, 1, 2), factor)
    scale = Ks.new_tensor([1.0 / factor, 1.0 / factor, 1.0])[:, None]
    return small.permute(0, 2, 3, 1).contiguous(), Ks * scale


def scene_extent(c2ws: torch.Tensor) -> float:
    """1.1 x the largest distance of a camera centre from their mean, for c2ws [N,4,4]
    (as 3DGS); 1.0 when every camera sits at one point (a single view)."""
    if (
        not isinstance(c2ws, torch.Tensor)
        or c2ws.dim() != 3
        or c2ws.shape[1:] != (4, 4)
        or c2ws.shape[0] == 0
    ):
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


def splat_loss(rgb: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """(1 - w) mean |rgb - target| + w (1 - SSIM) of images [H,W,3] (scalar tensor)."""
    l1 = (rgb - target).abs().mean()
    if ssim_weight == 0.0:
        return l1
    with record_function("splat.ssim"):
        similarity = training_ssim(rgb, target)
    return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - similarity)


def _optimizer(model: GaussianModel, config: SplatConfig, extent: float) -> torch.optim.Adam:
    """Adam with one group per parameter, in GaussianModel.PARAMETER_NAMES order."""
    rates = config.learning_rates(extent)
    return torch.optim.Adam(
        [
            {"params": [getattr(model, name)], "lr": rates[name], "name": name}
            for name in GaussianModel.PARAMETER_NAMES
        ],
        lr=rates["means"],
        eps=config.adam_eps,
    )


def _set_learning_rates(
    optimizer: torch.optim.Optimizer, config: SplatConfig, extent: float, progress: float
) -> None:
    rates = config.learning_rates(extent)
    rates["means"] *= means_lr_factor(progress, config)
    for group in optimizer.param_groups:
        group["lr"] = rates[group["name"]]


def _check_dataset(dataset: PosedViews) -> None:
    for name in ("images", "Ks", "c2ws"):
        if not isinstance(getattr(dataset, name, None), torch.Tensor):
            raise ValueError(
                f"dataset must have a tensor .{name} (a PosedViews such as "
                f"BlenderScene or ColmapScene), got {type(dataset).__name__}"
            )
    images = dataset.images
    if images.dim() != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"dataset.images must have shape [N>0, H, W, 3], got {list(images.shape)}")
    n = images.shape[0]
    if dataset.Ks.shape != (n, 3, 3) or dataset.c2ws.shape != (n, 4, 4):
        raise ValueError(
            f"dataset.Ks and dataset.c2ws must have shapes [{n},3,3] and [{n},4,4], "
            f"got {list(dataset.Ks.shape)} and {list(dataset.c2ws.shape)}"
        )


def _restore(model: GaussianModel, payload: dict, path: Path | None, device: torch.device) -> None:
    """Puts the checkpoint's Gaussians into `model` (the caller's object) in place."""
    saved = gaussians_from_payload(payload, path).to(device)
    if saved.max_sh_degree != model.max_sh_degree:
        raise ValueError(
            f"{path}: holds Gaussians with SH degree {saved.max_sh_degree}, but "
            f"model has max_sh_degree {model.max_sh_degree}"
        )
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
    fresh: bool = False,
) -> GaussianModel:
    """Trains `model` in place on `dataset` (images [N,H,W,3] composited on its
    .background, black if it has none; cameras Ks [N,3,3], c2ws [N,4,4]) and returns it.

    With `out_dir`, checkpoints to out_dir/checkpoint.pt every config.checkpoint_every steps
    and at the end, and resumes from that file if it exists (the model's parameters are then
    replaced by the checkpoint's) unless `fresh`; `meta` is stored with it, and a checkpoint
    with other meta (other data) is refused. Sets model.train_stats.
    """
    config = config if config is not None else SplatConfig()
    if not isinstance(config, SplatConfig):
        raise ValueError(f"config must be a SplatConfig, got {type(config).__name__}")
    if not isinstance(model, GaussianModel):
        raise ValueError(f"model must be a GaussianModel, got {type(model).__name__}")
    _check_dataset(dataset)
    width, height = dataset.width, dataset.height
    coarsest = max([1] + [factor for _, factor in config.resolution_schedule])
    if config.ssim_weight > 0 and min(width, height) // coarsest < SSIM_WINDOW:
        raise ValueError(
            f"dataset images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
            f"for the SSIM loss (or set ssim_weight=0), got {width}x{height}"
            + (f" downscaled by {coarsest}" if coarsest > 1 else "")
        )
    if min(width, height) < coarsest:
        raise ValueError(
            f"resolution_schedule downscales by {coarsest}, more than the dataset's "
            f"{width}x{height} images allow"
        )
    device = resolve_device(device)
    distributed.init(device)
    # One generator draws views and split positions; under torchrun each rank draws its own
    # views, while split positions come from a generator every rank shares.
    generator = torch.Generator().manual_seed(config.seed)
    views = (
        generator
        if distributed.world_size() == 1
        else torch.Generator().manual_seed(config.seed + 1 + distributed.rank())
    )
    extent = scene_extent(dataset.c2ws)

    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=meta,
        desc="training Gaussians",
        progress=progress,
        fresh=fresh,
        kind="splatting",
    )
    payload = run.resume()
    model.to(device)
    if payload is not None:
        _restore(model, payload, run.checkpoint, device)
        if payload.get("generator") is not None:
            generator.set_state(payload["generator"])
    if len(model) == 0:
        raise ValueError("model must hold at least one Gaussian, got 0")
    distributed.broadcast_([p.data for p in model.parameters()])
    optimizer = _optimizer(model, config, extent)
    strategy = config.density_control(extent)
    strategy.stats = DensityStats.zeros(len(model), device)
    if payload is not None:
        if payload.get("optimizer") is not None:
            optimizer.load_state_dict(payload["optimizer"])
        strategy.stats = density_stats_of(payload, len(model), device)
        strategy.totals.update(payload.get("totals") or {})

    dtype = model.means.dtype
    images = dataset.images.to(device, dtype)
    Ks = dataset.Ks.to(device, dtype)
    viewmats = invert_rigid(dataset.c2ws.double()).to(device, dtype)
    background = dataset.background_rgb.to(device, dtype)
    levels = {  # factor -> (images, Ks) at that size
        factor: downscale_views(images, Ks, factor)
        for factor in {1, *(factor for _, factor in config.resolution_schedule)}
    }

    def checkpoint_payload() -> dict:
        return {
            **model_payload(model, optimizer, strategy.stats, generator),
            "totals": dict(strategy.totals),
        }

    start_totals = dict(strategy.totals)
    loss = mse = float("nan")
    model.train()
    while run.running():
        step, progress_before = run.step + 1, run.progress  # steps count from 1, as in 3DGS
        _set_learning_rates(optimizer, config, extent, progress_before)
        view = int(torch.randint(len(images), (1,), generator=views))
        factor = config.downscale_at(progress_before)
        level_images, level_Ks = levels[factor]
        loss, mse = _train_step(
            model,
            optimizer,
            strategy,
            config,
            (viewmats[view], level_Ks[view], level_images[view], background),
            step,
            progress_before,
            generator,
        )
        run.advance(loss=loss, psnr=mse_to_psnr(mse), gaussians=len(model))
        if run.checkpoint_due():
            run.save(checkpoint_payload())
    stats = run.finish(checkpoint_payload())
    totals = {key: value - start_totals.get(key, 0) for key, value in strategy.totals.items()}
    model.train_stats = {
        **stats,
        "gaussians": len(model),
        "scene_extent": extent,
        "active_sh_degree": model.active_sh_degree,
        "last_loss": loss,
        **totals,
    }
    return model.eval()


def _train_step(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    strategy: DensityControl,
    config: SplatConfig,
    view: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    step: int,
    progress: float,
    generator: torch.Generator | None,
) -> tuple[float, float]:
    """One training step (1-based `step`, begun at `progress`) on view = (viewmat [4,4],
    K [3,3], image [H,W,3], background [3]): render, loss, backward, Adam, SH band and
    density control on schedule. Returns (loss, mse) as floats. Its stages carry
    "splat.<stage>" profiler labels (bench/profile_splat_step.py)."""
    viewmat, K, image, background = view
    height, width = image.shape[:2]
    rendering, info = model.rasterize(
        viewmat, K, width, height, background=background, impl=config.impl
    )
    strategy.step_pre_backward(info, step, progress)
    with record_function("splat.loss"):
        loss_tensor = splat_loss(rendering.rgb, image, config.ssim_weight)
    with record_function("splat.backward"):
        optimizer.zero_grad(set_to_none=True)
        if loss_tensor.requires_grad:
            loss_tensor.backward()
    with record_function("splat.optimizer"):
        distributed.average_gradients(model.parameters())
        optimizer.step()
    with torch.no_grad(), record_function("splat.loss"):
        mse = float(torch.mean((rendering.rgb.detach() - image) ** 2))
    loss = float(loss_tensor.detach())
    if step % config.sh_every == 0:
        model.raise_sh_degree()
    strategy.step_post_backward(model, optimizer, info, step, progress, width, height, generator)
    return loss, mse
