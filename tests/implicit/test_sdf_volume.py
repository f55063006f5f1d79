"""SDF volume rendering (mp3d.implicit.sdf_volume): NeuS's alphas of a plane against their
closed form (weights peaking at the plane, summing to ~1 for a sharp s), the density
conversion through the volume-rendering kernel, gradients to s and to the field, a sphere's
depth and silhouette, and a few NeuS training steps that improve a model."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.implicit.dvr import DVRConfig, DVRModel, evaluate_dvr, train_dvr
from mp3d.implicit.sdf_volume import (
    MAX_ALPHA,
    SingleVariance,
    alpha_to_sigma,
    neus_alpha,
    render_sdf_sections,
    render_sdf_volume,
)
from tests.implicit.test_dvr import TINY, sphere_views

pytestmark = pytest.mark.usefixtures("one_thread")


def _plane_ray(n_sections: int = 64, plane_t: float = 1.3, dtype=torch.float64):
    """One ray along +z from z = 0 crossing the plane z = plane_t head-on: section edges
    [n+1] over [0, 3], and the plane's SDF at them (positive before the plane)."""
    edges = torch.linspace(0.0, 3.0, n_sections + 1, dtype=dtype)
    return edges, plane_t - edges


def _render_plane(edges, sdf, inv_s):
    n = len(edges) - 1
    rgbs = torch.full((n, 3), 0.5, dtype=edges.dtype)
    return render_sdf_sections(
        sdf[:-1],
        sdf[1:],
        rgbs,
        edges[:-1],
        edges[1:],
        torch.zeros(n, dtype=torch.int64),
        1,
        inv_s,
        early_stop_eps=0.0,
    )


@pytest.mark.parametrize("inv_s", [5.0, 50.0, 500.0])
def test_a_plane_gives_the_closed_form_weights(inv_s):
    edges, sdf = _plane_ray()
    _, opacity, depth, weights = _render_plane(edges, sdf, inv_s)
    phi = torch.sigmoid(inv_s * sdf)
    # head-on, the transmittance telescopes: T_i = Phi(f_i) / Phi(f_0)
    expected = (phi[:-1] - phi[1:]) / phi[0]
    torch.testing.assert_close(weights, expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(opacity[0], 1 - phi[-1] / phi[0], rtol=1e-6, atol=1e-9)
    section = int(torch.searchsorted(edges, torch.tensor(1.3, dtype=edges.dtype))) - 1
    assert int(weights.argmax()) == section  # the weights peak where the plane is
    if inv_s >= 50:
        assert abs(float(opacity[0]) - 1.0) < 1e-6  # and sum to ~1 for a sharp s
        assert abs(float(depth[0]) - 1.3) < 0.03


def test_alphas_are_zero_where_the_sdf_rises_and_densities_give_them_back():
    edges, sdf = _plane_ray()
    alpha = neus_alpha(-sdf[:-1], -sdf[1:], 20.0)  # leaving the surface: f increasing
    assert float(alpha.abs().max()) == 0.0
    alpha = torch.tensor([0.0, 0.3, 0.9, 1.0], dtype=torch.float64)
    starts = torch.tensor([0.0, 0.1, 0.3, 0.35], dtype=torch.float64)
    ends = torch.tensor([0.1, 0.3, 0.35, 0.5], dtype=torch.float64)
    sigma = alpha_to_sigma(alpha, starts, ends)
    assert bool(torch.isfinite(sigma).all())
    torch.testing.assert_close(
        1 - torch.exp(-sigma * (ends - starts)), alpha.clamp(max=MAX_ALPHA), rtol=1e-9, atol=1e-9
    )
    zero_length = alpha_to_sigma(alpha[:1] + 0.5, starts[:1], starts[:1])
    assert float(zero_length) == 0.0


class Plane(torch.nn.Module):
    """SDF of the plane z = offset, the offset a parameter."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(offset, dtype=torch.float64))

    def forward(self, points):
        return self.offset - points[:, 2]


def test_gradients_flow_to_s_and_to_the_field():
    plane, variance = Plane(1.3), SingleVariance(0.2)
    variance.double()
    n = 4
    origins = torch.zeros(n, 3, dtype=torch.float64)
    directions = torch.nn.functional.normalize(
        torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, -0.2, 1.0], [0.1, 0.1, 1.0]]),
        dim=-1,
    ).double()
    near, far = torch.zeros(n, dtype=torch.float64), torch.full((n,), 3.0, dtype=torch.float64)

    def colour(points, dirs):
        return torch.full_like(points, 0.5)

    out = render_sdf_volume(
        plane, colour, origins, directions, near, far, variance(), 48, 16, background=1.0
    )
    loss = (out["depth"] - 1.0).pow(2).sum() + out["rgb"].sum()
    loss.backward()
    assert plane.offset.grad is not None and float(plane.offset.grad.abs()) > 0
    assert variance.variance.grad is not None and float(variance.variance.grad.abs()) > 0
    # moving the plane further moves the depth by as much: d depth / d offset ~ 1 / cos
    cos = directions[:, 2]
    expected_depth = 1.3 / cos
    torch.testing.assert_close(out["depth"].detach(), expected_depth, rtol=0.02, atol=0.02)


def test_the_kernel_gradients_of_the_conversion_are_right():
    edges, sdf = _plane_ray(8)
    inv_s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    start = sdf[:-1].clone().requires_grad_(True)
    end = sdf[1:].clone().requires_grad_(True)
    rgbs = torch.rand(8, 3, dtype=torch.float64, requires_grad=True)
    index = torch.zeros(8, dtype=torch.int64)

    def fn(start, end, rgbs, inv_s):
        rgb, opacity, depth, _ = render_sdf_sections(
            start, end, rgbs, edges[:-1], edges[1:], index, 1, inv_s, early_stop_eps=0.0
        )
        return rgb, opacity, depth

    assert torch.autograd.gradcheck(fn, (start, end, rgbs, inv_s), eps=1e-6, atol=1e-5)


def test_a_sphere_renders_its_silhouette_and_depth():
    radius = 0.5

    def sphere(points):
        return points.norm(dim=-1) - radius

    def white(points, dirs):
        return torch.ones_like(points)

    origins = torch.tensor([[0.0, 0.0, -2.0]]).expand(5, 3)
    targets = torch.tensor(
        [[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, -0.4, 0.0], [0.7, 0.0, 0.0], [0.0, 0.9, 0.0]]
    )
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    near, far = torch.full((5,), 1.0), torch.full((5,), 3.0)
    near[4] = far[4] = 2.0  # no range: no samples
    out = render_sdf_volume(
        sphere, white, origins, directions, near, far, 400.0, 64, 32, background=0.0
    )
    opacity = out["opacity"]
    assert bool((opacity[:3] > 0.99).all()) and float(opacity[3:].max()) < 1e-3
    oc = origins[:3]
    b = (oc * directions[:3]).sum(-1)
    depth = -b - (b * b - (oc * oc).sum(-1) + radius**2).sqrt()
    torch.testing.assert_close(out["depth"][:3], depth, rtol=0, atol=0.02)
    assert torch.equal(out["rgb"][4], torch.zeros(3))
    assert int((out["ray_indices"] == 4).sum()) == 0


def test_culling_light_sections_keeps_the_image_and_its_gradients():
    torch.manual_seed(0)
    plane = Plane(1.3)
    origins = torch.zeros(6, 3, dtype=torch.float64)
    directions = torch.nn.functional.normalize(
        torch.randn(6, 3, dtype=torch.float64) * 0.2 + torch.tensor([0.0, 0.0, 1.0]), dim=-1
    )
    near, far = torch.zeros(6, dtype=torch.float64), torch.full((6,), 3.0, dtype=torch.float64)

    def colour(points, dirs):
        return torch.sigmoid(points)

    runs = {}
    for cull in (0.0, 1e-4):
        plane.offset.grad = None
        out = render_sdf_volume(
            plane, colour, origins, directions, near, far, 100.0, 48, 16, cull_weight=cull
        )
        (out["rgb"].sum() + out["depth"].sum()).backward()
        runs[cull] = (out, plane.offset.grad.clone())
    (full, full_grad), (culled, culled_grad) = runs[0.0], runs[1e-4]
    assert len(culled["t_starts"]) < 0.5 * len(full["t_starts"])
    for key in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(culled[key], full[key], rtol=0, atol=2e-3)
    torch.testing.assert_close(culled_grad, full_grad, rtol=1e-2, atol=1e-3)


def test_a_few_volume_steps_improve_the_model():
    views = sphere_views()
    config = DVRConfig(renderer="volume", steps=40, seed=0, **TINY)
    torch.manual_seed(config.seed)
    before = evaluate_dvr(DVRModel(config.model_spec(views)), views, progress=False)
    model = train_dvr(views, config, progress=False)
    after = evaluate_dvr(model, views, progress=False)
    assert after["psnr"] > before["psnr"] + 1.0, (before["psnr"], after["psnr"])
    assert after["mask_iou"] > before["mask_iou"], (before["mask_iou"], after["mask_iou"])
    assert math.isfinite(model.train_stats["last_eikonal"])
    assert model.train_stats["last_s"] > 0
