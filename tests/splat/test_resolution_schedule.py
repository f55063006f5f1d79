"""Coarse-to-fine training (SplatConfig.resolution_schedule): the views' sizes and
intrinsics at each factor, the steps that render at each size, screen sizes those of the
image rendered, and bad schedules named."""

from __future__ import annotations

import pytest
import torch

from mp3d.cameras import project
from mp3d.splat import GaussianModel, SplatConfig, train
from mp3d.splat.trainer import _optimizer, _train_step, downscale_views, scene_extent

from .test_trainer import START_BOX


def _start(n: int = 60, seed: int = 1) -> GaussianModel:
    return GaussianModel.random_in_box(n, START_BOX, torch.Generator().manual_seed(seed))


def test_downscaled_views_average_blocks_and_scale_intrinsics(gaussian_scene):
    views = gaussian_scene.views
    images, Ks = downscale_views(views.images, views.Ks, 2)
    assert images.shape == (len(views), 12, 12, 3)
    torch.testing.assert_close(images[0, 3, 5], views.images[0, 6:8, 10:12].mean(dim=(0, 1)))
    # A point lands at the same place of the image, in the smaller image's pixels.
    points = torch.tensor([[0.1, -0.2, 0.3], [0.4, 0.2, -0.1]])
    viewmat = views.camera(0).viewmat
    full, _ = project(points, viewmat, views.Ks[0])
    small, _ = project(points, viewmat, Ks[0])
    torch.testing.assert_close(small, full / 2)
    same_images, same_Ks = downscale_views(views.images, views.Ks, 1)
    assert same_images is views.images and same_Ks is views.Ks
    # Sizes that do not divide drop the last rows and columns.
    odd, _ = downscale_views(views.images[:, :23, :21], views.Ks, 4)
    assert odd.shape[1:3] == (5, 5)


def test_schedule_picks_the_factor_by_progress():
    config = SplatConfig(resolution_schedule=((0.3, 4), (0.5, 2)))
    assert [config.downscale_at(p) for p in (0.0, 0.29, 0.3, 0.49, 0.5, 1.0)] == [4, 4, 2, 2, 1, 1]
    assert SplatConfig().downscale_at(0.0) == 1
    assert SplatConfig(resolution_schedule=[[0.5, 2]]).resolution_schedule == ((0.5, 2),)


def test_steps_render_at_the_scheduled_sizes(gaussian_scene, monkeypatch):
    sizes = []
    real = GaussianModel.rasterize

    def recording(self, viewmat, K, width, height, *args, **kwargs):
        sizes.append((width, height))
        return real(self, viewmat, K, width, height, *args, **kwargs)

    monkeypatch.setattr(GaussianModel, "rasterize", recording)
    config = SplatConfig(steps=20, densify_from=10_000, resolution_schedule=((0.5, 2),))
    train(gaussian_scene.views, _start(), config, device="cpu", progress=False)
    # Progress before step k is (k - 1) / 20: steps 1-10 run at half size.
    assert sizes == [(12, 12)] * 10 + [(24, 24)] * 10


def test_screen_sizes_are_those_of_the_image_rendered(gaussian_scene):
    views = gaussian_scene.views
    config = SplatConfig(steps=10)
    maxima = []
    for factor in (1, 2):
        model = _start(seed=4)
        extent = scene_extent(views.c2ws)
        optimizer = _optimizer(model, config, extent)
        strategy = config.density_control(extent)
        images, Ks = downscale_views(views.images, views.Ks, factor)
        viewmat = views.camera(0).viewmat
        view = (viewmat, Ks[0], images[0], views.background_rgb)
        _train_step(model, optimizer, strategy, config, view, 1, 0.0, None)
        with torch.no_grad():
            height, width = images.shape[1:3]
            _, info = _start(seed=4).rasterize(viewmat, Ks[0], width, height)
        torch.testing.assert_close(strategy.stats.max_radii, info["radii"].float())
        maxima.append(float(strategy.stats.max_radii.max()))
    # Half the size on a half-size image: a coarse phase prunes as a run at its size does.
    assert maxima[1] == pytest.approx(maxima[0] / 2, rel=0.25)


@pytest.mark.parametrize(
    "schedule",
    [
        ((0.5, 0),),
        ((0.5, 2.0),),
        ((0.0, 2),),
        ((1.5, 2),),
        ((0.5, 4), (0.3, 2)),
        ((0.5,),),
        (0.5, 2),
        "coarse",
    ],
)
def test_bad_schedules_are_named(schedule):
    with pytest.raises(ValueError, match="resolution_schedule must be pairs"):
        SplatConfig(resolution_schedule=schedule)


def test_a_schedule_too_coarse_for_the_views_is_refused(gaussian_scene):
    config = SplatConfig(steps=2, resolution_schedule=((0.5, 4),))
    with pytest.raises(ValueError, match="at least 11x11 pixels.*24x24 downscaled by 4"):
        train(gaussian_scene.views, _start(), config, device="cpu", progress=False)
    config = SplatConfig(steps=2, ssim_weight=0.0, resolution_schedule=((0.5, 32),))
    with pytest.raises(ValueError, match="downscales by 32"):
        train(gaussian_scene.views, _start(), config, device="cpu", progress=False)
