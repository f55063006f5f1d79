"""Adaptive density control of 3D Gaussian splatting (Kerbl et al. 2023, section 5.2).

Between optimizer steps, training accumulates per Gaussian the norm of the gradient of the
loss with respect to its projected 2D mean, over the views where it was visible
(`DensityStats.update`). Every so often `densify_and_prune`
- clones small Gaussians (largest scale <= percent_dense * scene extent) whose mean gradient
  reaches the threshold (under-reconstruction: the copy is identical, the optimizer moves
  them apart),
- splits large ones (over-reconstruction) into 2 Gaussians sampled from the original's
  density, with scales divided by 1.6, and removes the original,
- prunes nearly transparent Gaussians and, when max_screen_size is given, those larger
  than it on screen (pixels) or than 0.1 * scene extent in the world.
`reset_opacity` caps every opacity so that pruning can remove what the optimizer does not
bring back. Each edit replaces the parameter tensors in the model and in the Adam
optimizer together (`replace_rows`), so the moments stay aligned with the rows.

Gradient units: mp3d's means2d are in pixels. The original rasterizer hands out the
gradient with respect to NDC-like coordinates (pixel = ((ndc + 1) W - 1) / 2, so
d loss / d ndc_x = W / 2 * d loss / d pixel_x, likewise H / 2 for y), and its threshold
0.0002 is in those units; `update` applies the same W/2, H/2 factors so the original
threshold keeps its meaning. The loss must be a mean over pixels, as in 3DGS.

The original schedule (for a trainer): densify every 100 steps from step 500 to 15000,
reset opacities every 3000 steps, max_screen_size = 20 px once past the first reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.profiler import record_function

from mp3d import distributed
from mp3d.ops._validation import check_tensor
from mp3d.ops.gaussians import quaternion_to_rotation
from mp3d.splat.model import GaussianModel, inverse_sigmoid

__all__ = [
    "GRAD_THRESHOLD",
    "MIN_OPACITY",
    "PERCENT_DENSE",
    "RESET_OPACITY",
    "SPLIT_SAMPLES",
    "SPLIT_SCALE_DIVISOR",
    "WORLD_SIZE_FRACTION",
    "DensityStats",
    "densify_and_prune",
    "replace_rows",
    "reset_opacity",
]

# Defaults of the original implementation.
GRAD_THRESHOLD = 0.0002  # mean 2D-mean gradient norm (NDC units) that triggers densification
PERCENT_DENSE = 0.01  # clone below, split above this fraction of the scene extent
MIN_OPACITY = 0.005
RESET_OPACITY = 0.01
SPLIT_SAMPLES = 2
SPLIT_SCALE_DIVISOR = 1.6  # 0.8 * SPLIT_SAMPLES in the original
WORLD_SIZE_FRACTION = 0.1  # with max_screen_size: prune largest scale > this * extent


# ----------------------------------------------------------------------------- optimizer surgery


def _find_param(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> tuple[list, int]:
    """The params list of the group holding `param`, and its index there."""
    for group in optimizer.param_groups:
        for i, candidate in enumerate(group["params"]):
            if candidate is param:
                return group["params"], i
    raise ValueError("param must be one of the optimizer's parameters, got one it lacks")


def replace_rows(
    optimizer: torch.optim.Optimizer,
    param: nn.Parameter,
    keep: torch.Tensor,
    appended: torch.Tensor,
) -> nn.Parameter:
    """New parameter cat(param[keep], appended) (keep: bool [N]) that takes `param`'s place
    in the optimizer; per-row state (Adam moments) keeps its kept rows, zeros for new ones."""
    check_tensor("keep", keep, shape=(param.shape[0],), dtypes=(torch.bool,))
    check_tensor("appended", appended, shape=(None, *param.shape[1:]), dtypes=(param.dtype,))
    params, index = _find_param(optimizer, param)
    new = nn.Parameter(
        torch.cat([param.detach()[keep], appended.detach()]), requires_grad=param.requires_grad
    )
    params[index] = new
    state = optimizer.state.pop(param, None)
    if state is not None:
        optimizer.state[new] = {
            key: torch.cat([value[keep], torch.zeros_like(appended, dtype=value.dtype)])
            if torch.is_tensor(value) and value.shape == param.shape
            else value
            for key, value in state.items()
        }
    return new


def _edit_model(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    keep: torch.Tensor,
    appended: dict[str, torch.Tensor],
) -> None:
    """Keeps the rows `keep` (bool [N]) of every model parameter and appends `appended`."""
    for name in GaussianModel.PARAMETER_NAMES:
        setattr(model, name, replace_rows(optimizer, getattr(model, name), keep, appended[name]))


# ----------------------------------------------------------------------------- statistics


@dataclass
class DensityStats:
    """Per-Gaussian sums of 2D-mean gradient norms [N], view counts [N], max radii [N]."""

    grad_sum: torch.Tensor
    count: torch.Tensor
    max_radii: torch.Tensor

    @classmethod
    def zeros(cls, n: int, device: torch.device | str = "cpu") -> DensityStats:
        """Empty statistics for n Gaussians."""
        return cls(
            torch.zeros(n, device=device),
            torch.zeros(n, device=device),
            torch.zeros(n, device=device),
        )

    def update(
        self,
        means2d_grad: torch.Tensor | None,
        visible: torch.Tensor,
        width: int,
        height: int,
        radii: torch.Tensor | None = None,
    ) -> None:
        """Adds one view: means2d_grad [N,2] (pixels, from info["means2d"].grad), visible
        [N] (bool) and optionally radii [N] (pixels) for screen-size pruning."""
        self.add(*self.increments(means2d_grad, visible, width, height, radii))

    def increments(
        self,
        means2d_grad: torch.Tensor | None,
        visible: torch.Tensor,
        width: int,
        height: int,
        radii: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What one view adds (see update): gradient norms in NDC units [N] and view counts
        [N] of the Gaussians it saw, and its radii [N] (or None)."""
        if means2d_grad is None:
            raise ValueError(
                "means2d_grad is None: call info['means2d'].retain_grad() before backward()"
            )
        n = self.grad_sum.shape[0]
        check_tensor("means2d_grad", means2d_grad, shape=(n, 2))
        check_tensor("visible", visible, shape=(n,), dtypes=(torch.bool,))
        ndc_scale = means2d_grad.new_tensor([width / 2.0, height / 2.0])
        norms = torch.linalg.vector_norm(means2d_grad.detach() * ndc_scale, dim=-1)
        seen = visible.to(self.grad_sum.device)
        grads = torch.where(seen, norms.to(self.grad_sum), torch.zeros_like(self.grad_sum))
        if radii is not None:
            check_tensor("radii", radii, shape=(n,))
            radii = radii.to(self.max_radii.dtype)
        return grads, seen.to(self.count.dtype), radii

    def add(
        self, grads: torch.Tensor, counts: torch.Tensor, radii: torch.Tensor | None = None
    ) -> None:
        """Adds gradient norms [N] and view counts [N]; keeps the largest radii [N]."""
        self.grad_sum += grads
        self.count += counts
        if radii is not None:
            self.max_radii = torch.maximum(self.max_radii, radii)

    def mean_grads(self) -> torch.Tensor:
        """Mean gradient norm [N] over the views that saw each Gaussian (0 if none did)."""
        return self.grad_sum / torch.clamp(self.count, min=1)


# ----------------------------------------------------------------------------- density control


def _clones(model: GaussianModel, selected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exact copies of the selected Gaussians' parameters."""
    return {name: getattr(model, name).detach()[selected] for name in model.PARAMETER_NAMES}


def _split_children(
    model: GaussianModel, selected: torch.Tensor, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """SPLIT_SAMPLES children per selected Gaussian: means drawn from its density, scales
    divided by SPLIT_SCALE_DIVISOR, everything else copied."""
    parents = _clones(model, selected)
    children = {
        name: value.repeat(SPLIT_SAMPLES, *([1] * (value.dim() - 1)))
        for name, value in parents.items()
    }
    scales = torch.exp(children["log_scales"])
    noise = torch.randn(scales.shape, generator=generator, dtype=scales.dtype)
    samples = (noise.to(scales.device) * scales)[..., None]  # in each Gaussian's own frame
    rotations = quaternion_to_rotation(children["quats"])
    children["means"] = children["means"] + (rotations @ samples)[..., 0]
    children["log_scales"] = torch.log(scales / SPLIT_SCALE_DIVISOR)
    return children


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _densify(model, optimizer, stats, scene_extent, grad_threshold, percent_dense, generator):
    """Clones and splits in one edit; returns (n_cloned, n_split) and edits stats rows."""
    high = stats.mean_grads().to(model.means.device) >= grad_threshold
    large = model.scales.detach().amax(dim=1) > percent_dense * scene_extent
    clone, split = high & ~large, high & large
    clones, children = _clones(model, clone), _split_children(model, split, generator)
    appended = {name: torch.cat([clones[name], children[name]]) for name in clones}
    _edit_model(model, optimizer, ~split, appended)
    # Clones inherit their parent's screen size; split children have not been seen yet.
    radii = stats.max_radii
    clone, split = clone.to(radii.device), split.to(radii.device)
    stats.max_radii = torch.cat(
        [radii[~split], radii[clone], radii.new_zeros(SPLIT_SAMPLES * int(split.sum()))]
    )
    return int(clone.sum()), int(split.sum())


def _prune_mask(model, stats, scene_extent, min_opacity, max_screen_size) -> torch.Tensor:
    """Bool [N]: too transparent or, with max_screen_size, too large on screen or in world."""
    prune = model.opacities.detach() < min_opacity
    if max_screen_size is not None:
        prune |= stats.max_radii.to(prune.device) > max_screen_size
        prune |= model.scales.detach().amax(dim=1) > WORLD_SIZE_FRACTION * scene_extent
    return prune


def densify_and_prune(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    stats: DensityStats,
    scene_extent: float,
    *,
    grad_threshold: float = GRAD_THRESHOLD,
    percent_dense: float = PERCENT_DENSE,
    min_opacity: float = MIN_OPACITY,
    max_screen_size: float | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, int]:
    """Clones, splits, then prunes Gaussians (see the module docstring), editing the model
    and optimizer in place and restarting `stats`; returns the counts of each."""
    if len(stats.grad_sum) != len(model):
        raise ValueError(
            f"stats must cover the model's {len(model)} Gaussians, got {len(stats.grad_sum)}"
        )
    _check_positive("scene_extent", scene_extent)
    _check_positive("grad_threshold", grad_threshold)
    cloned, split = _densify(
        model, optimizer, stats, scene_extent, grad_threshold, percent_dense, generator
    )
    prune = _prune_mask(model, stats, scene_extent, min_opacity, max_screen_size)
    _edit_model(
        model,
        optimizer,
        ~prune,
        {name: getattr(model, name).detach()[:0] for name in model.PARAMETER_NAMES},
    )
    fresh = DensityStats.zeros(len(model), stats.grad_sum.device)
    stats.grad_sum, stats.count, stats.max_radii = fresh.grad_sum, fresh.count, fresh.max_radii
    return {"cloned": cloned, "split": split, "pruned": int(prune.sum())}


def reset_opacity(
    model: GaussianModel, optimizer: torch.optim.Optimizer, value: float = RESET_OPACITY
) -> None:
    """Caps every opacity at `value` in (0, 1) and zeros the opacity logits' Adam moments."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"value must be in (0, 1), got {value!r}")
    logits = model.opacity_logits
    cap = inverse_sigmoid(torch.tensor(value, dtype=logits.dtype, device=logits.device))
    with torch.no_grad():
        logits.clamp_(max=cap)
    for moment in optimizer.state.get(logits, {}).values():
        if torch.is_tensor(moment) and moment.shape == logits.shape:
            moment.zero_()


# ----------------------------------------------------------------------------- the strategy


@dataclass
class DensityControl:
    """The adaptive density control of 3DGS as an object the training loop calls around each
    step, so the loop stays short and the policy can be swapped:
    `step_pre_backward` before loss.backward() (keeps the 2D means' gradient),
    `step_post_backward` after it and the optimizer step (gathers the gradient statistics,
    densifies and prunes, resets opacities, on the schedule of the module docstring).

    Steps count from 1, as the original schedule does. Gathering (and with it densification
    and opacity resets) runs while the step is before `densify_until` and the run's progress
    before `densify_until_fraction`. Under torchrun the statistics are summed over the ranks,
    so every rank edits the same Gaussians.
    """

    scene_extent: float
    densify_from: int = 500
    densify_until: int = 15_000
    densify_until_fraction: float = 0.5
    densify_every: int = 100
    opacity_reset_every: int = 3000
    grad_threshold: float = GRAD_THRESHOLD
    percent_dense: float = PERCENT_DENSE
    min_opacity: float = MIN_OPACITY
    max_screen_size: float | None = 20.0
    stats: DensityStats | None = None
    totals: dict[str, int] = field(
        default_factory=lambda: {
            "densifications": 0,
            "cloned": 0,
            "split": 0,
            "pruned": 0,
            "opacity_resets": 0,
        }
    )

    def gathering(self, step: int, progress: float) -> bool:
        """Whether step `step` (1-based), begun at `progress`, gathers statistics."""
        return step < self.densify_until and progress < self.densify_until_fraction

    def step_pre_backward(self, info: dict[str, torch.Tensor], step: int, progress: float) -> None:
        """Keeps the gradient of info["means2d"] when this step gathers statistics."""
        means2d = info["means2d"]
        if self.gathering(step, progress) and means2d.requires_grad:
            means2d.retain_grad()

    def step_post_backward(
        self,
        model: GaussianModel,
        optimizer: torch.optim.Optimizer,
        info: dict[str, torch.Tensor],
        step: int,
        progress: float,
        width: int,
        height: int,
        generator: torch.Generator | None = None,
    ) -> None:
        """After step `step` (1-based, begun at `progress`) of a width x height view: adds its
        statistics, then densifies and prunes or resets opacities when the schedule says."""
        if self.stats is None or len(self.stats.grad_sum) != len(model):
            self.stats = DensityStats.zeros(len(model), model.means.device)
        if not self.gathering(step, progress):
            return
        with record_function("splat.stats"):
            means2d = info["means2d"]
            grad = means2d.grad if means2d.grad is not None else torch.zeros_like(means2d)
            grads, counts, radii = self.stats.increments(
                grad, info["visible"], width, height, info["radii"]
            )
            distributed.all_reduce_sum_([grads, counts])
            distributed.all_reduce_max_([radii])
            self.stats.add(grads, counts, radii)
        if step > self.densify_from and step % self.densify_every == 0:
            screen = self.max_screen_size if step > self.opacity_reset_every else None
            with record_function("splat.densify"):
                counts = densify_and_prune(
                    model,
                    optimizer,
                    self.stats,
                    self.scene_extent,
                    grad_threshold=self.grad_threshold,
                    percent_dense=self.percent_dense,
                    min_opacity=self.min_opacity,
                    max_screen_size=screen,
                    generator=generator,
                )
            self.totals["densifications"] += 1
            for key, value in counts.items():
                self.totals[key] += value
            if len(model) == 0:
                raise RuntimeError(
                    f"densification at step {step} pruned every Gaussian "
                    f"(min_opacity={self.min_opacity})"
                )
        if step % self.opacity_reset_every == 0:
            with record_function("splat.densify"):
                reset_opacity(model, optimizer)
            self.totals["opacity_resets"] += 1
