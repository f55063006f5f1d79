"""Shape sets: the procedural family, posed copies of meshes, their labels, the .npz file,
and scoring a field against a shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from mp3d.implicit.evaluation import mean_metrics, shape_metrics
from mp3d.implicit.shape_set import (
    augmented,
    build_shape_set,
    load_mesh_dir,
    load_shape_set,
    sample_shape,
    save_shape_set,
)
from mp3d.implicit.shapes import procedural_sdf, procedural_shape

SMALL = {"n_surface": 2000, "n_uniform": 3000, "n_near": 2000}


@pytest.fixture(scope="module")
def sphere_shape():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    return sample_shape(sphere, "sphere", **SMALL)


def test_procedural_shapes_are_closed_unit_cube_meshes_fixed_by_their_seed():
    first, again, other = procedural_shape(3, 48), procedural_shape(3, 48), procedural_shape(4, 48)
    assert first.is_watertight
    assert np.allclose(first.vertices, again.vertices)
    assert first.vertices.shape != other.vertices.shape or not np.allclose(
        first.vertices, other.vertices
    )
    extent = first.bounds[1] - first.bounds[0]
    assert extent.max() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(first.bounds.mean(axis=0), 0.0, atol=1e-6)


def test_procedural_sdf_is_a_distance_outside_its_parts():
    sdf = procedural_sdf(7)
    far = np.array([[5.0, 0.0, 0.0], [0.0, -6.0, 0.0]])
    # Every part lies within 0.8 of the origin, so far points are at least that much closer.
    assert (sdf(far) > np.linalg.norm(far, axis=1) - 0.8).all()
    assert sdf(np.zeros((1, 3)))[0] < 0  # the first part is centred at the origin


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_procedural_shape_refuses_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        procedural_sdf(bad)


def test_labels_of_a_sphere_match_its_closed_form(sphere_shape):
    radius = np.linalg.norm(sphere_shape.points, axis=1)
    # The icosphere is inscribed in the sphere, so allow for its facets near the surface.
    clear = np.abs(radius - 0.4) > 0.01
    assert (sphere_shape.occupancy[clear] == (radius[clear] < 0.4)).all()
    assert np.allclose(sphere_shape.sdf, radius - 0.4, atol=0.01)
    assert np.allclose(np.linalg.norm(sphere_shape.surface, axis=1), 0.4, atol=0.01)
    outward = (sphere_shape.normals * sphere_shape.surface).sum(axis=1)
    assert (outward > 0).all()
    near = sphere_shape.points[sphere_shape.near]
    assert np.abs(np.linalg.norm(near, axis=1) - 0.4).mean() < 0.05
    assert sphere_shape.points[sphere_shape.uniform].shape == (3000, 3)
    assert np.abs(sphere_shape.points[sphere_shape.uniform]).max() <= 0.55


def test_augmented_copies_are_rotated_scaled_and_in_the_unit_cube():
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.2))
    copy = augmented(box, seed=1, scale_range=(0.6, 0.6))
    extent = copy.bounds[1] - copy.bounds[0]
    assert extent.max() == pytest.approx(0.6, abs=1e-6)
    assert np.allclose(copy.bounds.mean(axis=0), 0.0, atol=1e-6)
    # Turned: its bounding box is no longer the box's own proportions.
    assert not np.allclose(sorted(extent / extent.max()), [0.2, 0.5, 1.0], atol=0.05)
    # Rigid motion and uniform scaling keep volume / area^(3/2).
    assert copy.volume / copy.area**1.5 == pytest.approx(box.volume / box.area**1.5, rel=1e-9)
    with pytest.raises(ValueError, match="scale_range"):
        augmented(box, seed=1, scale_range=(0.9, 0.5))


def test_shape_sets_round_trip_through_their_file(tmp_path):
    shapes = build_shape_set(procedural_seeds=[1, 2], **SMALL)
    path = save_shape_set(shapes, tmp_path / "shapes.npz")
    loaded = load_shape_set(path)
    assert [s.name for s in loaded] == ["procedural-1", "procedural-2"]
    for a, b in zip(shapes, loaded, strict=True):
        for field in ("surface", "normals", "points", "occupancy", "sdf", "vertices", "faces"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert a.n_uniform == b.n_uniform
    # Inside by winding number agrees with the sign of the distance.
    shape = loaded[0]
    clear = np.abs(shape.sdf) > 1e-3
    assert (shape.occupancy[clear] == (shape.sdf[clear] < 0)).all()
    assert list(tmp_path.iterdir()) == [path]


def test_loading_refuses_files_that_are_not_shape_sets(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz"):
        load_shape_set(other)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_shape_set(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        load_shape_set(pickled)


def test_mesh_folders_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mesh_dir(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not a mesh")
    with pytest.raises(ValueError, match="holds no mesh files"):
        load_mesh_dir(tmp_path)
    (tmp_path / "broken.obj").write_text("v 0 0 0\nf 1 2 3 4 5\n")
    with pytest.raises(ValueError, match="broken.obj"):
        load_mesh_dir(tmp_path)
    with pytest.raises(ValueError, match="no shapes"):
        build_shape_set()


def test_copies_of_a_mesh_are_named_and_posed_differently(tmp_path):
    trimesh.creation.box(extents=(1.0, 0.5, 0.2)).export(tmp_path / "box.obj")
    shapes = build_shape_set(load_mesh_dir(tmp_path), copies=2, **SMALL)
    assert [s.name for s in shapes] == ["box@0", "box@1"]
    assert not np.allclose(shapes[0].vertices, shapes[1].vertices)


def test_shape_metrics_of_the_exact_field_are_nearly_perfect(sphere_shape):
    def exact(points: torch.Tensor) -> torch.Tensor:
        return points.norm(dim=-1) - 0.4

    scores = shape_metrics(exact, sphere_shape, 0.0, "below")
    assert scores["iou"] > 0.98
    assert scores["chamfer_l1"] < 0.01
    assert scores["normal_consistency"] > 0.99
    assert scores["fscore"] > 0.95
    smaller = shape_metrics(lambda p: p.norm(dim=-1) - 0.3, sphere_shape, 0.0, "below")
    assert smaller["iou"] == pytest.approx(0.3**3 / 0.4**3, abs=0.05)
    assert smaller["chamfer_l1"] == pytest.approx(0.1, abs=0.01)
    # An occupancy-logit field: inside above its level.
    logits = shape_metrics(lambda p: 0.4 - p.norm(dim=-1), sphere_shape, 0.0, "above")
    assert logits["iou"] == pytest.approx(scores["iou"])


def test_a_field_without_a_surface_scores_zero_iou_and_no_surface(sphere_shape):
    scores = shape_metrics(lambda p: torch.ones(len(p)), sphere_shape, 0.0, "below")
    assert scores["iou"] == 0.0
    assert np.isnan(scores["chamfer_l1"])
    assert mean_metrics([scores, {**scores, "chamfer_l1": 0.5}])["chamfer_l1"] == 0.5
    with pytest.raises(ValueError, match="inside"):
        shape_metrics(lambda p: p[:, 0], sphere_shape, 0.0, "inward")
