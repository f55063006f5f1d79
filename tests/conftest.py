"""Shared fixtures: real-data location, GPU skipping and packed-sample generators."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LEGO = SHARED_DATA / "lego"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def lego_dir() -> Path:
    if not (LEGO / "transforms_train.json").is_file():
        pytest.skip(f"real data not found at {LEGO} (see shared/data/README.md)")
    return LEGO


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
        "sigmas": (torch.rand(n, generator=g, dtype=torch.float64) * sigma_scale).to(dtype).to(device),
        "rgbs": torch.rand(n, 3, generator=g, dtype=torch.float64).to(dtype).to(device),
        "t_starts": t_starts.to(dtype).to(device),
        "t_ends": t_ends.to(dtype).to(device),
        "ray_indices": ray_indices.to(device),
        "n_rays": n_rays,
    }


@pytest.fixture(scope="session")
def tiny_demo_scene(tmp_path_factory) -> Path:
    """The built-in demo scene at 24x24 with a few views per split."""
    from mp3d.data.demo import write_demo_scene

    return write_demo_scene(tmp_path_factory.mktemp("demo") / "scene", n_train=4, n_val=2,
                            n_test=2, resolution=24, progress=False)
