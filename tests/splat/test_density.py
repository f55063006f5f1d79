"""Adaptive density control: optimizer row surgery, gradient statistics, clone / split /
prune on hand-built Gaussians, Adam state after the surgery, opacity reset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mp3d.splat import DensityStats, GaussianModel, densify_and_prune, replace_rows, reset_opacity
from mp3d.splat.density import SPLIT_SCALE_DIVISOR
from mp3d.splat.model import inverse_sigmoid

EXTENT = 1.0
SMALL, LARGE = 0.005, 0.1  # around PERCENT_DENSE * EXTENT = 0.01
HIGH_GRAD = 1e-3  # above GRAD_THRESHOLD = 2e-4


def _adam(model: nn.Module) -> torch.optim.Adam:
    """Adam over every parameter, one group each, after one step so the moments exist."""
    optimizer = torch.optim.Adam([{"params": [p]} for p in model.parameters()], lr=0.01)
    loss = sum(
        (p * (torch.arange(p.numel()) + 1.0).reshape(p.shape)).sum() for p in model.parameters()
    )
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return optimizer


def _three_gaussians() -> GaussianModel:
    """0: small, 1: large (both will have a high gradient), 2: transparent."""
    means = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    quats = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.3, -0.2, 0.1], [1.0, 0, 0, 0]])
    scales = torch.tensor([[SMALL, SMALL / 2, SMALL], [LARGE, LARGE / 2, LARGE / 4], [SMALL] * 3])
    opacities = torch.tensor([0.5, 0.8, 0.001])
    sh = torch.arange(3 * 4 * 3, dtype=torch.float32).reshape(3, 4, 3)
    return GaussianModel(means, quats, torch.log(scales), inverse_sigmoid(opacities), sh)


def _stats(grads: list[float]) -> DensityStats:
    stats = DensityStats.zeros(len(grads))
    stats.grad_sum += torch.tensor(grads)
    stats.count += 1
    return stats


def _rows(model: GaussianModel) -> dict[str, torch.Tensor]:
    return {name: getattr(model, name).detach().clone() for name in model.PARAMETER_NAMES}


def _moments(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict[str, torch.Tensor]:
    state = optimizer.state[param]
    return {"exp_avg": state["exp_avg"].clone(), "exp_avg_sq": state["exp_avg_sq"].clone()}


# ----------------------------------------------------------------------------- replace_rows


def test_replace_rows_keeps_moments_of_kept_rows_and_zeros_new_ones():
    layer = nn.Linear(3, 4)
    optimizer = _adam(layer)
    old = layer.weight
    before = _moments(optimizer, old)
    keep = torch.tensor([True, False, True, True])
    appended = torch.ones(2, 3)
    new = replace_rows(optimizer, old, keep, appended)
    assert isinstance(new, nn.Parameter) and new.requires_grad
    torch.testing.assert_close(new.detach(), torch.cat([old.detach()[keep], appended]))
    assert optimizer.param_groups[0]["params"][0] is new
    assert old not in optimizer.state
    for key, value in before.items():
        torch.testing.assert_close(
            optimizer.state[new][key], torch.cat([value[keep], torch.zeros(2, 3)])
        )
    assert optimizer.state[new]["step"] == 1
    # The optimizer steps the new parameter.
    new.sum().backward()
    optimizer.step()
    assert not torch.equal(new.detach()[-1], appended[-1])


def test_replace_rows_before_the_first_step_and_bad_input():
    layer = nn.Linear(3, 4)
    optimizer = torch.optim.Adam(layer.parameters())
    new = replace_rows(optimizer, layer.bias, torch.ones(4, dtype=torch.bool), torch.zeros(1))
    assert new.shape == (5,) and new not in optimizer.state
    with pytest.raises(ValueError, match="keep"):
        replace_rows(optimizer, new, torch.ones(4, dtype=torch.bool), torch.zeros(1))
    with pytest.raises(ValueError, match="appended"):
        replace_rows(optimizer, new, torch.ones(5, dtype=torch.bool), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="param"):
        replace_rows(
            optimizer, nn.Parameter(torch.zeros(5)), torch.ones(5, dtype=torch.bool), torch.zeros(0)
        )


# ----------------------------------------------------------------------------- statistics


def test_stats_scale_gradients_to_ndc_and_average_over_visible_views():
    stats = DensityStats.zeros(3)
    grad = torch.tensor([[0.3, 0.0], [0.0, 0.4], [1.0, 1.0]])
    stats.update(
        grad, torch.tensor([True, True, False]), width=20, height=10, radii=torch.tensor([3, 5, 0])
    )
    stats.update(
        grad * 3,
        torch.tensor([True, False, False]),
        width=20,
        height=10,
        radii=torch.tensor([4, 0, 0]),
    )
    torch.testing.assert_close(stats.count, torch.tensor([2.0, 1.0, 0.0]))
    # x scaled by W/2 = 10, y by H/2 = 5: (3 + 9) / 2 and 2.
    torch.testing.assert_close(stats.mean_grads(), torch.tensor([6.0, 2.0, 0.0]))
    torch.testing.assert_close(stats.max_radii, torch.tensor([4.0, 5.0, 0.0]))


def test_stats_reject_a_missing_gradient():
    with pytest.raises(ValueError, match="retain_grad"):
        DensityStats.zeros(2).update(None, torch.ones(2, dtype=torch.bool), 4, 4)
    with pytest.raises(ValueError, match="visible"):
        DensityStats.zeros(2).update(torch.zeros(2, 2), torch.ones(3, dtype=torch.bool), 4, 4)


# ----------------------------------------------------------------------------- densify and prune


def test_clone_split_and_prune_counts_and_values():
    model = _three_gaussians()
    optimizer = _adam(model)
    before = _rows(model)
    stats = _stats([HIGH_GRAD, HIGH_GRAD, 0.0])
    counts = densify_and_prune(
        model, optimizer, stats, EXTENT, generator=torch.Generator().manual_seed(0)
    )
    assert counts == {"cloned": 1, "split": 1, "pruned": 1}
    # Rows: small original, its clone, then the two children of the large one.
    assert len(model) == 4
    after = _rows(model)
    for name in model.PARAMETER_NAMES:
        torch.testing.assert_close(after[name][:2], before[name][[0, 0]])
    for name in ("quats", "opacity_logits", "sh_dc", "sh_rest"):
        torch.testing.assert_close(after[name][2:], before[name][[1, 1]])
    torch.testing.assert_close(
        model.scales[2:].detach(), torch.exp(before["log_scales"][[1, 1]]) / SPLIT_SCALE_DIVISOR
    )
    offsets = after["means"][2:] - before["means"][1]
    assert bool((offsets.norm(dim=1) < 4 * LARGE).all()) and offsets.abs().sum() > 0
    assert not torch.equal(offsets[0], offsets[1])
    assert len(stats.grad_sum) == 4 and not stats.grad_sum.any() and not stats.count.any()


def test_low_gradients_are_left_alone_and_transparent_clones_pruned():
    model = _three_gaussians()
    counts = densify_and_prune(model, _adam(model), _stats([1e-4, 1e-4, 1.0]), EXTENT)
    # As in 3DGS, pruning runs after densification, on the clones too.
    assert counts == {"cloned": 1, "split": 0, "pruned": 2}
    assert len(model) == 2


def test_prune_by_screen_and_world_size_only_when_asked():
    model = _three_gaussians()
    optimizer = _adam(model)
    stats = _stats([0.0, 0.0, 0.0])
    stats.max_radii = torch.tensor([30.0, 1.0, 1.0])
    # Gaussian 0 is too large on screen, 1 in the world (LARGE > 0.1 * 0.5), 2 transparent.
    counts = densify_and_prune(model, optimizer, stats, 0.5, max_screen_size=20)
    assert counts["pruned"] == 3 and len(model) == 0
    model = _three_gaussians()
    counts = densify_and_prune(model, _adam(model), _stats([0.0, 0.0, 0.0]), 0.5)
    assert counts["pruned"] == 1 and len(model) == 2


def test_optimizer_state_follows_the_surgery():
    model = _three_gaussians()
    optimizer = _adam(model)
    before = {name: _moments(optimizer, getattr(model, name)) for name in model.PARAMETER_NAMES}
    densify_and_prune(model, optimizer, _stats([HIGH_GRAD, HIGH_GRAD, 0.0]), EXTENT)
    optimized = [p for group in optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in optimized] == [id(p) for p in model.parameters()]
    assert set(optimizer.state) == set(model.parameters())
    for name in model.PARAMETER_NAMES:
        state = optimizer.state[getattr(model, name)]
        for key in ("exp_avg", "exp_avg_sq"):
            assert state[key].shape == getattr(model, name).shape
            torch.testing.assert_close(state[key][0], before[name][key][0])
            assert not state[key][1:].any(), (name, key)
    previous = _rows(model)
    viewmat = torch.eye(4)
    viewmat[:3, 3] = torch.tensor([-1.0, 0.0, 1.0])
    K = torch.tensor([[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]])
    model.rasterize(viewmat, K, 16, 16)[0].rgb.sum().backward()
    optimizer.step()
    assert not torch.equal(model.means.detach(), previous["means"])


def test_densify_after_a_rendered_view():
    model = GaussianModel.random_in_box(
        30,
        torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]),
        torch.Generator().manual_seed(0),
        sh_degree=0,
    )
    optimizer = _adam(model)
    viewmat = torch.eye(4)
    viewmat[2, 3] = 4.0
    K = torch.tensor([[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]])
    stats = DensityStats.zeros(len(model))
    (rgb, _, _), info = model.rasterize(viewmat, K, 16, 16)
    info["means2d"].retain_grad()
    (rgb - 0.3).abs().mean().backward()
    stats.update(info["means2d"].grad, info["visible"], 16, 16, info["radii"])
    assert stats.count.sum() > 0 and stats.grad_sum.sum() > 0
    counts = densify_and_prune(
        model, optimizer, stats, 2.0, grad_threshold=1e-6, max_screen_size=20
    )
    assert len(model) == 30 + counts["cloned"] + counts["split"] - counts["pruned"]
    assert counts["cloned"] + counts["split"] > 0
    optimizer.zero_grad()
    model.rasterize(viewmat, K, 16, 16)[0].rgb.mean().backward()
    optimizer.step()


def test_densify_rejects_stale_stats():
    model = _three_gaussians()
    with pytest.raises(ValueError, match="stats"):
        densify_and_prune(model, _adam(model), DensityStats.zeros(2), EXTENT)
    with pytest.raises(ValueError, match="scene_extent"):
        densify_and_prune(model, _adam(model), DensityStats.zeros(3), 0.0)


# ----------------------------------------------------------------------------- opacity reset


def test_reset_opacity_caps_opacities_and_zeros_their_moments():
    model = _three_gaussians()
    optimizer = _adam(model)
    logits = model.opacity_logits
    scales_moments = _moments(optimizer, model.log_scales)
    transparent = model.opacities[2].item()
    reset_opacity(model, optimizer, 0.01)
    assert model.opacity_logits is logits
    torch.testing.assert_close(model.opacities.detach(), torch.tensor([0.01, 0.01, transparent]))
    assert not optimizer.state[logits]["exp_avg"].any()
    assert not optimizer.state[logits]["exp_avg_sq"].any()
    torch.testing.assert_close(
        optimizer.state[model.log_scales]["exp_avg"], scales_moments["exp_avg"]
    )
    with pytest.raises(ValueError, match="value"):
        reset_opacity(model, optimizer, 1.5)
