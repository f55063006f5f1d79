"""IGR: the eikonal term of an exact signed distance is zero, finite differences agree with
autograd (for the MLP and the hash field), the geometric initialisation is a sphere, fitting
a sphere's points recovers its signed distance and surface, and the hash field fits with
autograd gradients through the hash kernel's double backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from mp3d._backend import available_impls
from mp3d.implicit.igr import (
    HashSDFField,
    IGRConfig,
    IGRField,
    eikonal_loss,
    finite_difference_gradient,
    fit_igr,
    gradient,
    sdf_mesh,
)
from mp3d.implicit.sampling import PADDING
from mp3d.mesh.metrics import mesh_metrics

needs_cpp = pytest.mark.skipif(
    "cpp" not in available_impls("hash_encoding"), reason="mp3d._C not available"
)


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


def _sphere_cloud(n: int = 4000):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    points, faces = trimesh.sample.sample_surface(sphere, n, seed=0)
    return points, sphere.face_normals[faces]


@needs_cpp
def test_hash_field_fits_with_autograd_gradients_through_the_kernel():
    """gradient='autograd' on the hash field differentiates the hash kernel twice (the
    eikonal and normal terms reach the embeddings through its double backward)."""
    points, normals = _sphere_cloud()
    common = {
        "field": "hash",
        "gradient": "autograd",
        "hash_impl": "cpp",
        "batch": 512,
        "hash_levels": 6,
        "hash_log2_table_size": 12,
        "hash_finest_resolution": 64,
        "log_every": 1,
    }
    assert IGRConfig(**common).gradient_mode == "autograd"
    first = fit_igr(points, normals, IGRConfig(steps=1, **common), progress=False)[0]
    field, normalisation = fit_igr(points, normals, IGRConfig(steps=40, **common), progress=False)
    assert field.train_stats["last_loss"] < 0.5 * first.train_stats["last_loss"]
    unit = torch.as_tensor(normalisation.to_unit(points), dtype=torch.float32)
    with torch.no_grad():
        assert float(field(unit).abs().mean()) < float(first(unit).abs().mean())


def _points_away_from_cells(resolutions, n: int, margin: float, seed: int = 0) -> torch.Tensor:
    """n float64 points of the field's box whose unit-cube coordinates lie at least `margin`
    (unit-cube units) from every cell boundary of every level and from the clamp."""
    g = torch.Generator().manual_seed(seed)
    unit = torch.rand(200 * n, 3, generator=g, dtype=torch.float64)
    keep = ((unit > margin) & (unit < 1 - margin)).all(dim=1)
    for resolution in resolutions:
        scaled = unit * resolution
        distance = torch.minimum(scaled - scaled.floor(), scaled.ceil() - scaled) / resolution
        keep &= (distance > margin).all(dim=1)
    unit = unit[keep][:n]
    assert unit.shape[0] == n
    half = 0.5 * (1.0 + PADDING)
    return unit * 2 * half - half


def _hash_field(impl: str) -> HashSDFField:
    """A small float64 hash field with a residual large enough to matter."""
    torch.manual_seed(0)
    field = HashSDFField(n_levels=4, log2_table_size=10, finest_resolution=32, hidden=16, impl=impl)
    with torch.no_grad():
        field.encoding.embeddings.normal_(0.0, 0.1)
        field.mlp[-1].weight.normal_(0.0, 0.1)
    return field.double()


@needs_cpp
def test_hash_field_autograd_and_finite_difference_gradients_agree():
    """Inside the cells (farther than fd_eps from every boundary) central differences of the
    hash field differ from its autograd gradient by O(fd_eps^2) (the encoding is linear
    along each axis there; the softplus MLP is not), and the eikonal term's gradients
    through the kernel's double backward equal the torch reference's."""
    eps = IGRConfig().fd_eps
    fields = {impl: _hash_field(impl) for impl in ("cpp", "torch")}
    half = 0.5 * (1.0 + PADDING)
    resolutions = fields["cpp"].encoding.resolutions.tolist()
    points = _points_away_from_cells(resolutions, 64, 1.5 * eps / (2 * half))
    by_autograd = gradient(fields["cpp"], points)
    by_differences = finite_difference_gradient(fields["cpp"], points, eps)
    torch.testing.assert_close(by_differences, by_autograd, rtol=0.0, atol=1e3 * eps**2)
    grads = {}
    for impl, field in fields.items():
        eikonal_loss(gradient(field, points)).backward()
        grads[impl] = {name: p.grad for name, p in field.named_parameters()}
    assert grads["cpp"]["encoding.embeddings"].abs().max() > 0
    for name, expected in grads["torch"].items():
        torch.testing.assert_close(grads["cpp"][name], expected, rtol=1e-10, atol=1e-12, msg=name)
