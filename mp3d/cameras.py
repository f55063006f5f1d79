"""Pinhole cameras in the OpenCV convention: x right, y down, z forward.

``viewmat`` is the 4x4 world-to-camera matrix, ``c2w`` its inverse, ``K`` the 3x3 pixel
intrinsics; pixel (col, row) has its centre at (col + 0.5, row + 0.5). Blender/NeRF data
is camera-to-world in the OpenGL convention (y up, looking down -z): `opengl_to_opencv`
converts it. Functions broadcast over leading batch dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mp3d.transforms import project_points

_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@dataclass
class Camera:
    """One pinhole camera: K [3,3], viewmat [4,4] (world-to-camera), image size in pixels."""

    K: torch.Tensor
    viewmat: torch.Tensor
    width: int
    height: int

    @property
    def c2w(self) -> torch.Tensor:
        """Camera-to-world [4,4] (OpenCV axes)."""
        return invert_rigid(self.viewmat)

    def to(self, device: torch.device | str) -> Camera:
        """The same camera with its tensors on `device`."""
        return Camera(self.K.to(device), self.viewmat.to(device), self.width, self.height)

    def rays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through every pixel centre: origins [H,W,3], unit directions [H,W,3]."""
        return image_rays(self.K, self.c2w, self.width, self.height)


def intrinsics(fx: float, fy: float, cx: float, cy: float, dtype=torch.float32) -> torch.Tensor:
    """K [3,3] from focal lengths and principal point, in pixels."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def focal_from_fov(fov: float, size: int) -> float:
    """Focal length in pixels for a full field of view `fov` (radians) across `size` pixels."""
    if not 0.0 < fov < math.pi:
        raise ValueError(f"fov must be in (0, pi) radians, got {fov!r}")
    return 0.5 * size / math.tan(0.5 * fov)


def intrinsics_from_fov(
    fov_x: float, width: int, height: int, fov_y: float | None = None, dtype=torch.float32
) -> torch.Tensor:
    """K [3,3] from the horizontal field of view (radians); square pixels unless fov_y is given."""
    fx = focal_from_fov(fov_x, width)
    fy = fx if fov_y is None else focal_from_fov(fov_y, height)
    return intrinsics(fx, fy, 0.5 * width, 0.5 * height, dtype=dtype)


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms [...,4,4] (rotation transposed, translation mapped back)."""
    rotation = transform[..., :3, :3]
    translation = transform[..., :3, 3:]
    inverse = torch.zeros_like(transform)
    inverse[..., :3, :3] = rotation.transpose(-1, -2)
    inverse[..., :3, 3:] = -rotation.transpose(-1, -2) @ translation
    inverse[..., 3, 3] = 1.0
    return inverse


def opengl_to_opencv(c2w: torch.Tensor) -> torch.Tensor:
    """Camera-to-world [...,4,4] with OpenGL camera axes -> OpenCV axes (flip y and z)."""
    return c2w @ _FLIP_YZ.to(c2w)


def opencv_to_opengl(c2w: torch.Tensor) -> torch.Tensor:
    """Camera-to-world [...,4,4] with OpenCV camera axes -> OpenGL axes (its own inverse)."""
    return c2w @ _FLIP_YZ.to(c2w)


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None
) -> torch.Tensor:
    """World-to-camera [...,4,4] of cameras at `eye` [...,3] looking at `target` [...,3].

    `up` (default +z) is the world direction that appears upwards in the image.
    """
    eye, target = torch.as_tensor(eye), torch.as_tensor(target).to(torch.as_tensor(eye))
    up = torch.tensor([0.0, 0.0, 1.0]) if up is None else torch.as_tensor(up)
    up = up.to(eye).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up, dim=-1)
    if bool((right.norm(dim=-1) < 1e-8).any()):
        raise ValueError("up must not be parallel to the viewing direction (target - eye)")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2] = right, down, forward
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return invert_rigid(c2w)


AXES = {
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}


@dataclass
class Orbit:
    """A circle of cameras looking at `centre` [3]: the circle turns about the unit axis `up`
    [3] at `radius` (scene units) and `elevation_deg` above the plane through the centre.
    The first camera lies towards +x (towards +y if `up` is within 25 degrees of the x axis),
    and they advance counter-clockwise seen from above."""

    centre: torch.Tensor
    up: torch.Tensor
    radius: float
    elevation_deg: float = 30.0

    @classmethod
    def around(
        cls,
        centre=(0.0, 0.0, 0.0),
        up: str = "+z",
        radius: float = 4.0,
        elevation_deg: float = 30.0,
    ) -> Orbit:
        """An orbit about a named world axis `up` ("+x", "-y", ...)."""
        if up not in AXES:
            raise ValueError(f"up must be one of {sorted(AXES)}, got {up!r}")
        return cls(
            torch.as_tensor(centre, dtype=torch.float32),
            torch.tensor(AXES[up]),
            float(radius),
            float(elevation_deg),
        )

    def eyes(self, n_frames: int) -> torch.Tensor:
        """Camera positions [n_frames,3] (float64) evenly spaced on the circle."""
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be an int >= 1, got {n_frames!r}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"orbit radius must be a finite number > 0, got {self.radius!r}")
        up = torch.nn.functional.normalize(self.up.detach().double().cpu(), dim=0)
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        if abs(float(helper @ up)) > 0.9:
            helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        first = torch.nn.functional.normalize(helper - (helper @ up) * up, dim=0)
        second = torch.linalg.cross(up, first)
        azimuth = torch.arange(n_frames, dtype=torch.float64) * (2 * math.pi / n_frames)
        elevation = math.radians(self.elevation_deg)
        directions = (
            math.cos(elevation)
            * (torch.cos(azimuth)[:, None] * first + torch.sin(azimuth)[:, None] * second)
            + math.sin(elevation) * up
        )
        return self.centre.detach().double().cpu() + self.radius * directions

    def viewmats(self, n_frames: int) -> torch.Tensor:
        """World-to-camera [n_frames,4,4] (float32), each camera looking at the centre with
        `up` upwards in its image."""
        eyes = self.eyes(n_frames)
        centre = self.centre.detach().double().cpu().expand_as(eyes)
        return look_at(eyes, centre, self.up.detach().double().cpu()).float()

    def cameras(self, K: torch.Tensor, width: int, height: int, n_frames: int) -> list[Camera]:
        """The orbit's cameras with intrinsics K [3,3] and images of width x height pixels."""
        return [Camera(K, viewmat, width, height) for viewmat in self.viewmats(n_frames)]


def orbit_of_views(c2ws: torch.Tensor) -> Orbit:
    """The orbit that cameras c2ws [N,4,4] (OpenCV) suggest: centred on the point nearest all
    their optical axes (their mean position if the axes are near parallel), up = the mean of
    their image-up directions, at their mean distance and mean elevation."""
    c2ws = c2ws.detach().double().cpu()
    positions, forwards = c2ws[:, :3, 3], c2ws[:, :3, 2]
    up = -c2ws[:, :3, 1].mean(dim=0)  # image y points down in OpenCV
    if float(up.norm()) < 1e-6:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    up = up / up.norm()
    # Least squares: sum_i (I - f_i f_i^T) (p - c_i) = 0.
    projectors = torch.eye(3, dtype=torch.float64) - forwards[:, :, None] * forwards[:, None, :]
    system = projectors.sum(dim=0)
    if torch.linalg.matrix_rank(system, rtol=1e-3) == 3:
        centre = torch.linalg.solve(system, (projectors @ positions[:, :, None]).sum(dim=0))[:, 0]
    else:
        centre = positions.mean(dim=0)
    offsets = positions - centre
    distances = offsets.norm(dim=-1)
    radius = float(distances.mean())
    if radius <= 0.0:
        radius = 1.0
    sines = ((offsets @ up) / distances.clamp(min=1e-12)).clamp(-1.0, 1.0)
    elevation = math.degrees(float(torch.asin(sines).mean()))
    return Orbit(centre.float(), up.float(), radius, max(-80.0, min(80.0, elevation)))


def pixel_centers(width: int, height: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel centre coordinates [H,W,2] as (x, y) = (col + 0.5, row + 0.5)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1)


def pixel_rays(
    pixels: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel coordinates [*P,2]: origins [*P,3] and unit directions [*P,3].

    K [*B,3,3] and c2w [*B,4,4] broadcast against the pixels' leading dimensions *P.
    """
    x = (pixels[..., 0] - K[..., 0, 2]) / K[..., 0, 0]
    y = (pixels[..., 1] - K[..., 1, 2]) / K[..., 1, 1]
    directions_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    directions = (c2w[..., :3, :3] @ directions_cam[..., None])[..., 0]
    directions = torch.nn.functional.normalize(directions, dim=-1)
    return c2w[..., :3, 3].expand_as(directions), directions


def image_rays(
    K: torch.Tensor, c2w: torch.Tensor, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through every pixel centre of one camera: origins [H,W,3], directions [H,W,3]."""
    pixels = pixel_centers(width, height, device=K.device, dtype=K.dtype)
    return pixel_rays(pixels, K, c2w)


def random_pixels(
    n: int,
    n_images: int,
    width: int,
    height: int,
    generator: torch.Generator | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n random (image index [n], pixel centre [n,2]) pairs drawn uniformly over all pixels."""
    flat = torch.randint(0, n_images * width * height, (n,), generator=generator)
    image = flat // (width * height)
    rest = flat % (width * height)
    pixels = torch.stack([rest % width, rest // width], dim=-1).float() + 0.5
    return image.to(device), pixels.to(device)


def random_rays(
    Ks: torch.Tensor,
    c2ws: torch.Tensor,
    width: int,
    height: int,
    n: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch of rays across cameras Ks [N,3,3], c2ws [N,4,4].

    Returns origins [n,3], unit directions [n,3], image index [n] and integer pixel (x, y) [n,2].
    """
    image, pixels = random_pixels(n, c2ws.shape[0], width, height, generator, device=c2ws.device)
    pixels = pixels.to(c2ws.dtype)
    origins, directions = pixel_rays(pixels, Ks[image], c2ws[image])
    return origins, directions, image, pixels.floor().long()


def project(
    points: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [N,3] -> pixel coordinates [N,2] and camera-space depth z [N] (see
    mp3d.transforms.project_points, which this calls)."""
    return project_points(points, K, viewmat)


def unproject(
    pixels: torch.Tensor, depth: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor
) -> torch.Tensor:
    """Pixel coordinates [N,2] at camera-space depth z [N] -> world points [N,3]."""
    homogeneous = torch.cat([pixels, torch.ones_like(pixels[:, :1])], dim=-1)
    camera = torch.linalg.solve(K, homogeneous.T).T * depth[:, None]
    c2w = invert_rigid(viewmat)
    return camera @ c2w[:3, :3].T + c2w[:3, 3]
