"""Render on move without a browser: previews while the camera moves, the refined image once it
is still, and renders abandoned when the camera moves again."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mp3d.viewer.progressive import FULL, PREVIEW, ProgressiveRenderer, ViewRequest, strip_cameras

pytestmark = pytest.mark.usefixtures("one_thread")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def view(x: float = 0.0) -> ViewRequest:
    return ViewRequest((1.0, 0.0, 0.0, 0.0), (x, 0.0, -3.0), math.radians(60), 1.5)


def make(clock, on_strip=None, **kwargs):
    shown, strips = [], []

    def render(camera):
        strips.append((camera.width, camera.height))
        if on_strip is not None:
            on_strip(len(strips))
        return np.full((camera.height, camera.width, 3), 0.5, dtype=np.float32)

    renderer = ProgressiveRenderer(
        render,
        lambda image, level: shown.append((level, image.shape)),
        preview_side=30,
        full_side=120,
        settle_s=0.2,
        n_strips=4,
        clock=clock,
        **kwargs,
    )
    return renderer, shown, strips


def test_preview_while_moving_then_full_when_still():
    clock = Clock()
    renderer, shown, _ = make(clock)
    assert renderer.next_job() is None  # no camera yet
    renderer.request(view())
    job = renderer.next_job()
    assert job.level == PREVIEW
    assert renderer.run_job(job)
    assert shown == [(PREVIEW, (20, 30, 3))]  # aspect 1.5, 30 px on the longer side
    clock.now += 0.1
    assert renderer.next_job() is None  # not still long enough for the refined image
    clock.now += 0.15
    job = renderer.next_job()
    assert job.level == FULL
    assert renderer.run_job(job)
    assert shown[-1] == (FULL, (80, 120, 3))
    assert renderer.next_job() is None  # done until the camera moves


def test_moving_again_abandons_the_render_in_progress():
    clock = Clock()
    renderer = None

    def move_on_second_strip(n_strips_rendered):
        if n_strips_rendered == 2:
            renderer.request(view(1.0))

    renderer, shown, strips = make(clock, on_strip=move_on_second_strip)
    renderer.request(view(0.0))
    clock.now += 1.0
    job = renderer.next_job()
    assert job.level == FULL  # still for a second: straight to the refined image
    assert not renderer.run_job(job)
    assert len(strips) == 2 and shown == [] and renderer.abandoned == 1
    job = renderer.next_job()
    assert job.level == PREVIEW and job.view == view(1.0)  # the newer view, from a preview


def test_refresh_renders_the_same_view_refined():
    clock = Clock()
    renderer, shown, _ = make(clock)
    renderer.request(view())
    clock.now += 1.0
    renderer.run_job(renderer.next_job())
    generation = renderer.generation
    renderer.refresh()
    job = renderer.next_job()
    assert job.level == FULL and job.generation == generation + 1


def test_strips_tile_the_image_with_the_same_rays():
    renderer_camera = view().camera(50)
    strips = strip_cameras(renderer_camera, 4)
    assert sum(camera.height for _, camera in strips) == renderer_camera.height
    origins, directions = renderer_camera.rays()
    for top, camera in strips:
        _, strip_directions = camera.rays()
        torch.testing.assert_close(strip_directions, directions[top : top + camera.height])
    with pytest.raises(ValueError, match="n_strips must be an int >= 1"):
        strip_cameras(renderer_camera, 0)


def test_thread_follows_the_camera_and_reports_errors():
    errors = []
    shown = []

    def render(camera):
        if camera.width == 7:
            raise RuntimeError("render failed")
        return np.zeros((camera.height, camera.width, 3), dtype=np.float32)

    renderer = ProgressiveRenderer(
        render,
        lambda image, level: shown.append(level),
        preview_side=8,
        full_side=16,
        settle_s=0.05,
        on_error=errors.append,
    ).start()
    try:
        renderer.request(view())
        deadline = time.monotonic() + 5.0
        while FULL not in shown and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shown[:1] == [PREVIEW] and FULL in shown
        renderer.request(ViewRequest((1.0, 0, 0, 0), (0.0, 0, -3.0), 1.0, 7 / 8))
        deadline = time.monotonic() + 5.0
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert errors and "render failed" in str(errors[0])
    finally:
        renderer.stop()


def test_bad_settings():
    with pytest.raises(ValueError, match="preview_side and full_side"):
        ProgressiveRenderer(lambda c: None, lambda i, l: None, preview_side=100, full_side=50)
    with pytest.raises(ValueError, match="settle_s must be"):
        ProgressiveRenderer(lambda c: None, lambda i, l: None, settle_s=-1.0)


def test_strip_count_may_follow_the_content():
    clock = Clock()
    counts = iter([4, 1])
    renderer, shown, strips = make(clock)
    renderer.n_strips = lambda: next(counts)
    renderer.request(view())
    renderer.run_job(renderer.next_job())
    assert len(strips) == 4
    renderer.refresh()
    renderer.run_job(renderer.next_job())
    assert len(strips) == 5  # one more strip: the whole image at once
