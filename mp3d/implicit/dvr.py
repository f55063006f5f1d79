"""Differentiable volumetric rendering (DVR, Niemeyer et al. 2020): an implicit surface learned
from posed images by rendering its surface, with gradients by implicit differentiation; and,
on the same field and data, SDF volume rendering (NeuS, mp3d.implicit.sdf_volume).

Field. f(p) -> (value, rgb) on points of the unit cube of the scene box (centre at the
origin, longest side 1; mp3d.implicit.sampling.Normalisation maps back). `kind` "sdf": the
value is a signed distance (inside below `tau`, 0 by default), from IGRField (softplus MLP,
geometric sphere initialisation) or HashSDFField (hash grid plus a sphere); "occupancy": the
value is an occupancy logit, -occupancy_scale times the same network (inside above `tau`,
logit 0 = probability 1/2). Colour: an MLP on the positional encoding of the point, the unit
normal (optional) and the spherical harmonics of the view direction.

Surface rendering, per ray (all gradient-free): n uniform steps between the ray's entry and
exit of the box; the first step from outside (level = value - tau > 0 for an SDF) to inside
is bracketed and refined by `secant_steps` secant (regula falsi, Illinois rule) steps, then
one more secant estimate gives the surface point p_hat. Rays that start inside, leave the
box, or never cross are reported as misses (hit False: background colour, opacity 0, no
gradient).

Backward (ImplicitSurface, an autograd.Function): on the surface f(p_hat(theta); theta) =
tau, so for the ray direction w

    d p_hat / d theta = -(w / (grad_p f . w)) d f / d theta,

with f evaluated once, with a graph, at the detached p_hat; nothing of the marching or the
secant steps is kept. Gradients with respect to the ray itself are not propagated.

Losses (surface renderer), on a batch of R random pixels with mask M (alpha > 0.5):
- RGB: sum over rays with M and a hit of |c(p_hat) - C|_1, divided by R (as IDR);
- mask: on every other ray (not both M and a hit), at the point p* where the level is
  lowest along the march (mask_point="min", IDR's choice) or a uniform random point
  (mask_point="random", DVR's): BCE(sigmoid(-alpha level(p*)), M) / alpha, summed and
  divided by R. Outside the mask this is DVR's free-space loss (f pushed above the level,
  occupancy down); inside the mask with no hit, the occupancy loss (f pushed below). For an
  SDF alpha grows from mask_alpha_start to mask_alpha_end over training (IDR's annealing);
  for occupancy alpha = 1 (plain BCE of the logit);
- depth (optional, depth_weight > 0, views with .depths [N,H,W] camera z, 0 = none):
  |z(p_hat) - z| on rays with a hit and a depth;
- eikonal (SDF): mp3d.implicit.igr.eikonal_loss at uniform points of the box and the
  surface points.
Volume renderer: L1 of the composited colour on every ray (on the views' background),
BCE(opacity, M) (NeuS's mask loss), and the same eikonal term at uniform points and one
sample per ray.

The trainer (train_dvr) runs on the shared training layer (mp3d.training.TrainingRun:
budget, progress, atomic checkpoints, resume); models render Rendering(rgb, depth, opacity)
for mp3d.rendering.evaluate, normal maps, and meshes by MISE (field_mesh) in the scene's
coordinates.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mp3d._backend import IMPLS
from mp3d.cameras import Camera, orbit_of_views, random_rays
from mp3d.data.scene import (
    DEFAULT_HOLDOUT,
    load_scene,
    metadata_cameras,
    metadata_eval_views,
    scene_metadata,
)
from mp3d.data.views import PosedViews
from mp3d.encodings import PositionalEncoding, SphericalHarmonics
from mp3d.implicit.evaluation import field_mesh
from mp3d.implicit.igr import (
    HashSDFField,
    IGRField,
    eikonal_loss,
    finite_difference_gradient,
    gradient,
)
from mp3d.implicit.sampling import Normalisation
from mp3d.implicit.sdf_volume import SingleVariance, render_sdf_volume
from mp3d.io import read_checkpoint, save_image
from mp3d.nerf.samplers import ray_aabb
from mp3d.nn.mlp import MLP
from mp3d.rendering import Rendering, evaluate, image_stem, render_turntable, write_json
from mp3d.training import (
    CHECKPOINT_NAME,
    Config,
    TrainerConfig,
    TrainingRun,
    check_choice,
    check_float,
    check_int,
    check_out_dir,
    resolve_device,
)

__all__ = [
    "ColourNetwork",
    "DVRConfig",
    "DVRModel",
    "DVRSpec",
    "SurfaceField",
    "SurfaceHits",
    "dvr_mesh",
    "evaluate_dvr",
    "find_surface",
    "fit_dvr_scene",
    "implicit_surface_points",
    "load_dvr",
    "mask_iou",
    "mesh_dvr_checkpoint",
    "normal_image",
    "render_dvr_checkpoint",
    "secant_refine",
    "train_dvr",
    "view_masks",
]

FORMAT, VERSION = "mp3d.dvr", 1
FIELDS = ("mlp", "hash")
KINDS = ("sdf", "occupancy")
RENDERERS = ("surface", "volume")
GRADIENTS = ("auto", "autograd", "finite_difference")
MASK_POINTS = ("min", "random")
MIN_SLOPE = 1e-3  # |grad f . w| is kept above this in the implicit gradient (grazing rays)


# ----------------------------------------------------------------------------- the field


class ColourNetwork(nn.Module):
    """rgb [N,3] in [0,1] at unit-cube points [N,3] seen along unit directions [N,3] (with
    unit normals [N,3] when `use_normals`): an MLP of `layers` x `hidden` ReLU layers on the
    positional encoding of the point, the normal and the spherical harmonics (degree
    `direction_degree`) of the direction."""

    def __init__(
        self,
        hidden: int = 128,
        layers: int = 2,
        n_frequencies: int = 6,
        direction_degree: int = 2,
        use_normals: bool = True,
    ) -> None:
        super().__init__()
        self.position = PositionalEncoding(3, n_frequencies)
        self.direction = SphericalHarmonics(direction_degree)
        self.use_normals = use_normals
        width = self.position.out_dim + self.direction.out_dim + (3 if use_normals else 0)
        self.mlp = MLP(width, [hidden] * layers, 3)

    def forward(
        self, points: torch.Tensor, directions: torch.Tensor, normals: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [self.position(points), self.direction(directions)]
        if self.use_normals:
            if normals is None:
                raise ValueError("this colour network takes normals: pass normals [N,3]")
            parts.append(normals)
        return torch.sigmoid(self.mlp(torch.cat(parts, dim=-1)))


def _attached_gradient(fn, points: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """grad fn at points [N,3] that are part of a graph (so the gradient depends on how they
    were computed as well as on fn's parameters)."""
    with torch.enable_grad():
        values = fn(points)
        (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
    return grad


class SurfaceField(nn.Module):
    """f(p) -> (value, rgb) on unit-cube points: a geometry network (IGRField or
    HashSDFField, points [N,3] -> [N]) read as a signed distance (`kind` "sdf") or as
    -occupancy_scale times an occupancy logit ("occupancy"), with surface level `tau`, and a
    ColourNetwork. Spatial gradients by autograd or by central differences of step fd_eps."""

    def __init__(
        self,
        geometry: nn.Module,
        colour: ColourNetwork,
        kind: str = "sdf",
        tau: float = 0.0,
        gradient_mode: str = "autograd",
        fd_eps: float = 2e-3,
        occupancy_scale: float = 10.0,
    ) -> None:
        super().__init__()
        check_choice("kind", kind, KINDS)
        check_choice("gradient_mode", gradient_mode, ("autograd", "finite_difference"))
        self.geometry, self.colour = geometry, colour
        self.kind, self.tau = kind, float(tau)
        self.gradient_mode, self.fd_eps = gradient_mode, float(fd_eps)
        self.occupancy_scale = float(occupancy_scale)

    @property
    def inside(self) -> str:
        """Which side of `tau` is inside: "below" for an SDF, "above" for occupancy logits."""
        return "below" if self.kind == "sdf" else "above"

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """The field's value [N] at unit-cube points [N,3]: SDF or occupancy logit."""
        value = self.geometry(points)
        return value if self.kind == "sdf" else -self.occupancy_scale * value

    def level(self, points: torch.Tensor) -> torch.Tensor:
        """value - tau (SDF) or tau - value (occupancy) [N]: positive outside, 0 on the surface."""
        value = self(points)
        return value - self.tau if self.kind == "sdf" else self.tau - value

    def level_gradient(self, points: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """grad of level [N,3] at points [N,3] (outward; kept in the graph with create_graph,
        and through the points themselves when they are part of a graph)."""
        if self.gradient_mode == "finite_difference":
            if not (create_graph or points.requires_grad):
                with torch.no_grad():
                    return finite_difference_gradient(self.level, points, self.fd_eps)
            return finite_difference_gradient(self.level, points, self.fd_eps)
        if points.requires_grad:
            return _attached_gradient(self.level, points, create_graph)
        return gradient(self.level, points, create_graph=create_graph)


# ----------------------------------------------------------------------------- surfaces


@dataclass
class SurfaceHits:
    """Where rays meet a surface: t [R] along each ray (valid where hit), hit [R] bool, and
    t_min [R], the marching step where the level was lowest (for the mask losses)."""

    t: torch.Tensor
    hit: torch.Tensor
    t_min: torch.Tensor


def secant_refine(
    level_fn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    t_lo: torch.Tensor,
    t_hi: torch.Tensor,
    f_lo: torch.Tensor,
    f_hi: torch.Tensor,
    n_steps: int = 8,
    illinois: bool = True,
) -> torch.Tensor:
    """Root [R] of level_fn along rays [R,3] inside brackets t_lo < t_hi [R] whose levels
    f_lo > 0 >= f_hi [R] straddle 0: `n_steps` secant (regula falsi) steps, each keeping the
    side with the sign change, then a final secant estimate. An end kept twice in a row has
    its level halved (the Illinois rule, unless `illinois` is False), so that convex or
    concave stretches do not stall the convergence at one end. Differentiable if level_fn
    is (without the Illinois rule one end stays put once the search converges, which keeps
    autograd through many unrolled steps finite: both ends meeting makes it 0 / 0)."""
    kept_lo = kept_hi = torch.zeros_like(t_lo, dtype=torch.bool)
    for _ in range(n_steps):
        t_mid = t_lo - f_lo * (t_hi - t_lo) / (f_hi - f_lo)
        f_mid = level_fn(origins + t_mid[:, None] * directions)
        inside = f_mid <= 0  # so f_lo stays > 0 and f_hi - f_lo < 0 (a level of exactly 0 happens)
        # inside: the high end moves and the low end is kept, else the other way round
        if illinois:
            f_lo = torch.where(inside & kept_lo, 0.5 * f_lo, f_lo)
            f_hi = torch.where(~inside & kept_hi, 0.5 * f_hi, f_hi)
        kept_lo, kept_hi = inside, ~inside
        t_lo, f_lo = torch.where(inside, t_lo, t_mid), torch.where(inside, f_lo, f_mid)
        t_hi, f_hi = torch.where(inside, t_mid, t_hi), torch.where(inside, f_mid, f_hi)
    return t_lo - f_lo * (t_hi - t_lo) / (f_hi - f_lo)


@torch.no_grad()
def find_surface(
    level_fn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    n_steps: int = 64,
    secant_steps: int = 8,
    lipschitz: float | None = None,
    chunk: int = 65536,
) -> SurfaceHits:
    """First surface of level_fn (points [N,3] -> [N], positive outside) along rays [R,3]
    between near and far [R]: `n_steps` uniform steps (the ends included), the first step
    from outside to inside refined by secant_refine. Rays with far <= near, rays starting
    inside and rays that never cross miss (hit False, t = far). No gradients; at most
    `chunk` points per call of level_fn.

    With `lipschitz` L (a bound on |grad level|, e.g. 2 for a signed distance kept near
    |grad f| = 1 by the eikonal term), every 4th step is evaluated first, and the steps in
    between only where a zero may lie: between coarse steps of levels a, b of one sign and
    |a + b| > L * spacing the level cannot change sign, and the skipped steps are filled
    by linear interpolation (of that sign). The hits are those of the full march whenever
    the bound holds."""
    check_int("n_steps", n_steps, 2)
    check_int("secant_steps", secant_steps, 0)
    if lipschitz is not None:
        check_float("lipschitz", lipschitz, 0.0, exclusive_minimum=True)
    n_rays = origins.shape[0]
    t_out = far.clone()
    hit = torch.zeros(n_rays, dtype=torch.bool, device=origins.device)
    t_min = near.clone()
    steps = torch.linspace(0.0, 1.0, n_steps, device=origins.device, dtype=origins.dtype)
    per_chunk = max(1, chunk // n_steps)
    for start in range(0, n_rays, per_chunk):
        o, d = origins[start : start + per_chunk], directions[start : start + per_chunk]
        lo, hi = near[start : start + per_chunk], far[start : start + per_chunk]
        t = lo[:, None] + (hi - lo)[:, None] * steps
        f = _march_levels(level_fn, o, d, t, lipschitz)
        outside = f > 0
        crossing = outside[:, :-1] & ~outside[:, 1:]
        found = crossing.any(dim=1) & outside[:, 0] & (hi > lo)
        first = torch.argmax(crossing.to(torch.uint8), dim=1)
        t_min[start : start + len(o)] = t.gather(1, f.argmin(dim=1, keepdim=True))[:, 0]
        rays = torch.nonzero(found)[:, 0]
        if len(rays) == 0:
            continue
        k = first[rays, None]
        refined = secant_refine(
            level_fn,
            o[rays],
            d[rays],
            t[rays].gather(1, k)[:, 0],
            t[rays].gather(1, k + 1)[:, 0],
            f[rays].gather(1, k)[:, 0],
            f[rays].gather(1, k + 1)[:, 0],
            secant_steps,
        )
        t_out[start + rays] = refined
        hit[start + rays] = True
    return SurfaceHits(t_out, hit, t_min)


def _march_levels(level_fn, o, d, t, lipschitz: float | None, stride: int = 4) -> torch.Tensor:
    """Levels [r,n] of rays [r,3] at steps t [r,n]: all evaluated, or with `lipschitz`
    every `stride`-th first and the rest only where the bound allows a zero (find_surface)."""
    n = t.shape[1]
    if lipschitz is None or n <= 2 * stride:
        return level_fn((o[:, None] + d[:, None] * t[..., None]).reshape(-1, 3)).reshape(t.shape)
    coarse = torch.arange(0, n, stride, device=t.device)
    if int(coarse[-1]) != n - 1:
        coarse = torch.cat([coarse, coarse.new_tensor([n - 1])])
    tc = t[:, coarse]
    fc = level_fn((o[:, None] + d[:, None] * tc[..., None]).reshape(-1, 3)).reshape(tc.shape)
    a, b = fc[:, :-1], fc[:, 1:]
    spacing = tc[:, 1:] - tc[:, :-1]
    total = a + b
    bound = lipschitz * spacing
    clear = ((a > 0) & (b > 0) & (total > bound)) | ((a < 0) & (b < 0) & (-total > bound))
    interval = torch.searchsorted(coarse, torch.arange(n, device=t.device), right=True) - 1
    interval = interval.clamp(max=len(coarse) - 2)
    weight = (t - tc[:, interval]) / spacing[:, interval].clamp(min=1e-12)
    f = a[:, interval] + weight * (b - a)[:, interval]
    interior = torch.ones(n, dtype=torch.bool, device=t.device)
    interior[coarse] = False
    rows, cols = torch.nonzero((~clear)[:, interval] & interior, as_tuple=True)
    if len(rows):
        f[rows, cols] = level_fn(o[rows] + d[rows] * t[rows, cols, None])
    f[:, coarse] = fc
    return f


class ImplicitSurface(torch.autograd.Function):
    """Surface points p_hat [R,3] whose gradient is that of the implicit function theorem:
    given values [R] = level(p_hat; theta) (evaluated with a graph at the detached p_hat),
    directions w [R,3] and slopes [R] = grad_p level . w, backward maps dL/dp_hat to
    dL/dvalue = -(dL/dp_hat . w) / slope, i.e. d p_hat / d theta = -(w / slope) d level/d theta."""

    @staticmethod
    def forward(ctx, values, points, directions, slopes):
        ctx.save_for_backward(directions, slopes)
        return points.detach().clone()

    @staticmethod
    def backward(ctx, grad_points):
        directions, slopes = ctx.saved_tensors
        return -(grad_points * directions).sum(dim=-1) / slopes, None, None, None


def implicit_surface_points(
    level_fn,
    points: torch.Tensor,
    directions: torch.Tensor,
    gradient_fn=None,
    min_slope: float = MIN_SLOPE,
) -> torch.Tensor:
    """Surface points [R,3] (found without gradients) made differentiable by implicit
    differentiation (ImplicitSurface): level_fn is evaluated once, with a graph, at the
    points; gradient_fn (points -> grad level [R,3], no graph) gives the slopes, by autograd
    when None. |slope| is kept >= min_slope. Without grad mode the points come back as they are."""
    points, directions = points.detach(), directions.detach()
    if not torch.is_grad_enabled():
        return points
    if gradient_fn is None:
        leaf = points.clone().requires_grad_(True)
        values = level_fn(leaf)
        (grad,) = torch.autograd.grad(values.sum(), leaf, retain_graph=True)
    else:
        values = level_fn(points)
        with torch.no_grad():
            grad = gradient_fn(points)
    slopes = (grad.detach() * directions).sum(dim=-1)
    slopes = torch.where(
        slopes < 0, slopes.clamp(max=-min_slope), slopes.clamp(min=min_slope)
    ).detach()
    return ImplicitSurface.apply(values, points, directions, slopes)


# ----------------------------------------------------------------------------- model


@dataclass
class DVRLayout(Config):
    """The field's and renderers' sizes, shared by the training config and the model spec."""

    field: str = "mlp"  # "mlp" (IGRField) or "hash" (HashSDFField)
    kind: str = "sdf"  # "sdf" or "occupancy" (surface renderer only)
    renderer: str = "surface"  # "surface" (DVR) or "volume" (NeuS)
    tau: float = 0.0  # the surface's level: SDF value, or occupancy logit
    init_radius: float = 0.3  # the initial sphere, unit-cube units
    hidden: int = 128
    layers: int = 4
    skip: int = 2
    n_frequencies: int = 4  # positional encoding of the geometry MLP's input
    hash_levels: int = 12
    hash_log2_table_size: int = 17
    hash_finest_resolution: int = 256
    hash_hidden: int = 64
    hash_impl: str = "auto"
    gradient: str = "auto"  # auto: autograd for mlp, finite differences for hash
    fd_eps: float = 2e-3  # finite-difference step, unit-cube units
    occupancy_scale: float = 10.0
    colour_hidden: int = 128
    colour_layers: int = 2
    colour_frequencies: int = 6
    direction_degree: int = 2
    colour_normals: bool | None = None  # None: with the surface renderer, not the volume one
    march_steps: int = 64
    secant_steps: int = 8
    march_lipschitz: float = 2.0  # SDF only: skip steps that cannot hold a zero (0: march all)
    n_samples: int = 32  # volume renderer: stratified sections per ray
    n_importance: int = 16  # volume renderer: extra section edges near the surface
    importance_inv_s: float = 64.0
    cull_weight: float = 1e-3  # volume renderer: sections weighing less are not rendered
    init_variance: float = 0.3  # NeuS: s = exp(10 v)

    def validate(self) -> None:
        super().validate()
        check_choice("field", self.field, FIELDS)
        check_choice("kind", self.kind, KINDS)
        check_choice("renderer", self.renderer, RENDERERS)
        if self.renderer == "volume" and self.kind != "sdf":
            raise ValueError(
                f"renderer='volume' renders a signed distance: kind must be 'sdf', "
                f"got {self.kind!r}"
            )
        check_float("tau", self.tau)
        check_float("init_radius", self.init_radius, 0.0, 0.5, exclusive_minimum=True)
        check_int("hidden", self.hidden, 8)
        check_int("layers", self.layers, 2)
        check_int("skip", self.skip, 1, self.layers - 1)
        check_int("n_frequencies", self.n_frequencies, 0, 12)
        check_int("hash_levels", self.hash_levels, 1, 32)
        check_int("hash_log2_table_size", self.hash_log2_table_size, 8, 24)
        check_int("hash_finest_resolution", self.hash_finest_resolution, 16, 1 << 14)
        check_int("hash_hidden", self.hash_hidden, 8)
        check_choice("hash_impl", self.hash_impl, IMPLS)
        check_choice("gradient", self.gradient, GRADIENTS)
        check_float("fd_eps", self.fd_eps, 0.0, 0.1, exclusive_minimum=True)
        check_float("occupancy_scale", self.occupancy_scale, 0.0, exclusive_minimum=True)
        check_int("colour_hidden", self.colour_hidden, 8)
        check_int("colour_layers", self.colour_layers, 1)
        check_int("colour_frequencies", self.colour_frequencies, 0, 12)
        check_int("direction_degree", self.direction_degree, 0, 4)
        if self.colour_normals is not None and not isinstance(self.colour_normals, bool):
            raise ValueError(
                f"colour_normals must be True, False or None, got {self.colour_normals!r}"
            )
        check_int("march_steps", self.march_steps, 2, 4096)
        check_int("secant_steps", self.secant_steps, 0, 64)
        check_float("march_lipschitz", self.march_lipschitz, 0.0)
        check_int("n_samples", self.n_samples, 1, 4096)
        check_int("n_importance", self.n_importance, 0, 4096)
        check_float("importance_inv_s", self.importance_inv_s, 0.0, exclusive_minimum=True)
        check_float("cull_weight", self.cull_weight, 0.0, 0.5)
        check_float("init_variance", self.init_variance, -1.0, 1.0)

    @property
    def gradient_mode(self) -> str:
        """How spatial gradients are taken: autograd, or finite differences."""
        if self.gradient != "auto":
            return self.gradient
        return "autograd" if self.field == "mlp" else "finite_difference"

    @property
    def uses_normals(self) -> bool:
        """Whether the colour network sees the normal."""
        if self.colour_normals is not None:
            return self.colour_normals
        return self.renderer == "surface"


@dataclass
class DVRSpec(DVRLayout):
    """Everything needed to rebuild a DVR model (stored in checkpoints): the layout, the
    scene box aabb [6] and the depth range of its cameras."""

    aabb: list[float] = dataclasses.field(default_factory=lambda: [-1.5] * 3 + [1.5] * 3)
    near: float = 0.0
    far: float = 1e6

    def validate(self) -> None:
        super().validate()
        if (
            len(self.aabb) != 6
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.aabb)
            or not all(lo < hi for lo, hi in zip(self.aabb[:3], self.aabb[3:]))
        ):
            raise ValueError(f"aabb must be [xmin, ymin, zmin, xmax, ymax, zmax], got {self.aabb}")
        check_float("near", self.near, 0.0)
        check_float("far", self.far, self.near, exclusive_minimum=True)


class DVRModel(nn.Module):
    """A SurfaceField in the unit cube of the scene box, NeuS's sharpness s, and the two
    renderers. Rays and points outside are in scene coordinates."""

    def __init__(self, spec: DVRSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        if spec.field == "hash":
            geometry = HashSDFField(
                spec.hash_levels,
                spec.hash_log2_table_size,
                spec.hash_finest_resolution,
                hidden=spec.hash_hidden,
                radius=spec.init_radius,
                impl=spec.hash_impl,
            )
        else:
            geometry = IGRField(
                spec.hidden, spec.layers, spec.skip, spec.init_radius, spec.n_frequencies
            )
        colour = ColourNetwork(
            spec.colour_hidden,
            spec.colour_layers,
            spec.colour_frequencies,
            spec.direction_degree,
            spec.uses_normals,
        )
        self.field = SurfaceField(
            geometry,
            colour,
            spec.kind,
            spec.tau,
            spec.gradient_mode,
            spec.fd_eps,
            spec.occupancy_scale,
        )
        self.variance = SingleVariance(spec.init_variance)
        aabb = torch.tensor(spec.aabb, dtype=torch.float32)
        self.register_buffer("aabb", aabb)
        self.register_buffer("centre", 0.5 * (aabb[:3] + aabb[3:]))
        self.register_buffer("scale", 1.0 / (aabb[3:] - aabb[:3]).max())

    # -- coordinates

    @property
    def normalisation(self) -> Normalisation:
        """The map from scene coordinates to the field's unit cube."""
        return Normalisation(self.centre.detach().double().cpu().numpy(), float(self.scale))

    def to_unit(self, points: torch.Tensor) -> torch.Tensor:
        """Scene points [N,3] -> unit-cube points [N,3]."""
        return (points - self.centre) * self.scale

    def unit_rays(self, origins: torch.Tensor, directions: torch.Tensor):
        """Scene rays [R,3] -> (unit-cube origins [R,3], directions [R,3], near [R], far [R]):
        the part of each ray inside the box and the cameras' depth range (unit-cube units)."""
        o = self.to_unit(origins)
        box = (self.aabb - self.centre.repeat(2)) * self.scale
        entry, exit_ = ray_aabb(o, directions, box)
        near = entry.clamp(min=self.spec.near * float(self.scale))
        far = exit_.clamp(max=self.spec.far * float(self.scale))
        return o, directions, near, far

    @torch.no_grad()
    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """The field's value [N] (SDF in unit-cube units, or occupancy logit) at scene points."""
        return self.field(self.to_unit(points))

    # -- rendering

    def render_rays(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        background,
        renderer: str | None = None,
        train: bool = False,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Renders scene rays [R,3] (unit directions) -> {"rgb" [R,3] on `background`,
        "opacity" [R] (hit mask, or accumulated opacity), "depth" [R] (distance along the
        ray times opacity, scene units), ...}; `renderer` defaults to the spec's."""
        renderer = check_choice("renderer", renderer or self.spec.renderer, RENDERERS)
        if renderer == "volume" and self.spec.kind != "sdf":
            raise ValueError("the volume renderer needs an SDF field (kind='sdf')")
        o, d, near, far = self.unit_rays(origins, directions)
        bg = torch.as_tensor(background, dtype=o.dtype, device=o.device).expand(o.shape[0], 3)
        if renderer == "surface":
            out = self._render_surface(o, d, near, far, bg, train)
        else:
            out = self._render_volume(o, d, near, far, bg, train, generator)
        out.update(unit_origins=o, unit_directions=d, near=near, far=far)
        return out

    def _render_surface(self, o, d, near, far, bg, train):
        field = self.field
        lipschitz = self.spec.march_lipschitz
        hits = find_surface(
            field.level,
            o,
            d,
            near,
            far,
            self.spec.march_steps,
            self.spec.secant_steps,
            lipschitz if field.kind == "sdf" and lipschitz > 0 else None,
        )
        index = torch.nonzero(hits.hit)[:, 0]
        points = o[index] + hits.t[index, None] * d[index]
        fd = field.gradient_mode == "finite_difference"
        points = implicit_surface_points(
            field.level,
            points,
            d[index],
            gradient_fn=(lambda p: field.level_gradient(p)) if fd else None,
        )
        with torch.enable_grad() if train else torch.no_grad():
            grads = (
                field.level_gradient(points, create_graph=train)
                if (field.colour.use_normals or not train)
                else None
            )
        normals = F.normalize(grads, dim=-1) if grads is not None else None
        colours = field.colour(points, d[index], normals)
        rgb = bg.index_put((index,), colours)
        opacity = hits.hit.to(o.dtype)
        t_scene = hits.t / self.scale
        normal_image = torch.zeros_like(o)
        if normals is not None:
            normal_image = normal_image.index_put((index,), normals.detach())
        return {
            "rgb": rgb,
            "opacity": opacity,
            "depth": torch.where(hits.hit, t_scene, torch.zeros_like(t_scene)),
            "normals": normal_image,
            "hit": hits.hit,
            "hit_index": index,
            "points": points,
            "t_unit": hits.t,
            "t_min": hits.t_min,
        }

    def _render_volume(self, o, d, near, far, bg, train, generator):
        field = self.field

        def colour_fn(points, directions):
            normals = None
            if field.colour.use_normals:
                normals = F.normalize(field.level_gradient(points, create_graph=train), dim=-1)
            return field.colour(points, directions, normals)

        out = render_sdf_volume(
            field.level,
            colour_fn,
            o,
            d,
            near,
            far,
            self.variance(),
            self.spec.n_samples,
            self.spec.n_importance,
            self.spec.importance_inv_s,
            background=bg,
            jitter=train,
            generator=generator,
            cull_weight=self.spec.cull_weight,
        )
        out["depth"] = out["depth"] / self.scale
        if not train:  # normals at the expected surface point, for normal maps
            t = out["depth"] * self.scale / out["opacity"].clamp(min=1e-6)
            grads = field.level_gradient(o + t[:, None] * d)
            solid = (out["opacity"] > 0.5)[:, None]
            out["normals"] = torch.where(solid, F.normalize(grads, dim=-1), 0.0)
        return out

    def forward(self, origins, directions, background, renderer=None, train=False, generator=None):
        """render_rays (so that wrappers such as DistributedDataParallel can call it)."""
        return self.render_rays(origins, directions, background, renderer, train, generator)

    @torch.no_grad()
    def render_images(
        self,
        camera: Camera,
        background=(1.0, 1.0, 1.0),
        renderer: str | None = None,
        chunk: int = 4096,
    ) -> dict[str, torch.Tensor]:
        """Full images seen by `camera`: {"rgb" [H,W,3], "depth" [H,W] (camera z times
        opacity), "opacity" [H,W], "normals" [H,W,3] (scene-space unit normals, 0 off the
        surface)}."""
        device = self.aabb.device
        camera = camera.to(device)
        origins, directions = camera.rays()
        origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)
        keys = ("rgb", "depth", "opacity", "normals")
        parts = {key: [] for key in keys}
        for i in range(0, origins.shape[0], chunk):
            out = self.render_rays(origins[i : i + chunk], directions[i : i + chunk], bg, renderer)
            for key in keys:
                parts[key].append(out[key])
        h, w = camera.height, camera.width
        images = {key: torch.cat(parts[key]) for key in keys}
        forward_axis = camera.c2w[:3, 2].to(directions)
        images["depth"] = images["depth"] * (directions @ forward_axis)  # distance -> z
        return {
            key: value.reshape(h, w, -1) if key in ("rgb", "normals") else value.reshape(h, w)
            for key, value in images.items()
        }

    @torch.no_grad()
    def render(
        self, camera: Camera, background=(1.0, 1.0, 1.0), renderer: str | None = None
    ) -> Rendering:
        """Rendering(rgb [H,W,3], depth [H,W], opacity [H,W]) seen by `camera`."""
        images = self.render_images(camera, background, renderer)
        return Rendering(images["rgb"], images["depth"], images["opacity"])


def normal_image(normals: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Unit normals [H,W,3] -> RGB [H,W,3]: (n + 1) / 2, black where opacity is 0."""
    return ((normals + 1.0) * 0.5).clamp(0, 1) * opacity.clamp(0, 1)[..., None]


def dvr_mesh(model: DVRModel, initial: int = 32, upsampling_steps: int = 3, device=None):
    """The model's surface {value = tau} by MISE (mp3d.implicit.evaluation.field_mesh) in
    scene coordinates, as a trimesh.Trimesh (no faces if it has no surface)."""
    device = device if device is not None else model.aabb.device
    mesh = field_mesh(
        model.field, model.spec.tau, model.field.inside, initial, upsampling_steps, device
    )
    if len(mesh.vertices):
        mesh.vertices = model.normalisation.to_world(mesh.vertices)
    return mesh


# ----------------------------------------------------------------------------- training


@dataclass
class DVRConfig(TrainerConfig, DVRLayout):
    """How to train a DVR or NeuS model on posed images (defaults sized for a few CPU
    minutes at 64-128 pixels; on spot at 128x128, 10 minutes of a busy 2-core CPU reached
    mask IoU 0.975 / 0.981 for surface / volume). Adam at lr for the networks, hash_lr for
    hash tables, variance_lr for NeuS's s, decaying to lr_final_factor times that. An unset
    mask_weight takes the renderer's: 100 for surface (IDR's, on its BCE / alpha), 0.1 for
    volume (NeuS's, on BCE(opacity, mask))."""

    steps: int | None = 2000
    batch_rays: int = 1024
    lr: float = 1e-3
    hash_lr: float = 1e-2
    lr_final_factor: float = 0.1
    rgb_weight: float = 1.0
    mask_weight: float | None = None
    eikonal_weight: float = 0.1
    eikonal_points: int | None = None  # uniform points per step (None: batch_rays // 2)
    depth_weight: float = 0.0
    mask_alpha_start: float = 50.0
    mask_alpha_end: float = 800.0
    mask_point: str = "min"  # "min" (IDR) or "random" (DVR) point along a ray
    variance_lr: float = 1e-2  # NeuS's v in s = exp(10 v): s from 20 to ~150 in 60 steps
    checkpoint_every: int = 500
    log_every: int = 25

    def validate(self) -> None:
        super().validate()
        check_int("batch_rays", self.batch_rays, 1, 1 << 22)
        check_float("lr", self.lr, 0.0, exclusive_minimum=True)
        check_float("hash_lr", self.hash_lr, 0.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_float("rgb_weight", self.rgb_weight, 0.0)
        if self.mask_weight is not None:
            check_float("mask_weight", self.mask_weight, 0.0)
        check_float("eikonal_weight", self.eikonal_weight, 0.0)
        if self.eikonal_points is not None:
            check_int("eikonal_points", self.eikonal_points, 0)
        check_float("depth_weight", self.depth_weight, 0.0)
        check_float("mask_alpha_start", self.mask_alpha_start, 0.0, exclusive_minimum=True)
        check_float("mask_alpha_end", self.mask_alpha_end, 0.0, exclusive_minimum=True)
        check_choice("mask_point", self.mask_point, MASK_POINTS)
        check_float("variance_lr", self.variance_lr, 0.0, exclusive_minimum=True)

    @property
    def mask_loss_weight(self) -> float:
        """The mask loss's weight (the renderer's default when mask_weight is None)."""
        if self.mask_weight is not None:
            return self.mask_weight
        return 100.0 if self.renderer == "surface" else 0.1

    def mask_alpha(self, progress: float) -> float:
        """IDR's sharpness of the SDF mask loss, from mask_alpha_start to mask_alpha_end."""
        return self.mask_alpha_start * (self.mask_alpha_end / self.mask_alpha_start) ** progress

    def model_spec(self, views: PosedViews) -> DVRSpec:
        """The spec of a model for `views`: their box and depth range, this layout."""
        layout = {f.name: getattr(self, f.name) for f in dataclasses.fields(DVRLayout)}
        return DVRSpec(
            aabb=[float(v) for v in views.aabb.tolist()],
            near=float(getattr(views, "near", 0.0)),
            far=float(getattr(views, "far", 1e6)),
            **layout,
        )


def _where(source) -> str:
    return str(source) if source is not None else "views"


def view_masks(views: PosedViews, source=None) -> torch.Tensor:
    """Object masks [N,H,W] bool (alpha > 0.5) of `views`; ValueError naming `source` (the
    scene folder) when the views have no alpha, or when every pixel is opaque (images
    without an alpha channel)."""
    where = _where(source)
    alphas = getattr(views, "alphas", None)
    if not isinstance(alphas, torch.Tensor):
        raise ValueError(
            f"{where}: the views have no masks ({type(views).__name__} has no alpha "
            f"channel), but the mask losses need them: use RGBA images whose alpha is the "
            f"object mask, or set mask_weight=0"
        )
    if bool((alphas >= 0.999).all()):
        raise ValueError(
            f"{where}: the views have no masks (every pixel of every image is opaque: "
            f"the images have no alpha channel), but the mask losses need them: use RGBA "
            f"images whose alpha is the object mask, or set mask_weight=0"
        )
    return alphas > 0.5


def _check_views(views: PosedViews, config: DVRConfig, source=None):
    """(masks [N,H,W] bool or None, depths [N,H,W] or None), after checking the views."""
    where = _where(source)
    for name in ("images", "Ks", "c2ws", "aabb"):
        if not isinstance(getattr(views, name, None), torch.Tensor):
            raise ValueError(
                f"{where}: views must have a tensor .{name} (a PosedViews such as "
                f"BlenderScene), got {type(views).__name__}"
            )
    if len(views) == 0:
        raise ValueError(f"{where}: views must hold at least one view, got 0")
    for name in ("Ks", "c2ws"):
        finite = torch.isfinite(getattr(views, name)).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = int(torch.nonzero(~finite)[0, 0])
            raise ValueError(
                f"{where}: views.{name}[{bad}] (view {views.names[bad]!r}) is not finite"
            )
    aabb = views.aabb.flatten()
    if (
        aabb.numel() != 6
        or not bool(torch.isfinite(aabb).all())
        or not bool((aabb[:3] < aabb[3:]).all())
    ):
        raise ValueError(
            f"{where}: views.aabb must be 6 finite numbers, min below max, got {aabb.tolist()}"
        )
    masks = view_masks(views, source) if config.mask_loss_weight > 0 else None
    if masks is not None and not bool(masks.any()):
        raise ValueError(f"{where}: the views' masks are empty (alpha <= 0.5 everywhere)")
    depths = None
    if config.depth_weight > 0:
        depths = getattr(views, "depths", None)
        if not isinstance(depths, torch.Tensor) or depths.shape != views.images.shape[:3]:
            raise ValueError(
                f"{where}: depth_weight={config.depth_weight} needs views with .depths "
                f"[N,H,W] (camera z, 0 where unknown), got "
                f"{None if depths is None else list(depths.shape)}"
            )
    return masks, depths


def _optimizer(model: DVRModel, config: DVRConfig) -> torch.optim.Optimizer:
    """Adam with one group per learning rate: hash tables, NeuS's s, everything else."""
    tables, variance, rest = [], [], []
    for name, parameter in model.named_parameters():
        if name.startswith("variance"):
            variance.append(parameter)
        elif name.endswith("embeddings"):
            tables.append(parameter)
        else:
            rest.append(parameter)
    groups = [{"params": rest, "lr": config.lr, "base_lr": config.lr}]
    if tables:
        groups.append({"params": tables, "lr": config.hash_lr, "base_lr": config.hash_lr})
    groups.append({"params": variance, "lr": config.variance_lr, "base_lr": config.variance_lr})
    return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)


def _uniform_points(model: DVRModel, n: int, generator: torch.Generator) -> torch.Tensor:
    """n uniform unit-cube points [n,3] inside the scene box."""
    box = ((model.aabb - model.centre.repeat(2)) * model.scale).cpu()
    u = torch.rand(n, 3, generator=generator)
    return (box[:3] + u * (box[3:] - box[:3])).to(model.aabb.device)


def _eikonal(model: DVRModel, points: torch.Tensor) -> torch.Tensor:
    """eikonal_loss of the SDF's gradient (kept in the graph) at unit-cube points [N,3]."""
    field = model.field
    if field.gradient_mode == "finite_difference":
        return eikonal_loss(finite_difference_gradient(field, points.detach(), field.fd_eps))
    return eikonal_loss(gradient(field, points))


def _surface_losses(model, out, target, mask, depth, config, progress, generator):
    """The DVR losses of one batch (see the module docstring) -> {name: scalar tensor}."""
    field = model.field
    n_rays = target.shape[0]
    hit, index = out["hit"], out["hit_index"]
    losses = {}
    agree = (hit & mask)[index]  # among hit rays
    rgb_error = (out["rgb"][index] - target[index]).abs().sum(dim=-1)
    losses["rgb"] = (rgb_error * agree).sum() / n_rays
    o, d, near, far = out["unit_origins"], out["unit_directions"], out["near"], out["far"]
    if config.mask_loss_weight > 0:
        others = torch.nonzero(~(hit & mask) & (far > near))[:, 0]
        if config.mask_point == "random":
            u = torch.rand(len(others), generator=generator).to(o)
            t = near[others] + u * (far[others] - near[others])
        else:
            t = out["t_min"][others]
        level = field.level(o[others] + t[:, None] * d[others])
        alpha = config.mask_alpha(progress) if field.kind == "sdf" else 1.0
        bce = F.binary_cross_entropy_with_logits(
            -alpha * level, mask[others].to(level.dtype), reduction="sum"
        )
        losses["mask"] = bce / alpha / n_rays
    if depth is not None:
        known = (depth[index] > 0) & mask[index]
        z = ((out["points"] - o[index]) * d[index]).sum(-1) / model.scale * out["z_factor"][index]
        losses["depth"] = ((z - depth[index]).abs() * known).sum() / known.sum().clamp(min=1)
    if field.kind == "sdf" and config.eikonal_weight > 0:
        n_uniform = config.eikonal_points if config.eikonal_points is not None else n_rays // 2
        points = torch.cat([_uniform_points(model, n_uniform, generator), out["points"].detach()])
        losses["eikonal"] = _eikonal(model, points)
    return losses


def _volume_losses(model, out, target, mask, depth, config, generator):
    """The NeuS losses of one batch -> {name: scalar tensor}."""
    n_rays = target.shape[0]
    losses = {"rgb": (out["rgb"] - target).abs().mean()}
    if mask is not None:
        opacity = out["opacity"].clamp(1e-3, 1.0 - 1e-3)
        losses["mask"] = F.binary_cross_entropy(opacity, mask.to(opacity.dtype))
    if depth is not None:
        known = (depth > 0) & (out["opacity"].detach() > 0.5)
        z = out["depth"] / out["opacity"].clamp(min=1e-6) * out["z_factor"]
        losses["depth"] = ((z - depth).abs() * known).sum() / known.sum().clamp(min=1)
    if config.eikonal_weight > 0:
        n_uniform = config.eikonal_points if config.eikonal_points is not None else n_rays // 2
        samples = out["points"].detach()
        if len(samples):
            pick = torch.randint(len(samples), (min(n_rays, len(samples)),), generator=generator)
            samples = samples[pick.to(samples.device)]
        points = torch.cat([_uniform_points(model, n_uniform, generator), samples])
        losses["eikonal"] = _eikonal(model, points)
    return losses


def _train_step(model, optimizer, data, masks, depths, config, progress, generator):
    """One batch of random pixels: render, losses, backward, Adam -> scalars to log."""
    origins, directions, image, pixels = random_rays(
        data.Ks, data.c2ws, data.width, data.height, config.batch_rays, generator=generator
    )
    target = data.images[image, pixels[:, 1], pixels[:, 0]]
    mask = masks[image, pixels[:, 1], pixels[:, 0]] if masks is not None else None
    depth = depths[image, pixels[:, 1], pixels[:, 0]] if depths is not None else None
    background = data.background_rgb.to(target)
    out = model(origins, directions, background, train=True, generator=generator)
    if depth is not None:
        out["z_factor"] = (directions * data.c2ws[image, :3, 2]).sum(-1)
    if config.renderer == "surface":
        if mask is None:  # mask_weight = 0: the RGB loss on every hit, as if in the mask
            mask = out["hit"]
        losses = _surface_losses(model, out, target, mask, depth, config, progress, generator)
    else:
        losses = _volume_losses(model, out, target, mask, depth, config, generator)
    weights = {
        "rgb": config.rgb_weight,
        "mask": config.mask_loss_weight,
        "eikonal": config.eikonal_weight,
        "depth": config.depth_weight,
    }
    loss = sum(weights[name] * value for name, value in losses.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scalars = {name: float(value.detach()) for name, value in losses.items()}
    scalars["loss"] = float(loss.detach())
    if config.renderer == "surface":
        scalars["hits"] = float(out["hit"].float().mean())
    else:
        scalars["s"] = float(model.variance().detach())
    return scalars


def _payload(model: DVRModel, optimizer, generator) -> dict:
    return {
        "spec": dataclasses.asdict(model.spec),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state() if generator is not None else None,
    }


def _model_from_payload(payload: dict, path) -> DVRModel:
    missing = sorted({"spec", "model"} - payload.keys())
    if missing:
        raise ValueError(f"{path}: DVR checkpoint lacks {', '.join(missing)}")
    try:
        model = DVRModel(DVRSpec(**payload["spec"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: its model spec is not valid ({error})") from error
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: weights do not fit its model spec ({error})") from error
    return model


def train_dvr(
    views: PosedViews,
    config: DVRConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
    meta: dict | None = None,
    source=None,
) -> DVRModel:
    """Trains a DVR (renderer="surface") or NeuS (renderer="volume") model on posed views
    (masks from their alpha); with out_dir, checkpoints to out_dir/checkpoint.pt and resumes
    from it unless `fresh`. `source` (the scene folder) names the data in errors; `meta` is
    stored with checkpoints (a resumed run with other meta is refused). Returns the model
    in eval mode with .train_stats."""
    config = config if config is not None else DVRConfig()
    if not isinstance(config, DVRConfig):
        raise ValueError(f"config must be a DVRConfig, got {type(config).__name__}")
    masks, depths = _check_views(views, config, source)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=meta,
        desc=f"training {'DVR' if config.renderer == 'surface' else 'NeuS'}",
        progress=progress,
        fresh=fresh,
        kind="DVR",
    )
    payload = run.resume()
    if payload is not None:
        model = _model_from_payload(payload, run.checkpoint).to(device)
        for name in ("field", "kind", "renderer"):
            if getattr(model.spec, name) != getattr(config, name):
                raise ValueError(
                    f"{run.checkpoint}: holds a model with {name}="
                    f"{getattr(model.spec, name)!r}, but config.{name} is "
                    f"{getattr(config, name)!r}: use another output folder, or fresh=True"
                )
        optimizer = _optimizer(model, config)
        optimizer.load_state_dict(payload["optimizer"])
        if payload.get("generator") is not None:
            generator.set_state(payload["generator"])
    else:
        model = DVRModel(config.model_spec(views)).to(device)
        optimizer = _optimizer(model, config)
    data = views.to(device)
    masks = masks.to(device) if masks is not None else None
    depths = depths.to(device) if depths is not None else None
    model.train()
    while run.running():
        factor = config.lr_final_factor**run.progress
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        scalars = _train_step(
            model, optimizer, data, masks, depths, config, run.progress, generator
        )
        run.advance(**scalars)
        if run.checkpoint_due():
            run.save(_payload(model, optimizer, generator))
    model.train_stats = run.finish(_payload(model, optimizer, generator))
    return model.eval()


def load_dvr(path: str | Path, device=None) -> tuple[DVRModel, dict]:
    """Reads a DVR checkpoint (tensors and plain containers only, weights_only) -> (model
    in eval mode on `device`, the rest of the payload: step, config, meta, ...)."""
    path = Path(path)
    payload = read_checkpoint(path, FORMAT, VERSION, "DVR")
    model = _model_from_payload(payload, path)
    payload.setdefault("meta", {})
    return model.to(resolve_device(device)).eval(), payload


# ----------------------------------------------------------------------------- evaluation


def mask_iou(opacity: torch.Tensor, alpha: torch.Tensor) -> float:
    """IoU of the rendered mask (opacity > 0.5) and the true one (alpha > 0.5), [H,W] each
    (1.0 when both are empty)."""
    predicted, true = opacity > 0.5, alpha.to(opacity.device) > 0.5
    union = int((predicted | true).sum())
    return 1.0 if union == 0 else int((predicted & true).sum()) / union


@torch.no_grad()
def evaluate_dvr(
    model: DVRModel,
    views: PosedViews,
    out_dir: str | Path | None = None,
    renderer: str | None = None,
    progress: bool = True,
) -> dict:
    """Scores held-out views: PSNR and SSIM (mp3d.rendering.evaluate) and, where the views
    have alpha, mask IoU; returns {"psnr", "ssim", "mask_iou", "views": [...]} and with
    out_dir writes NAME_rgb.png, NAME_depth.png, NAME_normal.png and metrics.json there."""
    background = views.background_rgb
    out = Path(out_dir) if out_dir is not None else None
    opacities = []

    def render(camera: Camera) -> Rendering:
        images = model.render_images(camera, background, renderer)
        if out is not None:
            name = image_stem(views.names[len(opacities)])
            save_image(
                normal_image(images["normals"], images["opacity"]), out / f"{name}_normal.png"
            )
        opacities.append(images["opacity"].cpu())
        return Rendering(images["rgb"], images["depth"], images["opacity"])

    metrics = evaluate(render, views, out, progress=progress)
    alphas = getattr(views, "alphas", None)
    if isinstance(alphas, torch.Tensor):
        for row, opacity, alpha in zip(metrics["views"], opacities, alphas):
            row["mask_iou"] = mask_iou(opacity, alpha)
        metrics["mask_iou"] = float(np.mean([row["mask_iou"] for row in metrics["views"]]))
    else:
        metrics["mask_iou"] = float("nan")
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------- jobs


def fit_dvr_scene(
    data_dir: str | Path,
    out_dir: str | Path,
    config: DVRConfig | None = None,
    downscale: int = 1,
    background="white",
    holdout: int = DEFAULT_HOLDOUT,
    mesh: bool = True,
    mesh_upsampling_steps: int = 3,
    turntable_frames: int = 0,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> dict:
    """Trains on a Blender (or masked) scene folder, evaluates the held-out views (the test
    split, or every `holdout`-th view), extracts the mesh. Writes out_dir/checkpoint.pt,
    out_dir/test/ (images, normal maps, metrics.json), out_dir/mesh.ply, out_dir/metrics.json
    (and out_dir/turntable.gif with turntable_frames > 0). Returns a summary dict."""
    from mp3d.mesh.marching_cubes import save_mesh

    config = config if config is not None else DVRConfig()
    out_dir, data_dir = check_out_dir(out_dir), Path(data_dir)
    check_int("turntable_frames", turntable_frames, 0)
    device = resolve_device(device)
    train_views, eval_views, kind = load_scene(data_dir, downscale, background, holdout, progress)
    meta = scene_metadata(data_dir, kind, train_views, downscale, holdout)
    model = train_dvr(
        train_views, config, out_dir, device, progress, fresh, meta=meta, source=data_dir
    )
    summary = {
        "format": kind,
        "renderer": config.renderer,
        "field": config.field,
        "train_views": len(train_views),
        "eval_views": len(eval_views),
        **model.train_stats,
        "checkpoint": out_dir / CHECKPOINT_NAME,
    }
    metrics = evaluate_dvr(model, eval_views, out_dir / "test", progress=progress)
    summary.update(psnr=metrics["psnr"], ssim=metrics["ssim"], mask_iou=metrics["mask_iou"])
    summary["images"] = out_dir / "test"
    if mesh:
        surface = dvr_mesh(model, upsampling_steps=mesh_upsampling_steps)
        summary.update(vertices=len(surface.vertices), faces=len(surface.faces))
        if len(surface.faces):
            summary["mesh"] = save_mesh(surface, out_dir / "mesh.ply")
    if turntable_frames > 0:
        cameras = orbit_of_views(train_views.c2ws).cameras(
            train_views.Ks[0], train_views.width, train_views.height, turntable_frames
        )
        summary["turntable"] = render_turntable(
            model,
            cameras,
            out_dir / "turntable.gif",
            background=train_views.background_rgb,
            progress=progress,
        )
    write_json(out_dir / "metrics.json", {**summary, "views": metrics["views"]})
    summary["metrics"] = out_dir / "metrics.json"
    return {**summary, "model": model}


def mesh_dvr_checkpoint(
    checkpoint: str | Path,
    out_path: str | Path,
    initial: int = 32,
    upsampling_steps: int = 3,
    device=None,
) -> dict:
    """The MISE mesh of a DVR checkpoint's surface in scene coordinates, saved as PLY/OBJ
    by suffix -> {"mesh", "vertices", "faces"}; ValueError if the field has no surface."""
    from mp3d.mesh.marching_cubes import save_mesh

    model, _ = load_dvr(checkpoint, device)
    mesh = dvr_mesh(model, initial, upsampling_steps)
    if len(mesh.faces) == 0:
        raise ValueError(f"{checkpoint}: the model's field has no surface inside its box")
    return {
        "mesh": save_mesh(mesh, out_path),
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
    }


def render_dvr_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    n_frames: int = 36,
    renderer: str | None = None,
    device=None,
    progress: bool = True,
) -> dict:
    """Re-renders a DVR checkpoint: turntables of colour (turntable.gif) and normals
    (normals.gif) around its training cameras' orbit, and, when the training data is still
    where it was, the held-out views with metrics (out_dir/test)."""
    check_int("frames", n_frames, 1)
    if renderer is not None:
        check_choice("renderer", renderer, RENDERERS)
    out_dir = check_out_dir(out_dir)
    model, payload = load_dvr(checkpoint, device)
    meta = payload["meta"]
    orbit, K, (width, height) = metadata_cameras(meta, checkpoint)
    background = meta.get("background", [1.0, 1.0, 1.0])
    eval_views = metadata_eval_views(meta, progress)
    cameras = orbit.cameras(K, width, height, n_frames)
    summary = {
        "turntable": render_turntable(
            lambda camera: model.render(camera, background, renderer),
            cameras,
            out_dir / "turntable.gif",
            progress=progress,
        )
    }

    def normals(camera: Camera) -> Rendering:
        images = model.render_images(camera, background, renderer)
        return Rendering(
            normal_image(images["normals"], images["opacity"]), images["depth"], images["opacity"]
        )

    summary["normals"] = render_turntable(
        normals, cameras, out_dir / "normals.gif", progress=progress
    )
    if eval_views is not None:
        metrics = evaluate_dvr(model, eval_views, out_dir / "test", renderer, progress)
        summary.update(
            psnr=metrics["psnr"],
            ssim=metrics["ssim"],
            mask_iou=metrics["mask_iou"],
            images=out_dir / "test",
        )
    return summary
