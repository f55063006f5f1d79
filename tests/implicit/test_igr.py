"""IGR: the eikonal term of an exact signed distance is zero, finite differences agree with
autograd, the geometric initialisation is a sphere, and fitting a sphere's points recovers
its signed distance and surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from mp3d.implicit.igr import (
    IGRConfig,
    IGRField,
    eikonal_loss,
    finite_difference_gradient,
    fit_igr,
    gradient,
    sdf_mesh,
)
from mp3d.mesh.metrics import mesh_metrics


def sphere_sdf(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=-1) - 0.3


def test_eikonal_term_of_an_exact_sdf_is_zero():
    points = torch.rand(500, 3, dtype=torch.float64) - 0.5
    assert float(eikonal_loss(gradient(sphere_sdf, points, create_graph=False))) < 1e-20
    assert float(eikonal_loss(2.0 * gradient(sphere_sdf, points, create_graph=False))) == 1.0


def test_finite_differences_agree_with_autograd():
    torch.manual_seed(0)
    field = IGRField(hidden=32, layers=4, skip=2, n_frequencies=2).double()
    points = torch.rand(64, 3, dtype=torch.float64) - 0.5
    torch.testing.assert_close(
        finite_difference_gradient(field, points, eps=1e-5),
        gradient(field, points),
        atol=1e-6,
        rtol=1e-5,
    )


def test_geometric_initialisation_is_near_a_sphere():
    torch.manual_seed(0)
    field = IGRField(hidden=128, layers=4, skip=2)
    assert float(field(torch.zeros(1, 3))) < 0 < float(field(torch.full((1, 3), 0.5)))


def test_fitting_a_sphere_recovers_its_distance_and_surface():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    sphere.apply_translation([5.0, 0.0, 0.0])  # fitting works in the cloud's own coordinates
    points, faces = trimesh.sample.sample_surface(sphere, 4000, seed=0)
    config = IGRConfig(steps=200, batch=1024, hidden=64, layers=4, skip=2, log_every=20)
    field, normalisation = fit_igr(points, sphere.face_normals[faces], config, progress=False)
    assert field.train_stats["steps"] == 200 and field.train_stats["last_loss"] < 0.05
    unit = torch.as_tensor(normalisation.to_unit(points), dtype=torch.float32)
    assert float(field(unit).abs().mean()) < 0.01  # the points lie on the zero level set
    inside = float(field(torch.zeros(1, 3)))
    assert -0.6 < inside < -0.2  # the centre is 0.5 of the unit cube inside
    mesh = sdf_mesh(field, normalisation, initial=16, upsampling_steps=2)
    metrics = mesh_metrics(mesh, sphere, n_points=20_000)
    assert metrics.chamfer_l1 < 0.05 and metrics.normal_consistency > 0.95  # units of 4.0


def test_fit_checks_its_input():
    with pytest.raises(ValueError, match=r"points must have shape \[N>=2, 3\]"):
        fit_igr(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="points must be finite"):
        fit_igr(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="normals must be finite"):
        fit_igr(np.random.rand(4, 3), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="skip must be an int in"):
        IGRConfig(layers=4, skip=4)


def test_sdf_fit_command_writes_a_mesh_and_resumes(tmp_path, capsys):
    from mp3d.cli import main
    from mp3d.data.point_clouds import save_point_cloud

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    points, faces = trimesh.sample.sample_surface(sphere, 2000, seed=0)
    cloud = save_point_cloud(tmp_path / "sphere.ply", points, sphere.face_normals[faces])
    common = [
        "--initial",
        "8",
        "--upsampling-steps",
        "2",
        "--quiet",
        "--run",
        str(tmp_path / "run"),
    ]
    out = tmp_path / "mesh.obj"
    assert main(["sdf", "fit", str(cloud), "--out", str(out), "--steps", "10", *common]) == 0
    assert "with normals" in capsys.readouterr().out
    mesh = trimesh.load(out, force="mesh")
    assert len(mesh.faces) > 100 and np.abs(mesh.bounds).max() < 1.6  # in the cloud's units
    assert main(["sdf", "fit", str(cloud), "--out", str(out), "--steps", "15", *common]) == 0
    text = capsys.readouterr().out
    assert "15 steps in" in text and "resumed from step 10" in text  # from --run


def test_hash_field_fits_a_sphere_with_finite_difference_gradients():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    points, faces = trimesh.sample.sample_surface(sphere, 4000, seed=0)
    config = IGRConfig(
        field="hash",
        steps=60,
        batch=1024,
        hash_levels=8,
        hash_log2_table_size=14,
        hash_finest_resolution=128,
        log_every=20,
    )
    assert config.gradient_mode == "finite_difference"
    field, normalisation = fit_igr(points, sphere.face_normals[faces], config, progress=False)
    unit = torch.as_tensor(normalisation.to_unit(points), dtype=torch.float32)
    assert float(field(unit).abs().mean()) < 0.02
    assert float(field(torch.zeros(1, 3))) < -0.2
    # The hash kernel has no double backward: autograd gradients of it are refused up front.
    with pytest.raises(ValueError, match="gradient='autograd' with field='hash'"):
        IGRConfig(field="hash", gradient="autograd")
    IGRConfig(field="hash", gradient="autograd", hash_impl="torch")  # the reference can
