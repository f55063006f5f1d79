"""A scene of 3D Gaussians as trainable parameters, stored before activation as in 3DGS.

Parameters (N Gaussians, K = (max_sh_degree + 1)^2 SH coefficients):
means [N,3], quats [N,4] (w first, not normalised), log_scales [N,3], opacity_logits [N],
sh_dc [N,1,3] (band 0) and sh_rest [N,K-1,3] (bands >= 1), kept apart because 3DGS trains
them with different learning rates. Rendering uses the SH bands up to `active_sh_degree`,
which training raises one band at a time with `raise_sh_degree()`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from mp3d._backend import Impl
from mp3d.cameras import Camera
from mp3d.ops._validation import FLOAT_DTYPES, check_finite, check_length, check_tensor
from mp3d.ops.gaussians import MAX_SH_DEGREE, rasterize
from mp3d.rendering import Rendering
from mp3d.splat import ply

__all__ = ["SH_C0", "GaussianModel", "inverse_sigmoid", "nearest_neighbour_scales"]

SH_C0 = 0.28209479177387814  # the constant band-0 SH basis function, 1 / (2 sqrt(pi))
INITIAL_OPACITY = 0.1
MIN_SQUARED_DISTANCE = 1e-7  # keeps log-scales finite for duplicated points
NEIGHBOURS = 3


def inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logits log(x / (1 - x)) of probabilities x in (0, 1), any shape."""
    return torch.log(x / (1.0 - x))


def nearest_neighbour_scales(points: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Per-point scale [P] = root mean square distance to the 3 nearest other points [P,3].

    This is what the original 3DGS initialisation computes (the mean of the squared
    distances, then the square root). A KD-tree (scipy's cKDTree) answers the queries,
    `chunk` points at a time: O(P log P) time, O(P + chunk) memory.
    """
    check_tensor("points", points, shape=(None, 3), dtypes=FLOAT_DTYPES)
    n = points.shape[0]
    if n < 2:
        raise ValueError(f"points must hold at least 2 points to find neighbours, got {n}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    check_finite("points", points)
    from scipy.spatial import cKDTree

    k = min(NEIGHBOURS, n - 1)
    array = points.detach().cpu().double().numpy()
    tree = cKDTree(array)
    squared = np.empty(n)
    for start in range(0, n, chunk):
        # k + 1 neighbours: the nearest is the point itself (or a duplicate of it; both lie at
        # distance 0, so dropping the first column drops one zero either way).
        distances, _ = tree.query(array[start : start + chunk], k=k + 1, workers=-1)
        squared[start : start + chunk] = (distances[:, 1:] ** 2).mean(axis=1)
    squared = torch.from_numpy(squared).to(dtype=points.dtype, device=points.device)
    return torch.sqrt(torch.clamp(squared, min=MIN_SQUARED_DISTANCE))


def _sh_degree_of_count(n_coeffs: int) -> int:
    """SH degree d of K = (d+1)^2 coefficients; ValueError otherwise."""
    degree = math.isqrt(n_coeffs) - 1
    if n_coeffs == 0 or (degree + 1) ** 2 != n_coeffs or degree > MAX_SH_DEGREE:
        raise ValueError(
            f"sh must have K = (degree+1)^2 coefficients with degree <= "
            f"{MAX_SH_DEGREE}, got K={n_coeffs}"
        )
    return degree


def _check_sh_degree(sh_degree: object) -> int:
    if (
        isinstance(sh_degree, bool)
        or not isinstance(sh_degree, int)
        or not 0 <= sh_degree <= MAX_SH_DEGREE
    ):
        raise ValueError(f"sh_degree must be an int in 0..{MAX_SH_DEGREE}, got {sh_degree!r}")
    return sh_degree


class GaussianModel(nn.Module):
    """N Gaussians with SH colour; parameters as listed in the module docstring."""

    PARAMETER_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")

    def __init__(
        self,
        means: torch.Tensor,
        quats: torch.Tensor,
        log_scales: torch.Tensor,
        opacity_logits: torch.Tensor,
        sh: torch.Tensor,
        active_sh_degree: int = 0,
    ) -> None:
        """Wraps raw values (means [N,3], quats [N,4], log_scales [N,3], opacity_logits [N],
        sh [N,K,3]; K fixes max_sh_degree) as parameters; rendering starts at
        `active_sh_degree`."""
        super().__init__()
        check_tensor("means", means, shape=(None, 3), dtypes=FLOAT_DTYPES)
        n = means.shape[0]
        for name, value, shape in (
            ("quats", quats, (None, 4)),
            ("log_scales", log_scales, (None, 3)),
            ("opacity_logits", opacity_logits, (None,)),
            ("sh", sh, (None, None, 3)),
        ):
            check_tensor(name, value, shape=shape, dtypes=(means.dtype,))
            check_length(name, value, n, "means")
            check_finite(name, value)
        check_finite("means", means)
        self.max_sh_degree = _sh_degree_of_count(sh.shape[1])
        if _check_sh_degree(active_sh_degree) > self.max_sh_degree:
            raise ValueError(
                f"active_sh_degree must be <= max_sh_degree "
                f"{self.max_sh_degree}, got {active_sh_degree}"
            )
        self.active_sh_degree = active_sh_degree
        self.means = nn.Parameter(means.detach().clone())
        self.quats = nn.Parameter(quats.detach().clone())
        self.log_scales = nn.Parameter(log_scales.detach().clone())
        self.opacity_logits = nn.Parameter(opacity_logits.detach().clone())
        self.sh_dc = nn.Parameter(sh[:, :1].detach().clone())
        self.sh_rest = nn.Parameter(sh[:, 1:].detach().clone())

    # ------------------------------------------------------------------------- constructors

    @classmethod
    def from_points(
        cls, points: torch.Tensor, colours: torch.Tensor, sh_degree: int = MAX_SH_DEGREE
    ) -> GaussianModel:
        """Isotropic Gaussians at points [P,3] with RGB colours [P,3] in [0,1], sized by the
        distance to their 3 nearest neighbours, opacity 0.1, higher SH bands zero."""
        check_tensor("points", points, shape=(None, 3), dtypes=FLOAT_DTYPES)
        check_tensor("colours", colours, shape=(None, 3), dtypes=(points.dtype,))
        check_length("colours", colours, points.shape[0], "points")
        check_finite("colours", colours, minimum=0.0)
        n = points.shape[0]
        sh = torch.zeros(
            n, (_check_sh_degree(sh_degree) + 1) ** 2, 3, dtype=points.dtype, device=points.device
        )
        sh[:, 0] = (colours - 0.5) / SH_C0
        quats = torch.zeros(n, 4, dtype=points.dtype, device=points.device)
        quats[:, 0] = 1.0
        log_scales = torch.log(nearest_neighbour_scales(points))[:, None].expand(n, 3)
        opacity = torch.full((n,), INITIAL_OPACITY, dtype=points.dtype, device=points.device)
        return cls(points, quats, log_scales, inverse_sigmoid(opacity), sh)

    @classmethod
    def random_in_box(
        cls,
        n: int,
        aabb: torch.Tensor,
        generator: torch.Generator | None = None,
        sh_degree: int = MAX_SH_DEGREE,
    ) -> GaussianModel:
        """from_points of n points drawn uniformly in aabb [2,3] (min row, max row) with
        uniform random colours: the start for scenes without a point cloud (Blender)."""
        check_tensor("aabb", aabb, shape=(2, 3), dtypes=FLOAT_DTYPES)
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an int >= 2, got {n!r}")
        if not bool((aabb[1] > aabb[0]).all()):
            raise ValueError(f"aabb must have max > min on every axis, got {aabb.tolist()}")
        unit = torch.rand(n, 3, generator=generator, dtype=aabb.dtype)
        colours = torch.rand(n, 3, generator=generator, dtype=aabb.dtype)
        points = aabb[0].cpu() + unit * (aabb[1] - aabb[0]).cpu()
        return cls.from_points(points.to(aabb.device), colours.to(aabb.device), sh_degree)

    @classmethod
    def load_ply(cls, path: str | Path) -> GaussianModel:
        """The Gaussians of a 3DGS PLY file, rendering with every SH band the file holds."""
        values = ply.load_ply(path)
        degree = _sh_degree_of_count(values["sh"].shape[1])
        return cls(
            values["means"],
            values["quats"],
            values["log_scales"],
            values["opacity_logits"],
            values["sh"],
            active_sh_degree=degree,
        )

    def save_ply(self, path: str | Path) -> Path:
        """Writes the Gaussians as a 3DGS PLY file (every SH band, raw values); returns it."""
        return ply.save_ply(
            path, self.means, self.quats, self.log_scales, self.opacity_logits, self.sh
        )

    # ------------------------------------------------------------------------- activated values

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def scales(self) -> torch.Tensor:
        """Positive per-axis scales [N,3] (exp of log_scales)."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        """Opacities [N] in (0, 1) (sigmoid of the logits)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def unit_quats(self) -> torch.Tensor:
        """Unit quaternions [N,4], w first."""
        return nn.functional.normalize(self.quats, dim=-1)

    @property
    def sh(self) -> torch.Tensor:
        """All SH coefficients [N,K,3], band 0 first."""
        return torch.cat([self.sh_dc, self.sh_rest], dim=1)

    def raise_sh_degree(self) -> int:
        """Renders with one more SH band, up to max_sh_degree; returns the active degree."""
        self.active_sh_degree = min(self.active_sh_degree + 1, self.max_sh_degree)
        return self.active_sh_degree

    # ------------------------------------------------------------------------- rendering

    def rasterize(
        self,
        viewmat: torch.Tensor,
        K: torch.Tensor,
        width: int,
        height: int,
        background: torch.Tensor | float | None = None,
        impl: Impl = "auto",
    ) -> tuple[Rendering, dict[str, torch.Tensor]]:
        """The image seen from a world-to-camera viewmat [4,4] with pixel intrinsics K [3,3]
        (depth: expected camera z, not divided by opacity), and the rasterizer's info (the 2D
        means, radii and visibility that densification needs; see
        mp3d.ops.gaussians.rasterize)."""
        with record_function("splat.render"):
            rgb, opacity, depth, info = rasterize(
                self.means,
                self.unit_quats,
                self.scales,
                self.opacities,
                self.sh,
                viewmat,
                K,
                width,
                height,
                sh_degree=self.active_sh_degree,
                background=background,
                impl=impl,
            )
        return Rendering(rgb=rgb, depth=depth, opacity=opacity), info

    def render(
        self, camera: Camera, background: torch.Tensor | float | None = None, impl: Impl = "auto"
    ) -> Rendering:
        """The image `camera` sees, composited on `background` (RGB [3] or a grey level;
        none: black): Rendering(rgb [H,W,3], depth [H,W], opacity [H,W])."""
        camera = camera.to(self.means.device)
        if isinstance(background, torch.Tensor):
            background = background.to(self.means)
        return self.rasterize(
            camera.viewmat.to(self.means),
            camera.K.to(self.means),
            camera.width,
            camera.height,
            background,
            impl,
        )[0]
