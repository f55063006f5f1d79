"""Volume rendering of a signed-distance field (NeuS, Wang et al. 2021) on mp3d's packed
volume-rendering kernel (mp3d.ops.volume_rendering).

The conversion implemented here, per section [t_i, t_{i+1}] of a ray whose SDF is f_i at
the section's start and f_{i+1} at its end (NeuS, eq. 13, with the SDF taken at the
section's two ends rather than estimated from its midpoint):

    alpha_i = max((Phi_s(f_i) - Phi_s(f_{i+1})) / Phi_s(f_i), 0),   Phi_s(x) = sigmoid(s x)

with s > 0 learned, parametrised as s = exp(10 v) (NeuS's "single variance" v, 0.3 at the
start: s = 20). The kernel composites densities, alpha = 1 - exp(-sigma delta), so each
alpha is handed to it as the density

    sigma_i = -log(1 - alpha_i) / delta_i,   delta_i = t_{i+1} - t_i

(alpha clamped to [0, 1 - 1e-6] first, so sigma stays finite); the kernel's weights
T_i alpha_i, opacity, colour and depth are then those of the NeuS alphas, and its gradients
reach the SDF values and s through this conversion.

Closed form for a plane crossed head-on (f decreasing along the ray): every alpha is >= 0
and the transmittance telescopes, T_i = Phi_s(f_i) / Phi_s(f_0), so
w_i = (Phi_s(f_i) - Phi_s(f_{i+1})) / Phi_s(f_0): the weights peak in the section holding
the plane and sum to 1 - Phi_s(f_N) / Phi_s(f_0), close to 1 when s |f_0|, s |f_N| are large.

Samples: stratified bins between each ray's near and far (its entry and exit of the box),
plus `n_importance` edges drawn from the weights of those bins at a fixed sharp s
(`importance_inv_s`, NeuS's up-sampling: the new edges land near the zero level set from
the first step of training, whatever the learned s is). The SDF is evaluated at every edge
of the merged bins (with gradients), the colour at each section's midpoint; with
`cull_weight`, a gradient-free pass first drops the sections weighing less (transparent or
hidden), as mp3d.nerf culls its samples. The eikonal regulariser is
mp3d.implicit.igr.eikonal_loss, on points the trainer chooses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mp3d.nerf.samplers import importance_bins, merge_bins, pack_bins, stratified_bins
from mp3d.ops.volume_rendering import render_rays, render_weights

__all__ = [
    "MAX_ALPHA",
    "SingleVariance",
    "alpha_to_sigma",
    "neus_alpha",
    "render_sdf_sections",
    "render_sdf_volume",
]

MAX_ALPHA = 1.0 - 1e-6  # alphas are clamped below 1 so that -log(1 - alpha) stays finite

SdfFn = Callable[[torch.Tensor], torch.Tensor]
ColourFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SingleVariance(nn.Module):
    """NeuS's learned sharpness: s = exp(10 v), v a scalar parameter (0.3 at first: s ~ 20)."""

    def __init__(self, initial: float = 0.3) -> None:
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(initial)))

    def forward(self) -> torch.Tensor:
        """s (1 / SDF units), a 0-dimensional tensor, clamped to [1, 1e6]."""
        return torch.exp(10.0 * self.variance).clamp(1.0, 1e6)


def neus_alpha(
    sdf_start: torch.Tensor, sdf_end: torch.Tensor, inv_s: torch.Tensor | float
) -> torch.Tensor:
    """NeuS opacity [S] of sections whose SDF is sdf_start [S] at their start and sdf_end [S]
    at their end: max((Phi_s(f_i) - Phi_s(f_{i+1})) / Phi_s(f_i), 0), clamped below 1."""
    phi_start = torch.sigmoid(sdf_start * inv_s)
    phi_end = torch.sigmoid(sdf_end * inv_s)
    alpha = (phi_start - phi_end) / phi_start.clamp(min=1e-10)
    return alpha.clamp(0.0, MAX_ALPHA)


def alpha_to_sigma(
    alpha: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor
) -> torch.Tensor:
    """Densities [S] with 1 - exp(-sigma (t_end - t_start)) = alpha [S]: -log(1 - alpha) / delta
    (alpha in [0, 1); sections of zero length get density 0)."""
    deltas = t_ends - t_starts
    optical = -torch.log1p(-alpha.clamp(0.0, MAX_ALPHA))
    return torch.where(deltas > 0, optical / deltas.clamp(min=1e-12), torch.zeros_like(optical))


def render_sdf_sections(
    sdf_start: torch.Tensor,
    sdf_end: torch.Tensor,
    rgbs: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    inv_s: torch.Tensor | float,
    background: torch.Tensor | float | None = None,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed sections (SDF at both ends [S], colour [S,3], t_starts/t_ends [S], sorted
    ray_indices [S]) -> (rgb [R,3] on `background`, opacity [R], depth [R] = sum w t_mid,
    weights [S]) through the NeuS alphas and the volume-rendering kernel."""
    alpha = neus_alpha(sdf_start, sdf_end, inv_s)
    sigmas = alpha_to_sigma(alpha, t_starts, t_ends)
    return render_rays(
        sigmas,
        rgbs,
        t_starts,
        t_ends,
        ray_indices,
        n_rays,
        background=background,
        early_stop_eps=early_stop_eps,
        return_weights=True,
    )


def _edge_points(origins: torch.Tensor, directions: torch.Tensor, bins: torch.Tensor):
    """Points [R*(B+1),3] at bin edges [R,B+1] of rays [R,3]."""
    return (origins[:, None] + directions[:, None] * bins[..., None]).reshape(-1, 3)


def render_sdf_volume(
    sdf_fn: SdfFn,
    colour_fn: ColourFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    inv_s: torch.Tensor | float,
    n_samples: int = 32,
    n_importance: int = 16,
    importance_inv_s: float = 64.0,
    background: torch.Tensor | float | None = None,
    jitter: bool = False,
    generator: torch.Generator | None = None,
    cull_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Volume-renders the SDF `sdf_fn` (points [N,3] -> [N]) with colours `colour_fn`
    (points [N,3], unit directions [N,3] -> [N,3]) along rays origins/directions [R,3]
    between near and far [R] (rays with far <= near get no samples: opacity 0, the
    background). Returns {"rgb" [R,3], "opacity" [R], "depth" [R] (sum w t), "weights" [S],
    "t_starts", "t_ends", "ray_indices" [S] (packed sections), "points" [S,3] (midpoints)}.

    With cull_weight > 0, a gradient-free pass first weighs every section, and only those
    of weight above cull_weight are rendered (their SDF evaluated again, with gradients,
    and their colour): the rest are nearly transparent or hidden, as mp3d.nerf culls."""
    n_rays = origins.shape[0]
    valid = torch.nonzero(far > near)[:, 0]
    o, d = origins[valid], directions[valid]
    bins = stratified_bins(near[valid], far[valid], n_samples, jitter, generator)
    known = None  # gradient-free SDF at the edges, when already evaluated
    if n_importance > 0 and len(valid) > 0:
        with torch.no_grad():
            sdf = sdf_fn(_edge_points(o, d, bins)).reshape(bins.shape)
            weights = _section_weights(sdf, bins, importance_inv_s)
            extra = importance_bins(
                bins, weights.reshape(len(valid), n_samples), n_importance, jitter, generator
            )
            if cull_weight > 0:  # merge the values with the edges (merge_bins' order)
                extra_sdf = sdf_fn(_edge_points(o, d, extra)).reshape(extra.shape)
                bins, order = torch.sort(torch.cat([bins, extra], dim=-1), dim=-1)
                known = torch.cat([sdf, extra_sdf], dim=-1).gather(-1, order)
            else:
                bins = merge_bins(bins, extra)
    t_starts, t_ends, local = pack_bins(bins)
    if cull_weight > 0 and len(valid) > 0:
        with torch.no_grad():
            if known is None:
                known = sdf_fn(_edge_points(o, d, bins)).reshape(bins.shape)
            sdf = known
            inv_s_value = inv_s.detach() if isinstance(inv_s, torch.Tensor) else inv_s
            keep = (_section_weights(sdf, bins, inv_s_value) > cull_weight).reshape(len(valid), -1)
        if torch.is_grad_enabled():  # the kept sections' ends again, with gradients
            ends = torch.nn.functional.pad(keep, (0, 1)) | torch.nn.functional.pad(keep, (1, 0))
            rows, cols = torch.nonzero(ends, as_tuple=True)
            values = sdf_fn(o[rows] + d[rows] * bins[rows, cols, None])
            sdf = sdf.index_put((rows, cols), values)
        keep = keep.reshape(-1)
    else:
        sdf = sdf_fn(_edge_points(o, d, bins)).reshape(bins.shape)
        keep = None
    sdf_start, sdf_end = sdf[:, :-1].reshape(-1), sdf[:, 1:].reshape(-1)
    if keep is not None:
        t_starts, t_ends, local = t_starts[keep], t_ends[keep], local[keep]
        sdf_start, sdf_end = sdf_start[keep], sdf_end[keep]
    ray_indices = valid[local]
    mids = 0.5 * (t_starts + t_ends)
    points = origins[ray_indices] + directions[ray_indices] * mids[:, None]
    rgbs = colour_fn(points, directions[ray_indices])
    rgb, opacity, depth, weights = render_sdf_sections(
        sdf_start,
        sdf_end,
        rgbs,
        t_starts,
        t_ends,
        ray_indices,
        n_rays,
        inv_s,
        background=background,
    )
    return {
        "rgb": rgb,
        "opacity": opacity,
        "depth": depth,
        "weights": weights,
        "t_starts": t_starts,
        "t_ends": t_ends,
        "ray_indices": ray_indices,
        "points": points,
    }


def _section_weights(sdf: torch.Tensor, bins: torch.Tensor, inv_s) -> torch.Tensor:
    """Weights [R*B] of the sections of bins [R,B+1] whose edges have SDF sdf [R,B+1]."""
    t_starts, t_ends, local = pack_bins(bins)
    alpha = neus_alpha(sdf[:, :-1].reshape(-1), sdf[:, 1:].reshape(-1), inv_s)
    sigmas = alpha_to_sigma(alpha, t_starts, t_ends)
    return render_weights(sigmas, t_starts, t_ends, local, bins.shape[0])
