"""Samplers: bins sorted and inside [near, far], importance samples where weights are high,
and the occupancy grid's march and carving."""

from __future__ import annotations

import torch

from mp3d.cameras import intrinsics_from_fov, look_at
from mp3d.nerf.occupancy import OccupancyGrid
from mp3d.nerf.samplers import (
    importance_bins,
    merge_bins,
    pack_bins,
    ray_aabb,
    stratified_bins,
)

G = torch.Generator().manual_seed(0)


def test_stratified_bins_sorted_and_bounded():
    near, far = torch.tensor([2.0, 1.0, 3.5]), torch.tensor([6.0, 1.5, 4.0])
    for jitter in (False, True):
        bins = stratified_bins(near, far, 32, jitter, G)
        assert bins.shape == (3, 33)
        assert bool((bins[:, 1:] >= bins[:, :-1]).all())
        torch.testing.assert_close(bins[:, 0], near)
        torch.testing.assert_close(bins[:, -1], far)
    fixed = stratified_bins(near, far, 4, False)
    torch.testing.assert_close(fixed[0], torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]))


def test_importance_samples_follow_weights():
    bins = stratified_bins(torch.tensor([2.0]), torch.tensor([6.0]), 40, False)
    weights = torch.zeros(1, 40)
    weights[0, 20:24] = 1.0  # all mass in [4.0, 4.4]
    samples = importance_bins(bins, weights, 200, jitter=True, generator=G)
    assert samples.shape == (1, 200)
    assert bool((samples[:, 1:] >= samples[:, :-1]).all())
    assert float(samples.min()) >= 2.0 and float(samples.max()) <= 6.0
    inside = ((samples >= 4.0) & (samples <= 4.4)).float().mean()
    assert float(inside) > 0.95


def test_merge_and_pack():
    bins = torch.tensor([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]])
    merged = merge_bins(bins, torch.tensor([[0.5], [6.5]]))
    torch.testing.assert_close(merged, torch.tensor([[0.0, 0.5, 1.0, 2.0], [5.0, 6.0, 6.5, 7.0]]))
    t_starts, t_ends, ray_indices = pack_bins(merged)
    assert ray_indices.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(t_starts, torch.tensor([0.0, 0.5, 1.0, 5.0, 6.0, 6.5]))
    torch.testing.assert_close(t_ends, torch.tensor([0.5, 1.0, 2.0, 6.0, 6.5, 7.0]))


def test_ray_aabb():
    origins = torch.tensor([[0.0, 0.0, -5.0], [3.0, 3.0, -5.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    entry, exit_ = ray_aabb(origins, directions, torch.tensor([-1.0, -1, -1, 1, 1, 1]))
    assert entry[0].item() == 4.0 and exit_[0].item() == 6.0
    assert entry[1] >= exit_[1]  # a miss


def test_march_keeps_occupied_contiguous_steps():
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=8)
    grid.update(lambda p: 100.0 * (p[:, 0] > 0).float(), step_size=0.1)  # only x > 0 occupied
    origins = torch.tensor([[-3.0, 0.1, 0.1], [0.5, 0.5, -3.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for jitter in (False, True):
        t_starts, t_ends, ray_indices = grid.march(origins, directions, 0.0, 10.0, 0.1, jitter, G)
        assert bool((t_ends > t_starts).all())
        assert bool((ray_indices[1:] >= ray_indices[:-1]).all())
        mids = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
        assert bool((mids[:, 0] > 0).all())  # only occupied cells
        assert bool((mids.abs() <= 1.0).all())  # inside the box
        first = ray_indices == 0
        assert (
            float(t_starts[first].min()) >= 3.0 - 1e-5 and float(t_ends[first].max()) <= 4.0 + 1e-5
        )
        # consecutive steps of a ray share their edges
        same_ray = ray_indices[1:] == ray_indices[:-1]
        gaps = (t_starts[1:] - t_ends[:-1])[same_ray]
        assert float(gaps.abs().max()) < 1e-5
        assert int((ray_indices == 1).sum()) >= 15  # the second ray crosses 2 units of x > 0


def test_carving_removes_cells_seen_as_background():
    """Views of a sphere: cells outside every silhouette's dilation are carved away."""
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=16)
    K = intrinsics_from_fov(0.8, 64, 64)
    eyes = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0], [-4.0, 0.1, 0.2]])
    viewmats = look_at(eyes, torch.zeros(4, 3), up=torch.tensor([0.0, 0.3, 1.0]))
    from mp3d.cameras import image_rays, invert_rigid

    alphas = []
    for viewmat in viewmats:
        origins, directions = image_rays(K, invert_rigid(viewmat), 64, 64)
        # ray-sphere test for radius 0.5 at the origin
        b = (origins * directions).sum(-1)
        c = (origins * origins).sum(-1) - 0.25
        alphas.append((b * b - c > 0).float())
    grid.carve(K.expand(4, 3, 3), viewmats, torch.stack(alphas))
    centres = grid.cell_centres().reshape(16, 16, 16, 3)
    radius = centres.norm(dim=-1)
    assert bool(grid.hull[radius < 0.5].all())  # the object survives
    assert not bool(grid.hull[radius > 1.2].any())  # far corners are carved
    assert bool((grid.occupied <= grid.hull).all())
