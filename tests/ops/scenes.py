"""Test scenes shared by the op tests (and usable by any test): packed ray samples for
volume rendering, and small Gaussian scenes with a camera. Tests import these from here
instead of from each other."""

from __future__ import annotations

import torch

C0 = 0.28209479177387814
IDENTITY_QUAT = [1.0, 0.0, 0.0, 0.0]


def packed_samples(
    n_rays: int = 40,
    max_samples: int = 24,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    seed: int = 0,
    sigma_scale: float = 3.0,
) -> dict:
    """Random packed samples: some rays empty, intervals contiguous and increasing in t."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_samples + 1, (n_rays,), generator=g)
    if n_rays > 1:
        counts[0] = 0  # always include an empty ray
    ray_indices = torch.repeat_interleave(torch.arange(n_rays), counts)
    n = int(counts.sum())
    lengths = torch.rand(n, generator=g, dtype=torch.float64) * 0.2 + 0.01
    gaps = torch.rand(n, generator=g, dtype=torch.float64) * 0.05
    t_starts = torch.empty(n, dtype=torch.float64)
    t_ends = torch.empty(n, dtype=torch.float64)
    start = 0
    for count in counts.tolist():
        t = 2.0
        for i in range(start, start + count):
            t += float(gaps[i])
            t_starts[i] = t
            t += float(lengths[i])
            t_ends[i] = t
        start += count
    return {
        "sigmas": (torch.rand(n, generator=g, dtype=torch.float64) * sigma_scale)
        .to(dtype)
        .to(device),
        "rgbs": torch.rand(n, 3, generator=g, dtype=torch.float64).to(dtype).to(device),
        "t_starts": t_starts.to(dtype).to(device),
        "t_ends": t_ends.to(dtype).to(device),
        "ray_indices": ray_indices.to(device),
        "n_rays": n_rays,
    }


def camera(fx=20.0, fy=24.0, cx=8.0, cy=6.0, dtype=torch.float64):
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    return torch.eye(4, dtype=dtype), K


def smooth_scene(n=3, sh_degree=None, dtype=torch.float64, seed=0) -> dict:
    """Large, half-transparent Gaussians in front of an 8x6 camera: every alpha stays well
    inside (1/255, 0.99) and the transmittance far above 1e-4, so everything is smooth."""
    g = torch.Generator().manual_seed(seed)
    viewmat, K = camera(fx=10.0, fy=10.0, cx=4.0, cy=3.0, dtype=dtype)
    means = torch.tensor([[-0.2, 0.1, 3.0], [0.3, -0.1, 3.7], [0.0, 0.2, 4.5]], dtype=dtype)[:n]
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.tensor([[0.9, 1.1, 0.8], [1.2, 0.7, 1.0], [1.0, 1.3, 0.9]], dtype=dtype)[:n]
    opacities = torch.tensor([0.5, 0.4, 0.6], dtype=dtype)[:n]
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype) * 0.6 + 0.2
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.1
    return {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmat": viewmat,
        "K": K,
        "width": 8,
        "height": 6,
    }
