"""Ground truth from meshes: normalisation, samples, winding-number occupancy and signed
distance (against a sphere's closed form, and on the open bunny), point-cloud files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from mp3d.data.point_clouds import load_point_cloud, save_point_cloud
from mp3d.implicit import (
    near_surface_points,
    normalise_mesh,
    occupancy,
    signed_distance,
    surface_points,
    uniform_points,
)

MESHES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "meshes"


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=0.3)


def test_normalisation_puts_the_longest_side_at_one_and_maps_back():
    box = trimesh.creation.box(extents=[4.0, 2.0, 1.0])
    box.apply_translation([10.0, -3.0, 2.0])
    unit, normalisation = normalise_mesh(box)
    np.testing.assert_allclose(unit.bounds, [[-0.5, -0.25, -0.125], [0.5, 0.25, 0.125]])
    np.testing.assert_allclose(normalisation.to_world(unit.vertices), box.vertices)
    assert np.allclose(box.bounds[0], [8.0, -4.0, 1.5])  # the input is not changed


def test_samples_lie_where_they_should(sphere):
    points = uniform_points(5000, seed=1)
    assert points.shape == (5000, 3) and np.abs(points).max() <= 0.55
    on, normals = surface_points(sphere, 2000)
    np.testing.assert_allclose(np.linalg.norm(on, axis=1), 0.3, atol=2e-3)
    assert (np.sum(on * normals, axis=1) > 0.99 * 0.3).all()  # outward normals
    near = near_surface_points(sphere, 4000, sigmas=(0.01, 0.1))
    offsets = np.abs(np.linalg.norm(near, axis=1) - 0.3)
    assert 0.004 < np.median(offsets[:2000]) < 0.012 and np.median(offsets[2000:]) > 0.04
    np.testing.assert_array_equal(uniform_points(10, seed=3), uniform_points(10, seed=3))


def test_occupancy_and_signed_distance_of_a_sphere(sphere):
    points = uniform_points(20_000, seed=2)
    radius = np.linalg.norm(points, axis=1)
    inside = occupancy(sphere, points)
    clear = np.abs(radius - 0.3) > 2e-3  # away from the facets' approximation of the sphere
    np.testing.assert_array_equal(inside[clear], radius[clear] < 0.3)
    np.testing.assert_allclose(signed_distance(sphere, points), radius - 0.3, atol=2e-3)
    assert occupancy(sphere, np.zeros((0, 3))).shape == (0,)


@pytest.mark.skipif(not (MESHES / "bunny.obj").is_file(), reason=f"no bunny at {MESHES}")
def test_the_open_bunny_has_a_sensible_inside():
    bunny, _ = normalise_mesh(trimesh.load(MESHES / "bunny.obj", force="mesh", process=False))
    # The scan is open at the base (shared/data/README.md): inside comes from the winding number.
    points, normals = surface_points(bunny, 5000, seed=4)
    inward, outward = points - 0.01 * normals, points + 0.01 * normals
    assert occupancy(bunny, inward).mean() > 0.9  # a ray's parity would fail near the hole
    assert occupancy(bunny, outward).mean() < 0.1
    far = uniform_points(2000, seed=5) * 4.0
    far = far[np.abs(far).max(axis=1) > 0.6]  # outside the unit cube the bunny fills
    assert not occupancy(bunny, far).any()
    distances = signed_distance(bunny, inward)
    assert np.median(distances) == pytest.approx(-0.01, abs=3e-3)


def test_bad_input_names_the_argument(sphere):
    with pytest.raises(ValueError, match="mesh must be a trimesh.Trimesh with at least one"):
        occupancy(trimesh.Trimesh(), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="points must be finite"):
        signed_distance(sphere, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"points must have shape \[N, 3\]"):
        occupancy(sphere, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sigmas must be finite numbers > 0"):
        near_surface_points(sphere, 10, sigmas=(0.0,))
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        uniform_points(-1)


@pytest.mark.parametrize("suffix", [".ply", ".xyz", ".npz"])
def test_point_cloud_files_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    normals = rng.normal(size=(50, 3))
    path = save_point_cloud(tmp_path / f"cloud{suffix}", points, normals)
    loaded, loaded_normals = load_point_cloud(path)
    np.testing.assert_allclose(loaded, points, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loaded_normals, normals, rtol=1e-6, atol=1e-6)
    bare, none = load_point_cloud(save_point_cloud(tmp_path / f"bare{suffix}", points))
    assert none is None and bare.shape == (50, 3)


def test_point_cloud_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.ply"):
        load_point_cloud(tmp_path / "none.ply")
    bad = tmp_path / "bad.xyz"
    bad.write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match="bad.xyz: lines must hold 3"):
        load_point_cloud(bad)
    words = tmp_path / "words.xyz"
    words.write_text("one two three\n")
    with pytest.raises(ValueError, match="words.xyz: cannot read the point cloud"):
        load_point_cloud(words)
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nnot really\n")
    with pytest.raises(ValueError, match="broken.ply: cannot read the point cloud"):
        load_point_cloud(broken)
    with pytest.raises(ValueError, match="nan.npz: points must be finite"):
        save_point_cloud(tmp_path / "nan.npz", np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="cloud.txt: point clouds are .ply, .xyz, .npz"):
        save_point_cloud(tmp_path / "cloud.txt", np.zeros((2, 3)))
    assert not (tmp_path / "nan.npz").exists()
