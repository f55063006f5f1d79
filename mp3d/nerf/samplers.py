"""Where to put samples along rays: stratified bins, importance resampling from weights,
and conversion of per-ray bins to the packed layout of mp3d.ops.volume_rendering."""

from __future__ import annotations

import torch

from mp3d.ops.ray_marching import ray_aabb

__all__ = ["importance_bins", "merge_bins", "pack_bins", "ray_aabb", "stratified_bins"]


def stratified_bins(
    near: torch.Tensor,
    far: torch.Tensor,
    n_samples: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bin edges [R, n_samples+1] splitting [near, far] [R] evenly; jitter moves the inner
    edges randomly within their strata (edges stay sorted and inside [near, far])."""
    u = torch.linspace(0.0, 1.0, n_samples + 1, device=near.device, dtype=near.dtype)
    u = u.expand(near.shape[0], n_samples + 1).clone()
    if jitter and n_samples > 1:
        noise = torch.rand(near.shape[0], n_samples - 1, generator=generator).to(u)
        u[:, 1:-1] += (noise - 0.5) / n_samples
    return near[:, None] + (far - near)[:, None] * u


def importance_bins(
    bins: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """New edges [R, n_samples] drawn by inverse CDF from piecewise-constant weights [R,B]
    over bins [R,B+1]; sorted, inside the bins' range, dense where weights are high."""
    weights = weights.detach() + 1e-5  # keep every bin reachable
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    cdf[:, -1] = 1.0
    if jitter:
        u = torch.rand(bins.shape[0], n_samples, generator=generator).to(bins)
        u = (torch.arange(n_samples, device=bins.device, dtype=bins.dtype) + u) / n_samples
    else:
        u = (torch.arange(n_samples, device=bins.device, dtype=bins.dtype) + 0.5) / n_samples
        u = u.expand(bins.shape[0], n_samples).contiguous()
    index = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, index - 1), cdf.gather(-1, index)
    bin_lo, bin_hi = bins.gather(-1, index - 1), bins.gather(-1, index)
    span = torch.where(cdf_hi - cdf_lo < 1e-8, torch.ones_like(cdf_hi), cdf_hi - cdf_lo)
    return bin_lo + (u - cdf_lo) / span * (bin_hi - bin_lo)


def merge_bins(bins: torch.Tensor, extra_edges: torch.Tensor) -> torch.Tensor:
    """Sorted union [R, B+1+K] of bin edges [R,B+1] and extra edges [R,K]."""
    return torch.sort(torch.cat([bins, extra_edges.detach()], dim=-1), dim=-1).values


def pack_bins(bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-ray bins [R,B+1] -> packed (t_starts [R*B], t_ends [R*B], ray_indices [R*B])."""
    n_rays, n_bins = bins.shape[0], bins.shape[1] - 1
    ray_indices = torch.arange(n_rays, device=bins.device).repeat_interleave(n_bins)
    return bins[:, :-1].reshape(-1), bins[:, 1:].reshape(-1), ray_indices
