"""GaussianModel: construction from points, neighbour scales, SH degrees, rendering, PLY
round trip, bad input, and a short fit to a tiny image."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.metrics import ssim
from mp3d.splat import GaussianModel
from mp3d.splat.model import SH_C0, nearest_neighbour_scales

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def _camera(size: int = 16, distance: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Looks down +z at the origin from `distance`; square image of `size` pixels."""
    viewmat = torch.eye(4)
    viewmat[2, 3] = distance
    K = torch.tensor([[size, 0.0, size / 2], [0.0, size, size / 2], [0.0, 0.0, 1.0]])
    return viewmat, K


def _grid(n: int, spacing: float) -> torch.Tensor:
    axis = torch.arange(n, dtype=torch.float32) * spacing
    return torch.cartesian_prod(axis, axis, axis)


# ----------------------------------------------------------------------------- construction


def test_from_points_renders_its_colour_at_degree_0():
    colour = torch.tensor([0.9, 0.2, 0.6])
    # The second point, far behind the camera, only makes the first Gaussian large.
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -20.0]])
    model = GaussianModel.from_points(points, torch.stack([colour, colour]), sh_degree=0)
    viewmat, K = _camera(size=9)
    (rgb, depth, alpha), _ = model.rasterize(viewmat, K, 9, 9)
    torch.testing.assert_close(alpha[4, 4], torch.tensor(0.1), atol=1e-4, rtol=0)
    torch.testing.assert_close(rgb[4, 4] / alpha[4, 4], colour, atol=1e-4, rtol=0)
    torch.testing.assert_close(depth[4, 4] / alpha[4, 4], torch.tensor(4.0), atol=1e-4, rtol=0)


def test_from_points_parameters():
    colours = torch.tensor([[0.5, 0.0, 1.0]] * 8)
    model = GaussianModel.from_points(_grid(2, 1.0), colours)
    assert model.max_sh_degree == 3 and model.active_sh_degree == 0
    assert model.sh_dc.shape == (8, 1, 3) and model.sh_rest.shape == (8, 15, 3)
    torch.testing.assert_close(model.sh_dc[:, 0], (colours - 0.5) / SH_C0)
    assert not model.sh_rest.any()
    torch.testing.assert_close(model.unit_quats, torch.tensor([[1.0, 0, 0, 0]] * 8))
    torch.testing.assert_close(model.opacities, torch.full((8,), 0.1))
    assert {name for name, _ in model.named_parameters()} == set(model.PARAMETER_NAMES)


def test_scales_from_neighbours_on_a_grid():
    model = GaussianModel.from_points(_grid(3, 0.5), torch.full((27, 3), 0.5))
    torch.testing.assert_close(model.scales, torch.full((27, 3), 0.5))


def test_neighbour_scales_are_the_rms_of_the_3_nearest_distances_in_chunks():
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [7.0, 0, 0], [15.0, 0, 0]])
    expected = torch.tensor(
        [
            math.sqrt((1 + 9 + 49) / 3),
            math.sqrt((1 + 4 + 36) / 3),
            math.sqrt((4 + 9 + 16) / 3),
            math.sqrt((16 + 36 + 49) / 3),
            math.sqrt((64 + 144 + 196) / 3),
        ]
    )
    torch.testing.assert_close(nearest_neighbour_scales(points, chunk=2), expected)
    torch.testing.assert_close(nearest_neighbour_scales(points[:2]), torch.ones(2))


def test_random_in_box_is_seeded_and_inside():
    a = GaussianModel.random_in_box(30, BOX, torch.Generator().manual_seed(1), sh_degree=1)
    b = GaussianModel.random_in_box(30, BOX, torch.Generator().manual_seed(1), sh_degree=1)
    assert len(a) == 30 and a.sh.shape == (30, 4, 3)
    assert bool((a.means.abs() <= 1.0).all())
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(a.sh, b.sh)


def test_raise_sh_degree_stops_at_the_maximum():
    model = GaussianModel.from_points(_grid(2, 1.0), torch.rand(8, 3), sh_degree=2)
    assert [model.raise_sh_degree() for _ in range(3)] == [1, 2, 2]


# ----------------------------------------------------------------------------- rendering and IO


def test_render_shapes_and_gradients():
    model = GaussianModel.random_in_box(20, BOX, torch.Generator().manual_seed(0))
    with torch.no_grad():  # anisotropic, or rotations would not matter
        model.log_scales[:, 0] -= 1.0
    model.raise_sh_degree()
    viewmat, K = _camera()
    (rgb, depth, alpha), info = model.rasterize(viewmat, K, 16, 12, background=1.0)
    assert rgb.shape == (12, 16, 3) and alpha.shape == depth.shape == (12, 16)
    assert info["means2d"].shape == (20, 2) and info["visible"].shape == (20,)
    rgb.sum().backward()
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc"):
        assert getattr(model, name).grad.abs().sum() > 0, name
    # Only band 1 of sh_rest is active.
    assert model.sh_rest.grad[:, :3].abs().sum() > 0
    assert not model.sh_rest.grad[:, 3:].any()


def test_ply_round_trip_through_the_model(tmp_path):
    model = GaussianModel.random_in_box(12, BOX, torch.Generator().manual_seed(2), sh_degree=2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(3)))
    path = model.save_ply(tmp_path / "scene.ply")
    loaded = GaussianModel.load_ply(path)
    assert loaded.max_sh_degree == loaded.active_sh_degree == 2
    for name in GaussianModel.PARAMETER_NAMES:
        torch.testing.assert_close(getattr(loaded, name), getattr(model, name))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    points, colours = _grid(2, 1.0), torch.rand(8, 3)
    with pytest.raises(ValueError, match="colours"):
        GaussianModel.from_points(points, colours[:5])
    with pytest.raises(ValueError, match="points"):
        GaussianModel.from_points(points[:1], colours[:1])
    with pytest.raises(ValueError, match="sh_degree"):
        GaussianModel.from_points(points, colours, sh_degree=4)
    with pytest.raises(ValueError, match="aabb"):
        GaussianModel.random_in_box(10, BOX.flip(0))
    with pytest.raises(ValueError, match="n must"):
        GaussianModel.random_in_box(1, BOX)
    model = GaussianModel.from_points(points, colours, sh_degree=1)
    with pytest.raises(ValueError, match="sh must"):
        GaussianModel(
            model.means, model.quats, model.log_scales, model.opacity_logits, torch.zeros(8, 3, 3)
        )
    with pytest.raises(ValueError, match="active_sh_degree"):
        GaussianModel(
            model.means,
            model.quats,
            model.log_scales,
            model.opacity_logits,
            model.sh,
            active_sh_degree=2,
        )


# ----------------------------------------------------------------------------- training


def _optimizer(model: GaussianModel) -> torch.optim.Adam:
    rates = {
        "means": 0.02,
        "quats": 0.01,
        "log_scales": 0.02,
        "opacity_logits": 0.1,
        "sh_dc": 0.1,
        "sh_rest": 0.005,
    }
    return torch.optim.Adam(
        [{"params": [getattr(model, name)], "lr": rate} for name, rate in rates.items()]
    )


def _loss(rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.8 * (rgb - target).abs().mean() + 0.2 * (1.0 - ssim(rgb, target))


def test_model_trains_on_a_tiny_image():
    viewmat, K = _camera()
    hidden = GaussianModel.random_in_box(15, BOX, torch.Generator().manual_seed(10), sh_degree=0)
    with torch.no_grad():
        hidden.opacity_logits.fill_(2.0)
        target = hidden.rasterize(viewmat, K, 16, 16, background=0.0)[0].rgb
    model = GaussianModel.random_in_box(50, BOX, torch.Generator().manual_seed(11), sh_degree=0)
    optimizer = _optimizer(model)
    losses = []
    for _ in range(40):
        (rgb, depth, alpha), _ = model.rasterize(viewmat, K, 16, 16, background=0.0)
        loss = _loss(rgb, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    rgb, alpha = rgb.detach(), alpha.detach()
    assert rgb.shape == (16, 16, 3) and alpha.shape == depth.shape == (16, 16)
    assert float(rgb.min()) >= 0.0 and float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.25 * losses[0], losses
