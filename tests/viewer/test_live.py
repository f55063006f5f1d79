"""Viewing a model while it trains: the training layer's observer hook, snapshots every few
steps while someone looks, nothing written for them, the curves, and pause/resume."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mp3d import training
from mp3d.viewer.fields import FieldLayer
from mp3d.viewer.headless import free_port
from mp3d.viewer.live import LiveTraining
from mp3d.viewer.splats import SplatLayer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_NERF = dict(
    model="hash",
    batch_rays=128,
    n_levels=4,
    log2_table_size=10,
    finest_resolution=32,
    grid_resolution=8,
    checkpoint_every=1000,
)


@pytest.fixture
def viewer():
    from mp3d.viewer.app import Viewer

    viewer = Viewer(port=free_port())
    yield viewer
    viewer.stop()
    assert not training.OBSERVERS, "a test left an observer attached"


@pytest.fixture(scope="module")
def views(tiny_demo_scene):
    from mp3d.data.blender import load_blender

    return load_blender(tiny_demo_scene, "train", progress=False)


def test_nerf_training_is_shown_every_few_steps(viewer, views, tmp_path):
    from mp3d.nerf import TrainConfig, train

    live = LiveTraining(viewer, every=4).attach()
    live.only_when_watched = False  # as if a browser were connected
    try:
        train(views, TrainConfig(steps=10, **TINY_NERF), out_dir=tmp_path, progress=False)
    finally:
        live.detach()
    # Step 1, then steps 5 and 9, then the final checkpoint at step 10.
    assert live.snapshots == 4
    assert isinstance(live.layer, FieldLayer) and live.layer.step == 10
    assert viewer.server_layer is live.layer
    assert live.history["step"] == [float(s) for s in range(1, 11)]
    assert np.isfinite(live.history["psnr"]).all() and np.isfinite(live.history["loss"]).all()
    # The snapshot holds the trained weights: the same as the final checkpoint's.
    from mp3d.nerf import load_checkpoint

    saved, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    for name, value in saved.state_dict().items():
        np.testing.assert_array_equal(live.layer.model.state_dict()[name].numpy(), value.numpy())


def test_snapshots_write_no_checkpoint_and_wait_for_a_viewer(viewer, views, tmp_path):
    from mp3d.nerf import TrainConfig, train

    live = LiveTraining(viewer, every=2).attach()
    written = []
    original = training.write_checkpoint
    try:
        training.write_checkpoint = lambda *args, **kwargs: (
            written.append(args[0]) or original(*args, **kwargs)
        )
        train(views, TrainConfig(steps=6, **TINY_NERF), out_dir=tmp_path, progress=False)
    finally:
        training.write_checkpoint = original
        live.detach()
    assert len(written) == 1  # the final checkpoint only
    assert live.snapshots == 2  # step 1, and the final checkpoint: no browser in between


def test_pause_holds_training_until_resumed(viewer, views):
    from mp3d.nerf import TrainConfig, train

    live = LiveTraining(viewer, every=1000).attach()
    live.pause()
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (train(views, TrainConfig(steps=3, **TINY_NERF), progress=False), done.set())
    )
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while not live.history["step"] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        assert live.history["step"] == [1.0] and not done.is_set()  # held after step 1
        assert "paused at step 1" in live.status.content
        live.resume()
        thread.join(timeout=60)
        assert done.is_set() and live.history["step"] == [1.0, 2.0, 3.0]
        assert live.paused_seconds >= 0.4
    finally:
        live.detach()
        thread.join(timeout=60)


def test_splat_training_is_shown(viewer, views):
    import torch

    from mp3d.splat import GaussianModel, SplatConfig, train

    model = GaussianModel.random_in_box(
        200, views.aabb.reshape(2, 3), torch.Generator().manual_seed(0), sh_degree=1
    )
    live = LiveTraining(viewer, every=3).attach()
    live.only_when_watched = False
    try:
        train(views, model, SplatConfig(steps=6), progress=False)
    finally:
        live.detach()
    assert isinstance(live.layer, SplatLayer) and len(live.layer.model) == len(model)
    assert live.snapshots >= 3
    torch.testing.assert_close(live.layer.model.means, model.means.detach())


def test_bad_every(viewer):
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        LiveTraining(viewer, every=0)


def test_a_second_run_starts_over(viewer, views):
    from mp3d.nerf import TrainConfig, train

    live = LiveTraining(viewer, every=2).attach()
    live.only_when_watched = False
    try:
        for _ in range(2):
            train(views, TrainConfig(steps=4, **TINY_NERF), progress=False)
    finally:
        live.detach()
    assert live.snapshots == 6  # steps 1, 3 and the end of each run
    assert live.history["step"] == [1.0, 2.0, 3.0, 4.0]
