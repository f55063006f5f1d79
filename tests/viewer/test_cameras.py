"""viser <-> mp3d camera conversions: the same pose both ways, the same rays as mp3d's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mp3d.cameras import look_at
from mp3d.transforms import project_points
from mp3d.viewer.cameras import camera_from_pose, fov_y_of, pose_from_viewmat, resolution_for

pytestmark = pytest.mark.usefixtures("one_thread")


def test_round_trip_viewmat_pose_camera():
    viewmat = look_at(torch.tensor([2.0, -3.0, 1.5]), torch.tensor([0.1, 0.2, -0.3]))
    wxyz, position = pose_from_viewmat(viewmat)
    np.testing.assert_allclose(position, [2.0, -3.0, 1.5], atol=1e-5)
    camera = camera_from_pose(wxyz, position, math.radians(60), 64, 48)
    torch.testing.assert_close(camera.viewmat, viewmat.float(), atol=1e-5, rtol=0)
    assert fov_y_of(camera.K, 48) == pytest.approx(math.radians(60))


def test_viser_axes_are_opencv():
    # Identity rotation: the camera looks down world +z with image x along world +x and
    # image y (down) along world +y, which is viser's (and OpenCV's) camera frame.
    camera = camera_from_pose((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -2.0), math.radians(90), 10, 10)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pixels, depth = project_points(points, camera.K, camera.viewmat)
    torch.testing.assert_close(depth, torch.full((3,), 2.0))
    torch.testing.assert_close(pixels[0], torch.tensor([5.0, 5.0]))
    assert pixels[1, 0] > 5.0 and pixels[2, 1] > 5.0  # +x is right, +y is down
    # A 90 degree vertical field of view over 10 pixels: focal 5 px.
    assert float(camera.K[1, 1]) == pytest.approx(5.0)


def test_rotated_pose_matches_look_at():
    # A camera rotated 90 degrees about world z looks along the same +z but its image x
    # points along world +y.
    half = math.sqrt(0.5)
    camera = camera_from_pose((half, 0.0, 0.0, half), (0.0, 0.0, 0.0), 1.0, 8, 8)
    c2w = camera.c2w
    torch.testing.assert_close(c2w[:3, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6, rtol=0)


def test_resolution_for_aspect():
    assert resolution_for(2.0, 100) == (100, 50)
    assert resolution_for(0.5, 100) == (50, 100)
    assert resolution_for(1000.0, 10) == (10, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fov_y=0.0), "fov_y must be in"),
        (dict(fov_y=math.pi), "fov_y must be in"),
        (dict(width=0), "width must be an int >= 1"),
        (dict(height=2.5), "height must be an int >= 1"),
        (dict(wxyz=(0.0, 0.0, 0.0, 0.0)), "wxyz must be 4 finite numbers"),
        (dict(position=(0.0, float("nan"), 0.0)), "position must be 3 finite numbers"),
    ],
)
def test_bad_poses_name_the_argument(kwargs, message):
    args = dict(wxyz=(1.0, 0, 0, 0), position=(0.0, 0, 0), fov_y=1.0, width=4, height=4)
    with pytest.raises(ValueError, match=message):
        camera_from_pose(**{**args, **kwargs})


def test_bad_resolution_and_viewmat():
    with pytest.raises(ValueError, match="aspect must be"):
        resolution_for(0.0, 10)
    with pytest.raises(ValueError, match="max_side must be"):
        resolution_for(1.0, 0)
    with pytest.raises(ValueError, match=r"viewmat must have shape \[4, 4\]"):
        pose_from_viewmat(torch.eye(3))
