"""MISE: the same surface as the dense grid at the same final resolution, from far fewer
field evaluations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mp3d.mesh import NoSurfaceError, extract_mesh
from mp3d.mesh.mise import extract_mesh_mise, mise_grid

AABB = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def two_spheres(points: torch.Tensor) -> torch.Tensor:
    """Signed distance [N] of two overlapping spheres (negative inside)."""
    first = (points - torch.tensor([-0.2, 0.0, 0.1])).norm(dim=-1) - 0.45
    second = (points - torch.tensor([0.35, 0.1, -0.1])).norm(dim=-1) - 0.3
    return torch.minimum(first, second)


def _sorted(mesh) -> np.ndarray:
    vertices = np.round(np.asarray(mesh.vertices), 5)  # ties sort alike despite float noise
    return vertices[np.lexsort(vertices.T)]


@pytest.mark.parametrize("initial, steps", [(8, 3), (16, 2)])
def test_mise_surface_equals_the_dense_grid_surface(initial, steps):
    resolution = initial * 2**steps + 1
    dense = extract_mesh(
        two_spheres, AABB, resolution, threshold=0.0, inside="below", progress=False
    )
    mise = extract_mesh_mise(two_spheres, AABB, 0.0, initial, steps, inside="below")
    assert mise.metadata["resolution"] == resolution
    assert len(mise.faces) == len(dense.faces) and len(mise.vertices) == len(dense.vertices)
    np.testing.assert_allclose(_sorted(mise), _sorted(dense), atol=1e-4)  # spacing: 0.03
    # far fewer evaluations than the dense grid's resolution^3
    assert mise.metadata["evaluations"] < 0.35 * resolution**3


def test_untouched_regions_keep_their_side_of_the_threshold():
    result = mise_grid(two_spheres, AABB, 0.0, initial=8, upsampling_steps=2)
    axis = np.linspace(-1, 1, result.resolution)
    grid = torch.tensor(
        np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1), dtype=torch.float32
    )
    truth = two_spheres(grid.reshape(-1, 3)).reshape(result.values.shape).numpy()
    np.testing.assert_array_equal(result.values > 0, truth > 0)


def test_mise_errors():
    with pytest.raises(NoSurfaceError, match="no surface at threshold 5"):
        extract_mesh_mise(two_spheres, AABB, 5.0, initial=4, upsampling_steps=1, inside="below")
    with pytest.raises(ValueError, match="initial must be an int >= 1"):
        mise_grid(two_spheres, AABB, 0.0, initial=0)
    with pytest.raises(ValueError, match="must be at most 2049"):
        mise_grid(two_spheres, AABB, 0.0, initial=64, upsampling_steps=6)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        mise_grid(two_spheres, AABB, float("nan"))
