"""Cameras: hand-computed projections, conventions and ray round trips."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d import cameras


def test_intrinsics_from_fov_hand_computed():
    K = cameras.intrinsics_from_fov(math.radians(90.0), 200, 100)
    # tan(45 deg) = 1, so the focal length is half the width.
    torch.testing.assert_close(K, torch.tensor([[100.0, 0, 100], [0, 100, 50], [0, 0, 1]]))
    with pytest.raises(ValueError, match="fov must be in"):
        cameras.intrinsics_from_fov(4.0, 10, 10)


def test_project_hand_computed_point():
    K = cameras.intrinsics(100.0, 120.0, 50.0, 40.0)
    viewmat = torch.eye(4)
    viewmat[:3, 3] = torch.tensor([0.0, 0.0, 5.0])  # world origin 5 units in front
    uv, depth = cameras.project(torch.tensor([[1.0, 2.0, 5.0]]), viewmat, K)
    # camera point (1, 2, 10): u = 100 * 1/10 + 50 = 60, v = 120 * 2/10 + 40 = 64
    torch.testing.assert_close(uv, torch.tensor([[60.0, 64.0]]))
    torch.testing.assert_close(depth, torch.tensor([10.0]))


def test_look_at_orientation():
    """A camera on -y looking at the origin with z up sees +x to the right and +z up."""
    viewmat = cameras.look_at(torch.tensor([0.0, -4.0, 0.0]), torch.zeros(3))
    K = cameras.intrinsics(100.0, 100.0, 50.0, 50.0)
    uv, depth = cameras.project(torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 1]]), viewmat, K)
    torch.testing.assert_close(uv[0], torch.tensor([50.0, 50.0]))
    assert uv[1, 0] > 50 and abs(uv[1, 1] - 50) < 1e-4  # right
    assert uv[2, 1] < 50 and abs(uv[2, 0] - 50) < 1e-4  # up is smaller row
    torch.testing.assert_close(depth, torch.tensor([4.0, 4.0, 4.0]))
    with pytest.raises(ValueError, match="up must not be parallel"):
        cameras.look_at(torch.tensor([0.0, 0.0, 4.0]), torch.zeros(3))


def test_invert_rigid_matches_inverse():
    viewmat = cameras.look_at(torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]]), torch.zeros(2, 3))
    torch.testing.assert_close(
        cameras.invert_rigid(viewmat), torch.linalg.inv(viewmat), atol=1e-6, rtol=1e-6
    )


def test_opengl_opencv_conversion():
    c2w_gl = torch.eye(4)  # OpenGL camera at the origin looking down -z
    c2w_cv = cameras.opengl_to_opencv(c2w_gl)
    # The OpenCV forward axis (third column) must point down world -z, and y down world -y.
    torch.testing.assert_close(c2w_cv[:3, 2], torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(c2w_cv[:3, 1], torch.tensor([0.0, -1.0, 0.0]))
    torch.testing.assert_close(cameras.opencv_to_opengl(c2w_cv), c2w_gl)


def test_unproject_round_trip():
    viewmat = cameras.look_at(torch.tensor([3.0, -2.0, 1.5]), torch.tensor([0.1, 0.2, 0.0]))
    K = cameras.intrinsics_from_fov(0.8, 64, 48)
    points = torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    uv, depth = cameras.project(points, viewmat, K)
    torch.testing.assert_close(
        cameras.unproject(uv, depth, viewmat, K), points, atol=1e-5, rtol=1e-5
    )


def test_rays_pass_through_pixel_centres():
    camera = cameras.Camera(
        cameras.intrinsics_from_fov(0.7, 32, 24),
        cameras.look_at(torch.tensor([0.0, -3.0, 2.0]), torch.zeros(3)),
        32,
        24,
    )
    origins, directions = camera.rays()
    assert origins.shape == (24, 32, 3) and directions.shape == (24, 32, 3)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(24, 32))
    points = (origins + 2.5 * directions).reshape(-1, 3)
    uv, _ = cameras.project(points, camera.viewmat, camera.K)
    torch.testing.assert_close(
        uv.reshape(24, 32, 2), cameras.pixel_centers(32, 24), atol=1e-4, rtol=1e-5
    )
    torch.testing.assert_close(origins[0, 0], torch.tensor([0.0, -3.0, 2.0]))


def test_random_rays_match_image_rays():
    K = cameras.intrinsics_from_fov(0.7, 16, 12)
    c2ws = cameras.invert_rigid(
        cameras.look_at(torch.tensor([[0.0, -3, 1], [3.0, 0, 1]]), torch.zeros(2, 3))
    )
    Ks = K.expand(2, 3, 3)
    origins, directions, image, pixels = cameras.random_rays(
        Ks, c2ws, 16, 12, 100, generator=torch.Generator().manual_seed(1)
    )
    assert origins.shape == (100, 3) and directions.shape == (100, 3)
    assert int(image.min()) >= 0 and int(image.max()) <= 1
    assert bool((pixels[:, 0] < 16).all()) and bool((pixels[:, 1] < 12).all())
    for k in range(100):
        o, d = cameras.image_rays(K, c2ws[image[k]], 16, 12)
        torch.testing.assert_close(directions[k], d[pixels[k, 1], pixels[k, 0]])
        torch.testing.assert_close(origins[k], o[pixels[k, 1], pixels[k, 0]])
