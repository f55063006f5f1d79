"""Real spherical harmonics of unit directions, up to degree 4.

The basis uses the constants of the 3DGS and Instant-NGP code (so coefficients move between
them and mp3d): Y_0 = 0.2821, then bands 1..4 in the order those codes use. Degree d has
(d+1)^2 functions. Used by the Gaussian colour op (mp3d.ops.gaussians) and by
mp3d.encodings.SphericalHarmonics; it lives with the ops so mp3d.ops imports nothing outside
itself.
"""

from __future__ import annotations

import torch

__all__ = ["MAX_DEGREE", "n_coefficients", "spherical_harmonics"]

MAX_DEGREE = 4


def n_coefficients(degree: int) -> int:
    """(degree+1)^2: the number of basis functions up to `degree`."""
    return (degree + 1) ** 2


def spherical_harmonics(d: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis [..., (degree+1)^2] of unit vectors d [...,3], degree in 0..4.

    The directions are used as given (normalise them first); the basis is a polynomial in
    them, so it is differentiable to any order.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be an int in 0..{MAX_DEGREE}, got {degree!r}")
    if not isinstance(d, torch.Tensor) or d.dim() < 1 or d.shape[-1] != 3:
        shape = list(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
        raise ValueError(f"d must be a tensor of shape [..., 3], got {shape}")
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.31539156525252005 * (2 * zz - xx - yy),
            -1.0925484305920792 * xz,
            0.5462742152960396 * (xx - yy),
        ]
    if degree >= 3:
        out += [
            -0.5900435899266435 * y * (3 * xx - yy),
            2.890611442640554 * xy * z,
            -0.4570457994644658 * y * (4 * zz - xx - yy),
            0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
            -0.4570457994644658 * x * (4 * zz - xx - yy),
            1.445305721320277 * z * (xx - yy),
            -0.5900435899266435 * x * (xx - 3 * yy),
        ]
    if degree >= 4:
        out += [
            2.5033429417967046 * xy * (xx - yy),
            -1.7701307697799304 * yz * (3 * xx - yy),
            0.9461746957575601 * xy * (7 * zz - 1),
            -0.6690465435572892 * yz * (7 * zz - 3),
            0.10578554691520431 * (zz * (35 * zz - 30) + 3),
            -0.6690465435572892 * xz * (7 * zz - 3),
            0.47308734787878004 * (xx - yy) * (7 * zz - 1),
            -1.7701307697799304 * xz * (xx - 3 * yy),
            0.6258357354491761 * (xx * (xx - 3 * yy) - yy * (3 * xx - yy)),
        ]
    return torch.stack(out, dim=-1)
