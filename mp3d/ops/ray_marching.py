"""Ray marching through an occupancy grid: the samples a NeRF shades.

Each ray [R,3] takes uniform steps of ``step_size`` through the scene box ``aabb`` [6],
within [near, far]: the edges of ray r are entry + (k + offset_r - 1) * step_size (k = 0, 1,
...), clamped into [entry, exit], so a jitter offset in [0, 1] shortens the first step and
moves every later one (0, which torch.rand can draw, empties the first step). A step is kept
when its midpoint lies in a True cell of ``occupied`` [res,res,res] (indexed x, y, z over
the box). The kept steps come packed in ray order, the
layout of mp3d.ops.volume_rendering: (t_starts [S], t_ends [S], ray_indices [S] int64).

The torch reference builds the midpoints of every step of every ray, [R, n_steps, 3], and
looks each up; the C++ CPU kernel walks each ray's own span with the same float32 arithmetic
and keeps the same steps, without the dense tensors (CUDA tensors run the reference). No
gradients flow: sample positions are not differentiated.
"""

from __future__ import annotations

import math

import torch

from mp3d._backend import Impl, resolve_impl
from mp3d.ops._validation import check_finite, check_same_device, check_tensor, value_checks

__all__ = ["march_occupancy", "march_reference", "ray_aabb"]

FAMILY = "ray_marching"


def ray_aabb(
    origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances [R] of rays [R,3] through the box aabb [6] (entry >= exit: miss)."""
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0 = (aabb[:3] - origins) / safe
    t1 = (aabb[3:] - origins) / safe
    return torch.minimum(t0, t1).amax(dim=-1), torch.maximum(t0, t1).amin(dim=-1)


def _empty(origins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    empty = origins.new_zeros(0)
    return empty, empty, torch.zeros(0, dtype=torch.long, device=origins.device)


def march_reference(
    origins: torch.Tensor,
    directions: torch.Tensor,
    entry: torch.Tensor,
    exit_: torch.Tensor,
    offsets: torch.Tensor,
    occupied: torch.Tensor,
    aabb: torch.Tensor,
    step_size: float,
    n_steps: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torch reference of the march, with each ray's entry and exit [R] (its box span
    clipped to [near, far]) and offset [R] given, over n_steps steps."""
    n_rays = origins.shape[0]
    if n_steps < 1 or n_rays == 0:
        return _empty(origins)
    k = torch.arange(n_steps + 1, device=origins.device, dtype=origins.dtype)
    edges = entry[:, None] + ((k + offsets[:, None]) - 1.0) * step_size
    top = exit_.maximum(entry)[:, None]
    edges = torch.minimum(edges.maximum(entry[:, None]), top)
    starts, ends = edges[:, :-1], edges[:, 1:]
    keep = ends > starts
    ray_ids = torch.arange(n_rays, device=origins.device)[:, None].expand(-1, n_steps)
    rays = ray_ids[keep]
    mids = (starts[keep] + ends[keep]) * 0.5
    points = origins[rays] + directions[rays] * mids[:, None]
    res = occupied.shape[0]
    cells_per_unit = res / (aabb[3:] - aabb[:3])
    cells = ((points - aabb[:3]) * cells_per_unit).floor().long()
    inside = ((cells >= 0) & (cells < res)).all(dim=-1)
    cells = cells.clamp(0, res - 1)
    keep[keep.clone()] = inside & occupied[cells[:, 0], cells[:, 1], cells[:, 2]]
    return starts[keep], ends[keep], ray_ids[keep]


def march_occupancy(
    origins: torch.Tensor,
    directions: torch.Tensor,
    occupied: torch.Tensor,
    aabb: torch.Tensor,
    near: float,
    far: float,
    step_size: float,
    offsets: torch.Tensor | None = None,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Marches rays origins, directions [R,3] (float32) through occupied [res,res,res] (bool)
    over aabb [6] within [near, far] in steps of step_size (scene units), the first step of
    ray r shortened by offsets [R] in [0, 1] (None: full steps) -> (t_starts [S], t_ends [S],
    ray_indices [S]) of the kept steps, in ray order. validate: check that the rays and the
    box are finite and the offsets in [0, 1] (None: the process-wide setting)."""
    check_tensor("origins", origins, (None, 3), (torch.float32,))
    n_rays = origins.shape[0]
    check_tensor("directions", directions, (n_rays, 3), (torch.float32,))
    check_tensor("occupied", occupied, (None, None, None), (torch.bool,))
    if not occupied.shape[0] == occupied.shape[1] == occupied.shape[2]:
        raise ValueError(f"occupied must have shape [res, res, res], got {list(occupied.shape)}")
    check_tensor("aabb", aabb, (6,), (torch.float32,))
    if offsets is not None:
        check_tensor("offsets", offsets, (n_rays,), (torch.float32,))
    named = {"origins": origins, "directions": directions, "occupied": occupied, "aabb": aabb}
    device = check_same_device({**named, **({"offsets": offsets} if offsets is not None else {})})
    for name, value in (("near", near), ("far", far), ("step_size", step_size)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not 0 <= near < far:
        raise ValueError(f"near and far must satisfy 0 <= near < far, got {near} and {far}")
    if value_checks(validate):
        for name, tensor in (("origins", origins), ("directions", directions), ("aabb", aabb)):
            check_finite(name, tensor)
        if not bool((aabb[3:] > aabb[:3]).all()):
            raise ValueError(
                f"aabb must be [xmin, ymin, zmin, xmax, ymax, zmax], got {aabb.tolist()}"
            )
        if (
            offsets is not None
            and offsets.numel()
            and not bool(((offsets >= 0) & (offsets <= 1)).all())
        ):
            raise ValueError("offsets must lie in [0, 1]")
    entry, exit_ = ray_aabb(origins, directions, aabb)
    entry, exit_ = entry.clamp(min=near), exit_.clamp(max=far)
    if n_rays == 0:
        return _empty(origins)
    span = float((exit_ - entry).clamp(min=0).max())
    n_steps = math.ceil(span / step_size) + 1
    if n_steps <= 1:
        return _empty(origins)
    if offsets is None:
        offsets = torch.ones(n_rays, device=device)
    args = (origins, directions, entry, exit_, offsets, occupied, aabb)
    if resolve_impl(impl, device, FAMILY) == "cpp":
        contiguous = [t.contiguous() for t in args]
        return tuple(torch.ops.mp3d.march_occupancy(*contiguous, float(step_size), n_steps))
    return march_reference(*args, float(step_size), n_steps)
