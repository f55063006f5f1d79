"""The occupancy-grid march: the C++ kernel keeps exactly the reference's steps, and the
reference keeps exactly the occupied, positive-length steps of each ray's span."""

from __future__ import annotations

import pytest
import torch

from mp3d import _backend
from mp3d.ops.ray_marching import march_occupancy, ray_aabb

needs_cpp = pytest.mark.skipif(
    _backend.kernel_missing("ray_marching", "cpu") is not None,
    reason="no compiled ray_marching kernel",
)
AABB = torch.tensor([-1.0, -1.5, -1.0, 1.0, 1.0, 2.0])


def scene(n_rays: int = 300, res: int = 12, fill: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n_rays, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, -4.0])
    targets = torch.rand(n_rays, 3, generator=g) * 2.4 - 1.2
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    directions[:5] = torch.tensor([1.0, 0.0, 0.0])  # parallel to the box's faces: misses
    occupied = torch.rand(res, res, res, generator=g) < fill
    offsets = torch.rand(n_rays, generator=g)
    offsets[5:8] = torch.tensor([0.0, 1.0, 0.5])  # torch.rand can draw 0: an empty first step
    return origins, directions, occupied, offsets


@needs_cpp
@pytest.mark.parametrize("jitter", [False, True])
@pytest.mark.parametrize("res,fill,step", [(12, 0.3, 0.05), (5, 0.8, 0.013), (32, 0.05, 0.2)])
def test_the_kernel_keeps_exactly_the_references_steps(jitter, res, fill, step):
    origins, directions, occupied, offsets = scene(res=res, fill=fill)
    args = (origins, directions, occupied, AABB, 2.0, 6.5, step, offsets if jitter else None)
    reference = march_occupancy(*args, impl="torch")
    kernel = march_occupancy(*args, impl="cpp")
    assert reference[0].numel() > 100
    for a, b in zip(kernel, reference, strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b)


def test_the_reference_keeps_the_occupied_positive_steps_of_each_span():
    origins, directions, occupied, offsets = scene(n_rays=60, res=8, fill=0.4)
    near, far, step = 2.0, 6.5, 0.07
    starts, ends, rays = march_occupancy(
        origins, directions, occupied, AABB, near, far, step, offsets, impl="torch"
    )
    entry, exit_ = ray_aabb(origins, directions, AABB)
    entry, exit_ = entry.clamp(min=near), exit_.clamp(max=far)
    assert bool((rays[1:] >= rays[:-1]).all())  # packed in ray order
    for r in range(origins.shape[0]):
        expected = []
        if exit_[r] > entry[r]:
            t = float(entry[r])
            edges = [t]
            k = 1
            while edges[-1] < float(exit_[r]) - 1e-6:
                edges.append(
                    min(float(entry[r]) + (k + float(offsets[r]) - 1) * step, float(exit_[r]))
                )
                k += 1
            for a, b in zip(edges[:-1], edges[1:]):
                point = origins[r] + directions[r] * (a + b) / 2
                cell = ((point - AABB[:3]) / (AABB[3:] - AABB[:3]) * 8).floor().long()
                if b > a and bool(((cell >= 0) & (cell < 8)).all()) and occupied[tuple(cell)]:
                    expected.append((a, b))
        mine = rays == r
        got = list(zip(starts[mine].tolist(), ends[mine].tolist()))
        assert len(got) == len(expected), r
        for (a, b), (c, d) in zip(got, expected):
            assert abs(a - c) < 1e-5 and abs(b - d) < 1e-5


@pytest.mark.parametrize("impl", ["torch", pytest.param("cpp", marks=needs_cpp)])
def test_empty_cases_give_empty_packed_samples(impl):
    origins, directions, occupied, _ = scene(n_rays=20)
    cases = [
        (origins[:0], directions[:0], occupied),  # no rays
        (origins, directions, torch.zeros_like(occupied)),  # nothing occupied
        (origins + 100.0, directions, occupied),  # every ray misses the box
    ]
    for o, d, occ in cases:
        starts, ends, rays = march_occupancy(o, d, occ, AABB, 0.0, 200.0, 0.1, impl=impl)
        assert starts.shape == ends.shape == rays.shape == (0,)
        assert rays.dtype == torch.int64
    full = march_occupancy(origins, directions, torch.ones_like(occupied), AABB, 0.0, 9.0, 0.1)
    assert full[0].numel() > 0 and bool((full[1] > full[0]).all())


def test_bad_inputs_name_the_argument():
    origins, directions, occupied, offsets = scene(n_rays=10)
    good = dict(
        origins=origins, directions=directions, occupied=occupied, aabb=AABB,
        near=2.0, far=6.0, step_size=0.1,
    )  # fmt: skip
    cases = [
        ({"origins": origins.double()}, "origins must have dtype torch.float32"),
        ({"directions": directions[:5]}, r"directions must have shape \[10, 3\]"),
        ({"occupied": occupied.float()}, "occupied must have dtype torch.bool"),
        ({"occupied": occupied[:, :, :4]}, r"occupied must have shape \[res, res, res\]"),
        ({"aabb": AABB[:5]}, r"aabb must have shape \[6\]"),
        ({"aabb": AABB[[3, 4, 5, 0, 1, 2]]}, "aabb must be"),
        ({"step_size": 0.0}, "step_size must be > 0"),
        ({"step_size": float("nan")}, "step_size must be a finite number"),
        ({"near": 6.0, "far": 2.0}, "near and far"),
        ({"offsets": offsets * 2 + 0.1}, r"offsets must lie in \[0, 1\]"),
        ({"offsets": offsets - 1.0}, r"offsets must lie in \[0, 1\]"),
        ({"offsets": offsets[:3]}, r"offsets must have shape \[10\]"),
        ({"origins": origins.clone().index_fill_(0, torch.tensor([1]), float("nan"))}, "finite"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            march_occupancy(**{**good, **change})
    with pytest.raises(ValueError, match="impl must be one of"):
        march_occupancy(**good, impl="fortran")


def test_the_occupancy_grid_marches_through_the_op():
    from mp3d.nerf.occupancy import OccupancyGrid

    origins, directions, occupied, _ = scene(n_rays=50, res=16)
    grid = OccupancyGrid(AABB, resolution=16)
    grid.occupied = occupied
    got = grid.march(origins, directions, 2.0, 6.5, 0.05, jitter=False)
    want = march_occupancy(origins, directions, occupied, AABB, 2.0, 6.5, 0.05, impl="torch")
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    points = origins[got[2]] + directions[got[2]] * ((got[0] + got[1]) / 2)[:, None]
    assert bool(grid.is_occupied(points).all())
