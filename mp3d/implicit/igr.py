"""Implicit geometric regularisation (IGR, Gropp et al. 2020): a signed-distance field fitted
to one point cloud, with the eikonal term keeping its gradient of unit length.

Loss, per step, on a batch of the cloud's points x_i (normals n_i optional) and points y
drawn near the cloud (each point plus Gaussian noise of its distance to its k-th nearest
neighbour) and uniformly in the box:

    mean |f(x_i)| + normal_weight * mean ||grad f(x_i) - n_i||
                  + eikonal_weight * mean (||grad f(y)|| - 1)^2

The field is an MLP with softplus activations (beta = 100) and a skip connection, started
as the signed distance of a sphere (geometric initialisation), with an optional positional
encoding of its input. Fitting works in the unit cube of the cloud's bounding box
(mp3d.implicit.sampling.Normalisation) and the mesh comes back in the cloud's coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from mp3d.encodings import HashEncoding, PositionalEncoding
from mp3d.implicit.sampling import PADDING, Normalisation
from mp3d.training import TrainerConfig, TrainingRun, check_float, check_int, resolve_device

__all__ = [
    "IGRConfig",
    "IGRField",
    "eikonal_loss",
    "finite_difference_gradient",
    "fit_igr",
    "gradient",
]

FORMAT, VERSION = "mp3d.igr", 1


class IGRField(nn.Module):
    """f: points [N,3] (unit cube) -> signed distance [N]: `layers` softplus layers of
    `hidden` units, the input joined again at layer `skip`, geometrically initialised as the
    signed distance of a sphere of `radius`."""

    def __init__(
        self,
        hidden: int = 256,
        layers: int = 6,
        skip: int = 3,
        radius: float = 0.3,
        n_frequencies: int = 0,
        beta: float = 100.0,
    ) -> None:
        super().__init__()
        self.encoding = PositionalEncoding(3, n_frequencies)
        width_in = self.encoding.out_dim
        self.skip = skip
        self.linears = nn.ModuleList()
        for i in range(layers):
            inputs = width_in if i == 0 else hidden
            outputs = hidden - width_in if i + 1 == skip else hidden
            self.linears.append(nn.Linear(inputs, outputs))  # at `skip`: x and the input
        self.output = nn.Linear(hidden, 1)
        self.activation = nn.Softplus(beta=beta)
        self._geometric_init(radius, width_in)

    @torch.no_grad()
    def _geometric_init(self, radius: float, width_in: int) -> None:
        for i, linear in enumerate(self.linears):
            nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0) / math.sqrt(linear.out_features))
            nn.init.zeros_(linear.bias)
            if width_in > 3 and i == 0:  # start from the raw coordinates only
                linear.weight[:, 3:] = 0.0
            if width_in > 3 and i == self.skip:
                linear.weight[:, -(width_in - 3) :] = 0.0
        hidden = self.output.in_features
        nn.init.normal_(self.output.weight, math.sqrt(math.pi) / math.sqrt(hidden), 1e-4)
        nn.init.constant_(self.output.bias, -radius)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        encoded = self.encoding(points)
        x = encoded
        for i, linear in enumerate(self.linears):
            if i == self.skip:
                x = torch.cat([x, encoded], dim=-1) / math.sqrt(2.0)
            x = self.activation(linear(x))
        return self.output(x)[..., 0]


class HashSDFField(nn.Module):
    """f: points [N,3] (unit cube) -> signed distance [N] from a multiresolution hash grid
    (mp3d.ops.hash_encoding) and a small softplus MLP, as the residual of a sphere of
    `radius`: f(p) = |p| - radius + MLP(hash(p), p), the MLP's last layer starting at zero,
    so fitting starts from the sphere as the MLP field's geometric initialisation does."""

    def __init__(
        self,
        n_levels: int = 16,
        log2_table_size: int = 19,
        finest_resolution: int = 512,
        hidden: int = 64,
        radius: float = 0.3,
        impl: str = "auto",
        beta: float = 100.0,
    ) -> None:
        super().__init__()
        self.encoding = HashEncoding(n_levels, 2, log2_table_size, 16, finest_resolution, impl)
        self.radius = radius
        self.mlp = nn.Sequential(
            nn.Linear(self.encoding.out_dim + 3, hidden),
            nn.Softplus(beta=beta),
            nn.Linear(hidden, hidden),
            nn.Softplus(beta=beta),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        half = 0.5 * (1.0 + PADDING)
        unit = ((points + half) / (2 * half)).clamp(0.0, 1.0)
        features = self.encoding(unit)
        residual = self.mlp(torch.cat([features, points], dim=-1))[..., 0]
        return points.norm(dim=-1) - self.radius + residual


def gradient(field, points: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """grad f at points [N,3] -> [N,3] by autograd (kept in the graph for the eikonal term)."""
    points = points.detach().requires_grad_(True)
    with torch.enable_grad():
        values = field(points)
        (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
    return grad


def finite_difference_gradient(field, points: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """grad f at points [N,3] -> [N,3] by central differences of step eps (no double
    backward needed, as Neuralangelo does for hash grids)."""
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
    shifted = torch.cat([points[:, None] + offsets, points[:, None] - offsets], dim=1)
    values = field(shifted.reshape(-1, 3)).reshape(-1, 2, 3)
    return (values[:, 0] - values[:, 1]) / (2 * eps)


def eikonal_loss(grad: torch.Tensor) -> torch.Tensor:
    """mean (||grad|| - 1)^2 of gradients [N,3]: zero for an exact signed distance."""
    return ((grad.norm(dim=-1) - 1.0) ** 2).mean()


@dataclass
class IGRConfig(TrainerConfig):
    """How to fit IGR to one point cloud (defaults sized for a few CPU minutes)."""

    steps: int | None = 2000
    batch: int = 4096
    lr: float = 2e-3
    lr_final_factor: float = 0.1
    eikonal_weight: float = 0.1
    normal_weight: float = 1.0
    neighbours: int = 50  # the local noise scale: distance to this nearest neighbour
    field: str = "mlp"  # "mlp" (IGRField) or "hash" (HashSDFField)
    # "autograd", "finite_difference", or auto: autograd for mlp, finite differences for hash
    # (Neuralangelo's choice, and cheaper; autograd runs through the kernel's double backward)
    gradient: str = "auto"
    fd_eps: float = 2e-3  # finite-difference step, unit-cube units (about a fine hash cell)
    hidden: int = 256
    layers: int = 6
    skip: int = 3
    n_frequencies: int = 0
    hash_levels: int = 16
    hash_log2_table_size: int = 19
    hash_finest_resolution: int = 512
    hash_impl: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 50

    def validate(self) -> None:
        super().validate()
        check_int("batch", self.batch, 1, 1 << 22)
        check_float("lr", self.lr, 0.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_float("eikonal_weight", self.eikonal_weight, 0.0)
        check_float("normal_weight", self.normal_weight, 0.0)
        check_int("neighbours", self.neighbours, 1)
        check_int("hidden", self.hidden, 8)
        check_int("layers", self.layers, 2)
        check_int("skip", self.skip, 1, self.layers - 1)
        check_int("n_frequencies", self.n_frequencies, 0, 12)
        if self.field not in ("mlp", "hash"):
            raise ValueError(f"field must be 'mlp' or 'hash', got {self.field!r}")
        if self.gradient not in ("auto", "autograd", "finite_difference"):
            raise ValueError(
                f"gradient must be 'auto', 'autograd' or 'finite_difference', got {self.gradient!r}"
            )
        check_float("fd_eps", self.fd_eps, 0.0, 0.1, exclusive_minimum=True)
        check_int("hash_levels", self.hash_levels, 1, 32)
        check_int("hash_log2_table_size", self.hash_log2_table_size, 8, 24)
        check_int("hash_finest_resolution", self.hash_finest_resolution, 16, 1 << 14)

    @property
    def gradient_mode(self) -> str:
        """How the eikonal and normal terms get grad f: autograd, or finite differences
        (auto: autograd for the MLP field, finite differences of step fd_eps for the hash
        field; autograd works for both, through the hash kernel's double backward)."""
        if self.gradient != "auto":
            return self.gradient
        return "autograd" if self.field == "mlp" else "finite_difference"

    def make_field(self) -> nn.Module:
        """The untrained field this config describes."""
        if self.field == "hash":
            return HashSDFField(
                self.hash_levels,
                self.hash_log2_table_size,
                self.hash_finest_resolution,
                impl=self.hash_impl,
            )
        return IGRField(self.hidden, self.layers, self.skip, n_frequencies=self.n_frequencies)


def _cloud(points, normals) -> tuple[np.ndarray, np.ndarray | None]:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2:
        raise ValueError(f"points must have shape [N>=2, 3], got {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError("points must be finite")
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != points.shape or not np.isfinite(normals).all():
            raise ValueError(
                f"normals must be finite with the points' shape "
                f"{list(points.shape)}, got {list(normals.shape)}"
            )
        normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return points, normals


def fit_igr(
    points,
    normals=None,
    config: IGRConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> tuple[nn.Module, Normalisation]:
    """Fits an IGR field to a point cloud [N,3] (with unit normals [N,3] if given); returns
    the field (on unit-cube points, in eval mode, with .train_stats) and the Normalisation
    from the cloud's coordinates to its unit cube. With out_dir: checkpoints and resume."""
    config = config if config is not None else IGRConfig()
    if not isinstance(config, IGRConfig):
        raise ValueError(f"config must be an IGRConfig, got {type(config).__name__}")
    points, normals = _cloud(points, normals)
    device = resolve_device(device)
    normalisation = Normalisation.of_points(points)
    unit = normalisation.to_unit(points)
    k = min(config.neighbours, len(unit) - 1)
    local_sigma = cKDTree(unit).query(unit, k + 1)[0][:, -1]

    torch.manual_seed(config.seed)
    field = config.make_field()
    meta = {
        "points": len(points),
        "normals": normals is not None,
        "centre": normalisation.centre.tolist(),
        "scale": normalisation.scale,
    }
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=meta,
        desc="fitting IGR",
        progress=progress,
        fresh=fresh,
        kind="IGR",
    )
    payload = run.resume()
    field.to(device)
    optimizer = torch.optim.Adam(field.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    if payload is not None:
        field.load_state_dict(payload["field"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
    cloud = torch.as_tensor(unit, dtype=torch.float32, device=device)
    cloud_normals = (
        None if normals is None else torch.as_tensor(normals, dtype=torch.float32, device=device)
    )
    sigma = torch.as_tensor(local_sigma, dtype=torch.float32, device=device)
    half = 0.5 * (1.0 + PADDING)

    def payload_now() -> dict:
        return {
            "field": field.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
        }

    field.train()
    while run.running():
        factor = config.lr_final_factor**run.progress
        for group in optimizer.param_groups:
            group["lr"] = config.lr * factor
        index = torch.randint(len(cloud), (min(config.batch, len(cloud)),), generator=generator)
        index = index.to(device)
        surface = cloud[index]
        noise = torch.randn(surface.shape, generator=generator).to(device)
        near = surface + noise * sigma[index, None]
        far = (torch.rand(len(index) // 8 + 1, 3, generator=generator) * 2 - 1).to(device) * half
        queries = torch.cat([surface, near, far])
        if config.gradient_mode == "autograd":
            grad_all = gradient(field, queries)
        else:
            grad_all = finite_difference_gradient(field, queries, config.fd_eps)
        values = field(surface)
        loss = values.abs().mean()
        if cloud_normals is not None and config.normal_weight > 0:
            loss = (
                loss
                + config.normal_weight
                * (grad_all[: len(surface)] - cloud_normals[index]).norm(dim=-1).mean()
            )
        eikonal = eikonal_loss(grad_all[len(surface) :])
        loss = loss + config.eikonal_weight * eikonal
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.advance(loss=float(loss.detach()), eikonal=float(eikonal.detach()))
        if run.checkpoint_due():
            run.save(payload_now())
    field.train_stats = run.finish(payload_now())
    return field.eval(), normalisation


def sdf_mesh(
    field: nn.Module,
    normalisation: Normalisation,
    initial: int = 32,
    upsampling_steps: int = 3,
    device=None,
):
    """The zero level set of a unit-cube signed-distance field by MISE, as a trimesh.Trimesh
    in the cloud's own coordinates (`normalisation` maps back)."""
    from mp3d.mesh.mise import extract_mesh_mise

    half = 0.5 * (1.0 + PADDING)
    mesh = extract_mesh_mise(
        field,
        [-half] * 3 + [half] * 3,
        0.0,
        initial,
        upsampling_steps,
        inside="below",
        device=device,
    )
    mesh.vertices = normalisation.to_world(mesh.vertices)
    return mesh
