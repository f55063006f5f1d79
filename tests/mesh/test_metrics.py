"""Surface metrics against closed forms: concentric spheres, a mesh against itself, two
parallel squares, overlapping boxes for IoU."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mp3d.mesh.metrics import mesh_metrics, point_cloud_metrics, sample_surface, volumetric_iou


def _sphere(radius: float) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=radius)


def test_concentric_spheres_are_their_radii_apart():
    metrics = mesh_metrics(_sphere(0.30), _sphere(0.35), n_points=20_000)
    # Every point of one sphere lies 0.05 from the other; sampling adds a little.
    assert metrics.accuracy == pytest.approx(0.05, abs=2e-3)
    assert metrics.completeness == pytest.approx(0.05, abs=2e-3)
    assert metrics.chamfer_l1 == pytest.approx(0.05, abs=2e-3)
    assert metrics.chamfer_l2 == pytest.approx(0.05**2, rel=0.1)
    assert metrics.normal_consistency > 0.99  # the same directions, radially
    assert metrics.fscore == 0.0  # tau = 0.01 < 0.05
    assert mesh_metrics(_sphere(0.30), _sphere(0.35), n_points=20_000, tau=0.06).fscore == 1.0


def test_a_mesh_against_itself_scores_perfectly():
    mesh = _sphere(0.4)
    points, normals = sample_surface(mesh, 5000)
    same = point_cloud_metrics(points, points, normals, normals)
    assert same.chamfer_l1 == 0.0 and same.normal_consistency == pytest.approx(1.0)
    assert same.fscore == 1.0
    # Two independent samples differ only by the sampling: distances below its spacing.
    metrics = mesh_metrics(mesh, mesh, n_points=20_000)
    spacing = np.sqrt(mesh.area / 20_000)
    assert metrics.chamfer_l1 < 0.6 * spacing and metrics.normal_consistency > 0.99


def test_parallel_squares_and_flipped_normals():
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-0.5, 0.5, (4000, 2)), np.zeros(4000)]
    normals = np.tile([0.0, 0.0, 1.0], (4000, 1))
    shifted = points + [0.0, 0.0, 0.02]
    metrics = point_cloud_metrics(shifted, points, -normals, normals)  # orientation-free
    assert metrics.accuracy == pytest.approx(0.02, abs=3e-3)
    assert metrics.normal_consistency == pytest.approx(1.0)
    tilted = np.tile([1.0, 0.0, 0.0], (4000, 1))  # perpendicular normals: no consistency
    assert point_cloud_metrics(points, points, tilted, normals).normal_consistency == 0.0
    assert np.isnan(point_cloud_metrics(points, points).normal_consistency)


def test_precision_and_recall_are_one_sided():
    gt = np.c_[np.linspace(0, 1, 101), np.zeros(101), np.zeros(101)]
    pred = np.vstack([gt, gt[:50] + [0.0, 1.0, 0.0]])  # all of gt, plus 50 stray points
    metrics = point_cloud_metrics(pred, gt, tau=0.01)
    assert metrics.recall == 1.0 and metrics.precision == pytest.approx(101 / 151)
    assert metrics.fscore == pytest.approx(2 * metrics.precision / (metrics.precision + 1))


def test_volumetric_iou_of_overlapping_boxes():
    grid = np.stack(np.meshgrid(*[np.linspace(0.005, 0.995, 100)] * 3, indexing="ij"), -1)
    points = grid.reshape(-1, 3)
    a = points[:, 0] < 0.5  # half the cube
    b = points[:, 0] >= 0.25  # three quarters of it; they share a quarter
    assert volumetric_iou(a, b) == pytest.approx(0.25 / 1.0)
    assert volumetric_iou(a, a) == 1.0
    assert volumetric_iou(np.zeros(5, bool), np.zeros(5, bool)) == 1.0


def test_bad_inputs_name_the_argument():
    good = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"pred_points must be points of shape \[N>0, 3\]"):
        point_cloud_metrics(np.zeros((0, 3)), good)
    with pytest.raises(ValueError, match="gt_points must be finite"):
        point_cloud_metrics(good, np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        point_cloud_metrics(good, good, tau=0.0)
    with pytest.raises(ValueError, match="gt_normals must have the shape of its points"):
        point_cloud_metrics(good, good, np.ones((4, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="occupancies must be boolean"):
        volumetric_iou(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="mesh must be a trimesh.Trimesh"):
        sample_surface(trimesh.Trimesh(), 10)


def test_mesh_eval_command_reports_in_the_unit_cube_of_the_ground_truth(tmp_path, capsys):
    import json

    from mp3d.cli import main

    inner, outer = tmp_path / "inner.ply", tmp_path / "outer.obj"
    _sphere(1.0).export(inner)
    _sphere(1.1).export(outer)
    report = tmp_path / "metrics.json"
    assert (
        main(["mesh", "eval", str(inner), str(outer), "--points", "20000", "--json", str(report)])
        == 0
    )
    assert "chamfer_l1" in capsys.readouterr().out
    normalised = json.loads(report.read_text())
    # GT's longest side is 2.2, so the 0.1 gap is 0.1 / 2.2 in its unit cube.
    assert normalised["chamfer_l1"] == pytest.approx(0.1 / 2.2, abs=2e-3)
    assert normalised["normalised"] is True and normalised["fscore"] == 0.0
    assert (
        main(
            [
                "mesh",
                "eval",
                str(inner),
                str(outer),
                "--points",
                "20000",
                "--no-normalise",
                "--tau",
                "0.2",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    raw = json.loads(report.read_text())
    assert raw["chamfer_l1"] == pytest.approx(0.1, abs=4e-3) and raw["fscore"] == 1.0
