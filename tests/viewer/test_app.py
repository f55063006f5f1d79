"""The viewer's pure parts: the first view frames the content, and the images shown of a
server-side rendering (RGB, opacity, depth)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mp3d.cameras import look_at
from mp3d.rendering import Rendering
from mp3d.transforms import project_points
from mp3d.viewer.app import FOV_Y, framing, output_image
from mp3d.viewer.cameras import camera_from_pose, pose_from_viewmat

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("up", ["+z", "+y", "-y", "+x"])
def test_first_view_frames_the_box(up):
    bounds = np.array([[-1.0, 2.0, 0.0], [3.0, 4.0, 0.5]])
    position, target = framing(bounds, up)
    np.testing.assert_allclose(target, bounds.mean(axis=0))
    up_vector = np.zeros(3)
    up_vector["xyz".index(up[1])] = 1.0 if up[0] == "+" else -1.0
    assert (position - target) @ up_vector > 0  # seen from above
    viewmat = look_at(
        torch.as_tensor(position), torch.as_tensor(target), torch.as_tensor(up_vector)
    )
    wxyz, centre = pose_from_viewmat(viewmat)
    camera = camera_from_pose(wxyz, centre, FOV_Y, 400, 300)
    corners = np.array(
        [[x, y, z] for x in bounds[:, 0] for y in bounds[:, 1] for z in bounds[:, 2]]
    )
    pixels, depth = project_points(
        torch.as_tensor(corners, dtype=torch.float32), camera.K, camera.viewmat
    )
    assert (depth > 0).all()
    assert (pixels[:, 0] > 0).all() and (pixels[:, 0] < 400).all()
    assert (pixels[:, 1] > 0).all() and (pixels[:, 1] < 300).all()


def test_output_images():
    rgb = torch.rand(4, 5, 3)
    opacity = torch.zeros(4, 5)
    opacity[:2] = 1.0
    depth = torch.full((4, 5), 4.0) * opacity  # far
    depth[0] = 2.0  # nearer
    rendering = Rendering(rgb, depth, opacity)
    np.testing.assert_allclose(output_image(rendering, "rgb", (2.0, 4.0)), rgb.numpy())
    grey = output_image(rendering, "opacity", (2.0, 4.0))
    assert grey.shape == (4, 5, 3) and (grey[:2] == 1).all() and (grey[2:] == 0).all()
    coloured = output_image(rendering, "depth", (2.0, 4.0))
    np.testing.assert_allclose(coloured[2:], 1.0)  # transparent: the white page
    assert (
        coloured[0, 0, 0] > coloured[0, 0, 2] and coloured[1, 0, 2] > coloured[1, 0, 0]
    )  # red near
    with pytest.raises(ValueError, match="output must be one of"):
        output_image(rendering, "normals", (2.0, 4.0))
    assert math.isfinite(float(coloured.sum()))
