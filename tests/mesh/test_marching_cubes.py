"""Marching cubes on analytic fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from mp3d.mesh import NoSurfaceError, extract_mesh, save_mesh

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def sphere_density(points: torch.Tensor, radius: float = 0.6) -> torch.Tensor:
    """A smooth density that crosses 50 exactly on the sphere of `radius`."""
    return 100.0 * torch.sigmoid((radius - points.norm(dim=-1)) * 40.0)


@pytest.mark.parametrize("resolution", [32, 64])
def test_sphere_radius_within_half_a_voxel(resolution):
    mesh = extract_mesh(sphere_density, BOX, resolution, threshold=50.0, progress=False)
    voxel = 2.0 / (resolution - 1)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - 0.6).max() < voxel / 2
    assert mesh.is_watertight
    assert mesh.volume > 0  # faces wound outward
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.6**3, rel=0.05)


def test_offset_sphere_in_world_coordinates():
    centre = torch.tensor([0.3, -0.2, 0.1])
    mesh = extract_mesh(
        lambda p: sphere_density(p - centre, 0.4), BOX, 48, threshold=50.0, progress=False
    )
    np.testing.assert_allclose(mesh.vertices.mean(axis=0), centre.numpy(), atol=0.02)


def test_signed_distance_with_colour(tmp_path):
    mesh = extract_mesh(
        lambda p: p.norm(dim=-1) - 0.5,
        BOX,
        40,
        threshold=0.0,
        inside="below",
        colour_fn=lambda p: (p + 1) / 2,
        progress=False,
    )
    assert mesh.volume > 0
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    for suffix in (".ply", ".obj"):
        path = save_mesh(mesh, tmp_path / f"sphere{suffix}")
        loaded = trimesh.load(path, force="mesh")
        assert len(loaded.faces) == len(mesh.faces)


def test_no_surface_is_an_error_that_says_what_the_field_took():
    with pytest.raises(
        NoSurfaceError,
        match=r"no surface at threshold 60: the field takes values "
        r"in \[0, 50\] over the box; try a lower threshold",
    ):
        extract_mesh(lambda p: 50 * (p[:, 0] + 1) / 2, BOX, 8, threshold=60.0, progress=False)
    with pytest.raises(NoSurfaceError, match="try a higher threshold") as error:
        extract_mesh(
            lambda p: p.norm(dim=-1), BOX, 8, threshold=-1.0, inside="below", progress=False
        )
    assert isinstance(error.value, ValueError)
    assert 0.0 < error.value.low < 0.3  # the grid point nearest the centre
    assert error.value.high == pytest.approx(3**0.5)
    assert error.value.hint == "higher"


def test_non_finite_field_and_threshold_are_refused():
    with pytest.raises(ValueError, match="the field is not finite at 512 of 512 grid points"):
        extract_mesh(
            lambda p: torch.full((p.shape[0],), float("nan")), BOX, 8, threshold=1.0, progress=False
        )
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        extract_mesh(sphere_density, BOX, 8, threshold=float("nan"), progress=False)
    with pytest.raises(ValueError, match="resolution must be an int >= 2, got 1"):
        extract_mesh(sphere_density, BOX, 1, progress=False)


def test_empty_level_set_and_bad_arguments(tmp_path):
    mesh = extract_mesh(
        lambda p: torch.zeros(p.shape[0]), BOX, 8, threshold=1.0, progress=False, allow_empty=True
    )
    assert len(mesh.vertices) == 0
    with pytest.raises(ValueError, match="mesh path must end in one of"):
        save_mesh(mesh, tmp_path / "mesh.txt")
    with pytest.raises(ValueError, match="inside must be"):
        extract_mesh(sphere_density, BOX, 8, inside="inward", progress=False)
