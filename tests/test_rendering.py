"""The shared rendering layer: one output type, evaluation files, turntables, depth colours."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mp3d.cameras import Orbit, intrinsics_from_fov
from mp3d.data.blender import BlenderScene
from mp3d.rendering import (
    Rendering,
    depth_image,
    evaluate,
    evaluation_summary,
    render_turntable,
    turbo,
)


class FlatModel(torch.nn.Module):
    """Renders a constant colour at depth 2 with full opacity on any camera."""

    def __init__(self, colour):
        super().__init__()
        self.register_buffer("colour", torch.tensor(colour))

    def render(self, camera, background=(1.0, 1.0, 1.0)) -> Rendering:
        h, w = camera.height, camera.width
        return Rendering(self.colour.expand(h, w, 3), torch.full((h, w), 2.0), torch.ones(h, w))


def _views(n=3, size=16, colour=(0.5, 0.25, 0.75)):
    K = intrinsics_from_fov(0.7, size, size).expand(n, 3, 3).clone()
    c2ws = torch.linalg.inv(Orbit.around(radius=3.0).viewmats(n))
    images = torch.tensor(colour).expand(n, size, size, 3).clone()
    return BlenderScene(
        images, torch.ones(n, size, size), K, c2ws, ["a/x.png", "y", "z"][:n], torch.ones(3)
    )


def test_evaluate_scores_and_writes_the_same_files_for_any_model(tmp_path):
    views = _views()
    perfect = evaluate(FlatModel([0.5, 0.25, 0.75]), views, tmp_path, progress=False)
    assert perfect["psnr"] > 60 and perfect["ssim"] == pytest.approx(1.0)
    assert [v["name"] for v in perfect["views"]] == ["a/x.png", "y", "z"]
    assert (tmp_path / "a_x_rgb.png").is_file() and (tmp_path / "z_depth.png").is_file()
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["psnr"] == pytest.approx(perfect["psnr"])
    # A function camera -> Rendering works as well as a model, and wrong colours score low.
    grey = evaluate(lambda camera: FlatModel([0.0, 0.0, 0.0]).render(camera), views, progress=False)
    assert grey["psnr"] < 10


def test_evaluate_times_the_render_alone_and_reports_rays_per_second(monkeypatch):
    clock = iter([10.0, 10.5, 20.0, 21.5])  # renders of 0.5 s and 1.5 s
    monkeypatch.setattr("mp3d.rendering.perf_counter", lambda: next(clock))
    metrics = evaluate(FlatModel([0.5, 0.25, 0.75]), _views(n=2, size=16), progress=False)
    assert [v["seconds"] for v in metrics["views"]] == [0.5, 1.5]
    assert metrics["seconds"] == 1.0 and metrics["rays_per_second"] == 2 * 16 * 16 / 2.0
    assert evaluation_summary(metrics) == {
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "render_seconds": 1.0,
        "render_rays_per_second": 256.0,
    }


def test_turntable_writes_every_frame(tmp_path):
    cameras = Orbit.around(radius=3.0).cameras(intrinsics_from_fov(0.7, 8, 6), 8, 6, 4)

    def by_direction(camera):  # a colour that changes as the camera turns
        colour = (camera.viewmat[0, :3] + 1) / 2
        return Rendering(colour.expand(6, 8, 3), torch.ones(6, 8), torch.ones(6, 8))

    gif = render_turntable(
        by_direction, cameras, tmp_path / "t.gif", frames_dir=tmp_path / "frames", progress=False
    )
    with Image.open(gif) as image:
        assert image.n_frames == 4 and image.size == (8, 6)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir())[-1] == "frame_003.png"
    with pytest.raises(ValueError, match="at least one camera"):
        render_turntable(FlatModel([1.0, 0.0, 0.0]), [], tmp_path / "none.gif")


def test_depth_images_use_the_turbo_colour_map():
    ends = turbo(torch.tensor([0.1, 0.5, 0.95]))
    assert ends.shape == (3, 3) and bool(((ends >= 0) & (ends <= 1)).all())
    assert int(ends[0].argmax()) == 2 and int(ends[1].argmax()) == 1 and int(ends[2].argmax()) == 0
    depth = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    opacity = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    image = depth_image(depth, opacity)
    assert image.shape == (2, 2, 3)
    torch.testing.assert_close(image[0, 0], turbo(torch.tensor(0.95)))  # nearest: red end
    torch.testing.assert_close(image[1, 0], turbo(torch.tensor(0.1)))  # farthest: blue end
    assert float(image[1, 1].abs().sum()) == 0.0  # empty pixels stay black
