"""Multi-view data from any triangle mesh: posed RGBA images, exact masks and depth maps.

`render_mesh_views` renders a mesh (a trimesh.Trimesh or any file mp3d.mesh.files.load_mesh
reads) from cameras on a sphere around it into a Blender-format folder that
mp3d.data.scene.load_scene reads::

    transforms_train.json, transforms_test.json   camera_angle_x, near, far, aabb, frames
    train/r_0.png ...                              RGBA; alpha 255 where the pixel's ray hits
    train/r_0_depth.npy ...                        float32 [H,W] depth, named in each frame
                                                   as "depth_file_path"

Each pixel is one ray through its centre, so the alpha channel is an exact mask (0 or 255).
Depth is z-depth: the distance from the camera centre along its optical axis (-z of the
Blender/OpenGL camera, +z of mp3d's OpenCV camera) to the first hit, in the mesh's units,
0 where the ray misses. The mesh keeps its own coordinates (no normalisation): cameras look at
its bounding-box centre from a distance that fits its bounding sphere in the field of view,
and the JSON's near/far/aabb bound it, so a reconstruction compares with the mesh directly.
Training views lie on a Fibonacci spiral over the whole sphere, test views on the same kind
of spiral turned and shifted, so no test camera repeats a training one.

Colour is Lambertian under fixed world-space lights plus ambient light, so it does not depend
on the view (what a NeRF or DVR field can learn), of an albedo that varies over the surface:
the mesh's texture (bilinear), its vertex colours (interpolated) or face colours if it has
them, else a procedural colour, a few sinusoids of the position in the mesh's unit cube that
`seed` chooses (smooth, so neighbouring views agree, and the same every run). Shading normals
are smooth (area-weighted face normals around each vertex) except across creases sharper than
CREASE_DEGREES; a face seen from behind (through a hole) is two-sided: its normal is turned
towards the viewer.

Ray caster: Intel Embree through embreex (the binding trimesh uses for its fast ray queries,
kept by trimesh's author), chosen over open3d's RaycastingScene and libigl's AABB tree, as
measured on this 2-core CPU (bench/bench_mesh_views.py, run on a busy machine):
- install size: embreex is a 14 MB wheel, 41 MB installed, needing only numpy; open3d-cpu is a
  105 MB wheel, 312 MB installed plus about 110 MB of dependencies (dash, plotly, flask, ...)
  and a system libusb; libigl (16 MB) is already an mp3d dependency.
- speed: 50 views at 128x128 of the 27,864-triangle bunny render in 1.8 s with either embree
  or open3d (open3d/embree 0.99x; 26 s each at 512x512); the library calls alone take
  0.42 s (embree) and 0.47 s (open3d) for those 819,200 rays, libigl's 2.2 s (5x embree).
- correctness: embree and open3d agree on every hit; libigl misses 3,369 of embree's 188,686
  hits on those views and puts 8,432 more at another distance: its ray-triangle test rejects
  triangles whose determinant is below a fixed 1e-6, i.e. small ones, which the bunny (0.15
  units across) is made of.
So embree: a tenth of open3d's install, the same speed and the same hits. open3d stays an
optional second backend (backend="open3d"), used when embreex is missing and in the
benchmark. Either caster only picks the triangle; the distance, the hit point and its
barycentric coordinates are then recomputed in float64 against that triangle, so depth does
not carry the casters' float32 rounding.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from mp3d.cameras import (
    AXES,
    image_rays,
    intrinsics_from_fov,
    invert_rigid,
    look_at,
    opencv_to_opengl,
)

__all__ = [
    "AMBIENT",
    "BACKENDS",
    "CREASE_DEGREES",
    "MeshRenderer",
    "RayCaster",
    "cast_rays",
    "default_lights",
    "framing_distance",
    "procedural_colour",
    "render_mesh_views",
    "shade",
    "sphere_directions",
    "view_poses",
]

BACKENDS = ("embree", "open3d")
AMBIENT = 0.3  # ambient light, as a fraction of the albedo
# Directional lights fixed in the world: (direction towards the light in the frame
# (a, b, up), with a and b perpendicular to the up axis; intensity).
LIGHTS = (((0.5, 0.3, 0.8), 0.65), ((-0.6, -0.4, -0.3), 0.3))
CREASE_DEGREES = 60.0  # faces meeting at a sharper angle than this keep separate normals
CORNER_PAIR_LIMIT = 50_000_000  # above, (vertices in very many faces) smooth everywhere
FRAME_MARGIN = 1.1  # the bounding sphere fills 1 / FRAME_MARGIN of the field of view
BOX_PADDING = 0.05  # the JSON's aabb: the bounding box grown by this fraction of its size
TEST_OFFSET = 0.5  # test views: the spiral shifted by half a step and turned


# ----------------------------------------------------------------------------- meshes


def _mesh_arrays(mesh, where: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V,3] float64, faces [F,3] int64) of a trimesh-like mesh, checked."""
    vertices = getattr(mesh, "vertices", None)
    faces = getattr(mesh, "faces", None)
    if vertices is None or faces is None:
        raise TypeError(f"{where} must be a trimesh.Trimesh, got {type(mesh).__name__}")
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{where}: vertices must have shape [V, 3], got {list(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(
            f"{where}: must hold at least one triangle (faces [F>0, 3]), got {list(faces.shape)}"
        )
    bad = int((~np.isfinite(vertices)).any(axis=1).sum())
    if bad:
        raise ValueError(
            f"{where}: vertex positions must be finite, {bad} of {len(vertices)} are not"
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(
            f"{where}: face indices must lie in [0, {len(vertices)}), got "
            f"[{faces.min()}, {faces.max()}]"
        )
    used = vertices[np.unique(faces)]
    if not float((used.max(axis=0) - used.min(axis=0)).max()) > 0:
        raise ValueError(f"{where}: has no extent (all its triangles lie at one point)")
    return vertices, faces


def _load(mesh_or_path):
    """(trimesh.Trimesh, a name for messages and the JSON) of a mesh or a mesh file."""
    if isinstance(mesh_or_path, (str, os.PathLike)):
        from mp3d.mesh.files import load_mesh

        return load_mesh(mesh_or_path), str(mesh_or_path)
    if not (hasattr(mesh_or_path, "vertices") and hasattr(mesh_or_path, "faces")):
        raise TypeError(
            f"mesh_or_path must be a mesh file's path or a trimesh.Trimesh, got "
            f"{type(mesh_or_path).__name__}"
        )
    return mesh_or_path, "mesh"


def _bounds(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = vertices[np.unique(faces)]
    return used.min(axis=0), used.max(axis=0)


# ----------------------------------------------------------------------------- ray casting


def _import_embree():
    from embreex import mesh_construction, rtcore_scene

    return mesh_construction, rtcore_scene


def _import_open3d():
    import open3d

    return open3d


def _available(backend: str) -> bool:
    try:
        (_import_embree if backend == "embree" else _import_open3d)()
    except (ImportError, OSError):  # open3d raises OSError without a system libusb
        return False
    return True


class RayCaster:
    """First hits of rays against one triangle mesh; the acceleration structure is built once.

    backend: "embree" (embreex), "open3d" (RaycastingScene) or "auto" (embree if installed,
    else open3d)."""

    def __init__(self, mesh, backend: str = "auto"):
        self.vertices, self.faces = _mesh_arrays(mesh)
        if backend == "auto":
            backend = next((b for b in BACKENDS if _available(b)), None)
            if backend is None:
                raise ImportError(
                    "ray casting against meshes needs embreex (pip install embreex) or "
                    "open3d (pip install open3d-cpu)"
                )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        # The casters work in float32: cast in a frame centred on the mesh, scaled to ~1.
        low, high = _bounds(self.vertices, self.faces)
        self._centre = (low + high) / 2
        self._scale = 1.0 / float((high - low).max())
        local = ((self.vertices - self._centre) * self._scale).astype(np.float32)
        edges = np.cross(
            self.vertices[self.faces[:, 1]] - self.vertices[self.faces[:, 0]],
            self.vertices[self.faces[:, 2]] - self.vertices[self.faces[:, 0]],
        )
        self.face_areas2 = np.linalg.norm(edges, axis=1)  # twice each face's area
        self.face_normals = edges / np.maximum(self.face_areas2, 1e-300)[:, None]
        if backend == "embree":
            try:
                mesh_construction, rtcore_scene = _import_embree()
            except ImportError as error:
                raise ImportError("backend 'embree' needs embreex: pip install embreex") from error
            self._scene = rtcore_scene.EmbreeScene()
            mesh_construction.TriangleMesh(
                scene=self._scene, vertices=local, indices=self.faces.astype(np.int32)
            )
        else:
            try:
                o3d = _import_open3d()
            except (ImportError, OSError) as error:
                raise ImportError(
                    f"backend 'open3d' needs open3d (pip install open3d-cpu; it also needs "
                    f"the system library libusb-1.0): {error}"
                ) from error
            self._o3d = o3d
            self._scene = o3d.t.geometry.RaycastingScene()
            self._scene.add_triangles(
                o3d.core.Tensor(local), o3d.core.Tensor(self.faces.astype(np.uint32))
            )

    def _first_hits(
        self, origins: np.ndarray, directions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(first face [R] (-1: miss), distance [R] as the caster found it in float32)."""
        local_origins = ((origins - self._centre) * self._scale).astype(np.float32)
        local_directions = directions.astype(np.float32)
        if self.backend == "embree":
            result = self._scene.run(local_origins, local_directions, output=1)
            face, t = result["primID"], result["tfar"]
        else:
            rays = np.concatenate([local_origins, local_directions], axis=1)
            result = self._scene.cast_rays(self._o3d.core.Tensor(rays))
            face, t = result["primitive_ids"].numpy(), result["t_hit"].numpy()
            face = np.where(np.isfinite(t), face.astype(np.int64), -1)
        face = np.asarray(face, dtype=np.int64)
        return face, np.asarray(t, dtype=np.float64) / self._scale

    def cast(self, origins, directions) -> tuple[np.ndarray, ...]:
        """First hits of rays origins [R,3], directions [R,3] (any nonzero length): hit [R]
        bool, distance [R] float64 (Euclidean, from the origin; inf on a miss), face [R] int64
        (-1 on a miss) and the face's unit normal [R,3] (by its winding; 0 on a miss)."""
        origins = _rays_array("origins", origins)
        directions = _rays_array("directions", directions)
        if origins.shape != directions.shape:
            raise ValueError(
                f"origins and directions must have the same shape [R, 3], got "
                f"{list(origins.shape)} and {list(directions.shape)}"
            )
        lengths = np.linalg.norm(directions, axis=1)
        if (lengths == 0).any():
            raise ValueError(
                f"directions must be nonzero, {int((lengths == 0).sum())} of "
                f"{len(lengths)} are zero"
            )
        directions = directions / lengths[:, None]
        count = origins.shape[0]
        distance = np.full(count, np.inf)
        normal = np.zeros((count, 3))
        if count == 0:
            return np.zeros(0, dtype=bool), distance, np.zeros(0, dtype=np.int64), normal
        face, rough = self._first_hits(origins, directions)
        hit = face >= 0
        face[~hit] = -1
        # Distance to the hit triangle's plane in float64: the casters round to float32.
        # A ray (nearly) in the triangle's plane keeps the caster's distance.
        f = face[hit]
        n = self.face_normals[f]
        denominator = np.einsum("ij,ij->i", directions[hit], n)
        first = self.vertices[self.faces[f, 0]]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("ij,ij->i", first - origins[hit], n) / denominator
        close = np.abs(t - rough[hit]) <= 1e-3 * np.maximum(rough[hit], 1.0 / self._scale)
        distance[hit] = np.where(np.isfinite(t) & (t >= 0) & close, t, rough[hit])
        normal[hit] = n
        return hit, distance, face, normal


def _rays_array(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must have shape [R, 3], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return np.ascontiguousarray(array)


def cast_rays(mesh, origins, directions, backend: str = "auto") -> tuple[np.ndarray, ...]:
    """First hits of rays origins [R,3], directions [R,3] against a triangle mesh: hit [R],
    distance [R] (inf on a miss), face [R] (-1 on a miss), unit face normal [R,3]. Builds
    the acceleration structure each call: cast many rays at once, or keep a RayCaster."""
    return RayCaster(mesh, backend).cast(origins, directions)


# ----------------------------------------------------------------------------- surface


def _corner_normals(caster: RayCaster, crease_degrees: float) -> np.ndarray:
    """Shading normals [F,3,3] at each face's corners: the area-weighted normals of the faces
    around the corner's vertex (vertices at one position merged, so UV seams do not show)
    that meet its face at less than `crease_degrees`."""
    vertices, faces = caster.vertices, caster.faces
    normals, weights = caster.face_normals, caster.face_areas2
    _, merged = np.unique(vertices, axis=0, return_inverse=True)
    corner_vertex = merged.reshape(-1)[faces].reshape(-1)  # [3F]
    corner_face = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    sorted_vertex = corner_vertex[order]
    starts = np.flatnonzero(np.r_[True, sorted_vertex[1:] != sorted_vertex[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    if int((counts.astype(np.int64) ** 2).sum()) > CORNER_PAIR_LIMIT:  # no creases kept
        sums = np.stack(
            [
                np.bincount(corner_vertex, (normals * weights[:, None])[corner_face, k])
                for k in range(3)
            ],
            axis=1,
        )
        corner = sums[corner_vertex]
    else:
        # Every pair (corner, other corner at the same vertex), corners in sorted order.
        group = np.repeat(np.arange(len(starts)), counts)
        partners = counts[group]
        a = np.repeat(np.arange(len(order)), partners)
        b = (
            starts[group[a]]
            + np.arange(len(a))
            - np.repeat(np.cumsum(partners) - partners, partners)
        )
        face_a, face_b = corner_face[order[a]], corner_face[order[b]]
        cosine = np.einsum("ij,ij->i", normals[face_a], normals[face_b])
        weight = np.where(cosine >= math.cos(math.radians(crease_degrees)), weights[face_b], 0.0)
        sums = np.stack(
            [np.bincount(a, weight * normals[face_b, k], minlength=len(order)) for k in range(3)],
            axis=1,
        )
        corner = np.empty_like(sums)
        corner[order] = sums
    length = np.linalg.norm(corner, axis=1, keepdims=True)
    corner = np.where(length > 0, corner / np.maximum(length, 1e-300), normals[corner_face])
    return corner.reshape(len(faces), 3, 3)


def _barycentric(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates [R,3] of points [R,3] in triangles [R,3,3], clipped to the
    triangle (rounding can put a hit a hair outside) and summing to 1."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e1, e2, p = b - a, c - a, points - a
    d11, d12, d22 = (np.einsum("ij,ij->i", x, y) for x, y in ((e1, e1), (e1, e2), (e2, e2)))
    p1, p2 = np.einsum("ij,ij->i", p, e1), np.einsum("ij,ij->i", p, e2)
    det = d11 * d22 - d12 * d12
    safe = np.where(det > 0, det, 1.0)
    v = np.where(det > 0, (d22 * p1 - d12 * p2) / safe, 1.0 / 3.0)
    w = np.where(det > 0, (d11 * p2 - d12 * p1) / safe, 1.0 / 3.0)
    bary = np.clip(np.stack([1.0 - v - w, v, w], axis=1), 0.0, None)
    return bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-300)


def procedural_colour(unit_points, seed: int = 0) -> np.ndarray:
    """Albedo [R,3] in [0.22, 0.98] at points [R,3] of the mesh's unit cube (centred on its
    bounding box, longest side 1): per channel 0.6 plus three sinusoids of 1.5 to 4 cycles
    per unit along directions and with phases that `seed` draws. Smooth and deterministic."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    points = np.asarray(unit_points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"unit_points must have shape [R, 3], got {list(points.shape)}")
    rng = np.random.default_rng(int(seed))
    directions = rng.normal(size=(3, 3, 3))  # [channel, wave, xyz]
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    frequencies = rng.uniform(1.5, 4.0, size=(3, 3, 1))
    phases = rng.uniform(0.0, 2.0 * math.pi, size=(3, 3))
    amplitudes = np.array([0.2, 0.12, 0.06])
    angles = 2.0 * math.pi * np.einsum("rj,cwj->rcw", points, directions * frequencies) + phases
    return 0.6 + (amplitudes * np.sin(angles)).sum(axis=-1)


def _texture_image(material):
    """The material's texture image, None if it has none or only one colour (trimesh makes
    a 2x2 image of the diffuse colour when an OBJ's texture file is missing)."""
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    if image is None or np.ptp(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0).max() == 0:
        return None
    return image


class _Albedo:
    """The surface colour of a mesh: texture, vertex colours, face colours or procedural."""

    def __init__(self, mesh, vertices: np.ndarray, faces: np.ndarray, seed: int):
        from mp3d.implicit.sampling import Normalisation

        self.vertices, self.faces, self.seed = vertices, faces, seed
        self.unit = Normalisation.of_points(vertices[np.unique(faces)])
        self.kind, self.source = "procedural", None
        visual = getattr(mesh, "visual", None)
        kind = getattr(visual, "kind", None)
        if kind == "texture":
            uv = getattr(visual, "uv", None)
            image = _texture_image(getattr(visual, "material", None))
            if uv is not None and image is not None and len(uv) == len(vertices):
                self.kind, self.source = "texture", (np.asarray(uv, dtype=np.float64), image)
        elif kind == "vertex":
            colours = np.asarray(visual.vertex_colors)
            if colours.shape[0] == len(vertices):
                self.kind, self.source = "vertex", colours[:, :3].astype(np.float64) / 255.0
        elif kind == "face":
            colours = np.asarray(visual.face_colors)
            if colours.shape[0] == len(faces):
                self.kind, self.source = "face", colours[:, :3].astype(np.float64) / 255.0

    def __call__(self, face: np.ndarray, bary: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Albedo [R,3] in [0,1] at hit points [R,3] on faces [R] (barycentric bary [R,3])."""
        corners = self.faces[face]
        if self.kind == "texture":
            from trimesh.visual.color import uv_to_interpolated_color

            uv, image = self.source
            uv_hit = np.einsum("rk,rkj->rj", bary, uv[corners])
            return uv_to_interpolated_color(uv_hit, image)[:, :3].astype(np.float64) / 255.0
        if self.kind == "vertex":
            return np.einsum("rk,rkj->rj", bary, self.source[corners])
        if self.kind == "face":
            return self.source[face]
        return procedural_colour(self.unit.to_unit(points), self.seed)


def _up_frame(up: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, up) unit vectors, right-handed, for a named world axis `up`."""
    if up not in AXES:
        raise ValueError(f"up must be one of {sorted(AXES)}, got {up!r}")
    axis = np.asarray(AXES[up], dtype=np.float64)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = helper - (helper @ axis) * axis
    a /= np.linalg.norm(a)
    return a, np.cross(axis, a), axis


def default_lights(up: str = "+z") -> list[tuple[np.ndarray, float]]:
    """The fixed lights: (unit direction [3] towards the light in world space, intensity) for
    a key light from above and a weaker fill light from below, about the world axis `up`."""
    frame = np.stack(_up_frame(up))
    lights = []
    for direction, intensity in LIGHTS:
        world = np.asarray(direction) @ frame
        lights.append((world / np.linalg.norm(world), float(intensity)))
    return lights


def shade(
    albedo, normals, lights: Sequence[tuple] | None = None, ambient: float = AMBIENT
) -> np.ndarray:
    """Lambertian colour [R,3] in [0,1]: albedo [R,3] * (ambient + sum over lights of
    intensity * max(0, n . l)), for unit normals [R,3] and lights (direction [3] towards the
    light, intensity) fixed in the world (default_lights() if None)."""
    albedo = np.asarray(albedo, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if albedo.ndim != 2 or albedo.shape[1] != 3 or normals.shape != albedo.shape:
        raise ValueError(
            f"albedo and normals must both have shape [R, 3], got {list(albedo.shape)} and "
            f"{list(normals.shape)}"
        )
    if not (math.isfinite(ambient) and ambient >= 0):
        raise ValueError(f"ambient must be a finite number >= 0, got {ambient!r}")
    lights = default_lights() if lights is None else lights
    intensity = np.full(len(albedo), float(ambient))
    for i, light in enumerate(lights):
        try:
            direction, power = light
            direction = np.asarray(direction, dtype=np.float64).reshape(3)
            power = float(power)
        except (TypeError, ValueError):
            raise ValueError(
                f"lights[{i}] must be (direction [3], intensity), got {light!r}"
            ) from None
        length = float(np.linalg.norm(direction))
        if not (length > 0 and math.isfinite(length) and math.isfinite(power) and power >= 0):
            raise ValueError(
                f"lights[{i}] needs a finite nonzero direction and an intensity >= 0, got {light!r}"
            )
        intensity += power * np.clip(normals @ (direction / length), 0.0, None)
    return np.clip(albedo * intensity[:, None], 0.0, 1.0)


# ----------------------------------------------------------------------------- cameras


def sphere_directions(n: int, offset: float = 0.0, up: str = "+z") -> torch.Tensor:
    """n unit vectors [n,3] (float64) spread evenly over the whole sphere (a Fibonacci
    spiral about the world axis `up`, from near its top to near its bottom, never on the
    poles); `offset` turns the spiral by that many full turns about `up`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    a, b, axis = (torch.from_numpy(v) for v in _up_frame(up))
    i = torch.arange(n, dtype=torch.float64)
    height = 1.0 - 2.0 * (i + 0.5) / n
    ring = torch.sqrt((1.0 - height * height).clamp(min=0.0))
    azimuth = math.pi * (3.0 - math.sqrt(5.0)) * i + 2.0 * math.pi * offset
    return (
        ring[:, None] * (torch.cos(azimuth)[:, None] * a + torch.sin(azimuth)[:, None] * b)
        + height[:, None] * axis
    )


def framing_distance(radius: float, fov_radians: float, margin: float = FRAME_MARGIN) -> float:
    """Distance from which a sphere of `radius` spans 1 / margin of a field of view."""
    return margin * radius / math.sin(0.5 * fov_radians)


def view_poses(centre, distance: float, directions: torch.Tensor, up: str = "+z") -> torch.Tensor:
    """Camera-to-world [n,4,4] (float64, OpenCV) of cameras at centre + distance * directions
    [n,3] looking at `centre` [3], with the world axis `up` upwards in their images."""
    centre = torch.as_tensor(np.asarray(centre, dtype=np.float64))
    eyes = centre + distance * directions.double()
    up_vector = torch.tensor(AXES[up], dtype=torch.float64)
    return invert_rigid(look_at(eyes, centre.expand_as(eyes), up_vector))


# ----------------------------------------------------------------------------- rendering


class MeshRenderer:
    """Renders one mesh by ray casting: exact masks, z-depth and Lambertian colour of its
    albedo (texture, vertex or face colours, else procedural_colour with `seed`) under
    lights fixed in the world (default_lights(up) if None) plus `ambient`."""

    def __init__(
        self,
        mesh,
        backend: str = "auto",
        seed: int = 0,
        lights: Sequence[tuple] | None = None,
        ambient: float = AMBIENT,
        up: str = "+z",
        crease_degrees: float = CREASE_DEGREES,
    ):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.lights = default_lights(up) if lights is None else list(lights)
        shade(np.zeros((0, 3)), np.zeros((0, 3)), self.lights, ambient)  # checks them
        self.ambient = float(ambient)
        self.caster = RayCaster(mesh, backend)
        self.corner_normals = _corner_normals(self.caster, crease_degrees)
        self.albedo = _Albedo(mesh, self.caster.vertices, self.caster.faces, int(seed))
        self._rays_key, self._local_directions = None, None

    def render(
        self, K: torch.Tensor, c2w: torch.Tensor, width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """RGBA [H,W,4] float32 in [0,1] (alpha 1 where the pixel centre's ray hits, colour 0
        elsewhere) and z-depth [H,W] float32 (0 on a miss) seen by a camera with intrinsics
        K [3,3] (pixels) and camera-to-world c2w [4,4] (OpenCV)."""
        K, c2w = torch.as_tensor(K).double(), torch.as_tensor(c2w).double()
        key = (tuple(K.flatten().tolist()), width, height)
        if self._rays_key != key:  # unit directions in the camera's frame, kept for the next
            _, local = image_rays(K, torch.eye(4, dtype=torch.float64), width, height)
            self._rays_key, self._local_directions = key, local.reshape(-1, 3).numpy()
        rotation, eye = c2w[:3, :3].numpy(), c2w[:3, 3].numpy()
        directions = self._local_directions @ rotation.T
        origins = np.broadcast_to(eye, directions.shape)
        hit, distance, face, normal = self.caster.cast(origins, directions)
        rgba = np.zeros((width * height, 4))
        depth = np.zeros(width * height)
        if hit.any():
            d, f = directions[hit], face[hit]
            points = origins[hit] + distance[hit, None] * d
            bary = _barycentric(self.caster.vertices[self.caster.faces[f]], points)
            shading = np.einsum("rk,rkj->rj", bary, self.corner_normals[f])
            shading /= np.maximum(np.linalg.norm(shading, axis=1, keepdims=True), 1e-300)
            # A face seen from behind (through a hole) is two-sided: its normal faces the viewer.
            behind = np.einsum("ij,ij->i", normal[hit], d) > 0
            shading[behind] *= -1.0
            rgba[hit, :3] = shade(self.albedo(f, bary, points), shading, self.lights, self.ambient)
            rgba[hit, 3] = 1.0
            forward = c2w[:3, 2].numpy()
            depth[hit] = distance[hit] * (d @ forward)
        return (
            rgba.reshape(height, width, 4).astype(np.float32),
            depth.reshape(height, width).astype(np.float32),
        )


# ----------------------------------------------------------------------------- files


def _write_png(rgba: np.ndarray, path: Path) -> None:
    """Writes an RGBA float image [H,W,4] in [0,1] as an 8-bit PNG."""
    Image.fromarray((np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGBA").save(path)


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"out_dir {out_dir} is not empty; pass overwrite=True to replace it")


def _replace_folder(staging: Path, out_dir: Path) -> None:
    """Moves the finished `staging` folder to `out_dir`, replacing what is there."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    os.replace(out_dir, old / "previous")
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(old / "previous", out_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def render_mesh_views(
    mesh_or_path,
    out_dir: str | Path,
    n_train: int = 50,
    n_test: int = 10,
    resolution: int = 128,
    fov_degrees: float = 40.0,
    seed: int = 0,
    overwrite: bool = False,
    backend: str = "auto",
    up: str = "+z",
    progress: bool = True,
) -> Path:
    """Renders a mesh (trimesh.Trimesh or a mesh file) from n_train + n_test cameras into
    `out_dir` as a Blender-format folder (RGBA PNGs, z-depth NPYs; see the module's
    docstring); returns its path. Square images of `resolution` pixels and a field of view of
    `fov_degrees`; `seed` picks the procedural colour; `up` the world axis shown upwards.

    The folder appears complete or not at all (written under a temporary name, then renamed);
    a non-empty `out_dir` is replaced only with overwrite=True.
    """
    n_train = _count("n_train", n_train, 1)
    n_test = _count("n_test", n_test, 0)
    resolution = _count("resolution", resolution, 1)
    if resolution > 16384:
        raise ValueError(f"resolution must be at most 16384 pixels, got {resolution}")
    try:
        fov = float(fov_degrees)
    except (TypeError, ValueError):
        fov = math.nan
    if isinstance(fov_degrees, bool) or not (0.0 < fov < 180.0):
        raise ValueError(f"fov_degrees must be a number in (0, 180), got {fov_degrees!r}")
    if up not in AXES:
        raise ValueError(f"up must be one of {sorted(AXES)}, got {up!r}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    mesh, name = _load(mesh_or_path)
    renderer = MeshRenderer(mesh, backend=backend, seed=seed, up=up)

    vertices, faces = renderer.caster.vertices, renderer.caster.faces
    low, high = _bounds(vertices, faces)
    centre = (low + high) / 2
    radius = float(np.linalg.norm(vertices[np.unique(faces)] - centre, axis=1).max())
    fov_radians = math.radians(fov)
    distance = framing_distance(radius, fov_radians)
    padding = BOX_PADDING * (high - low).max()
    meta = {
        "camera_angle_x": fov_radians,
        "near": max(distance - 1.05 * radius, 1e-3 * distance),
        "far": distance + 1.05 * radius,
        "aabb": [*(low - padding).tolist(), *(high + padding).tolist()],
        "depth_type": "z",
        "depth_note": (
            "depth_file_path: float32 NPY [H,W], distance along the camera's optical axis "
            "(-z of this camera-to-world matrix) in the mesh's units, 0 where alpha is 0"
        ),
        "mesh": name,
        "ray_caster": renderer.caster.backend,
        "seed": int(seed),
    }
    K = intrinsics_from_fov(fov_radians, resolution, resolution, dtype=torch.float64)
    splits = {"train": view_poses(centre, distance, sphere_directions(n_train, 0.0, up), up)}
    if n_test:
        directions = sphere_directions(n_test, TEST_OFFSET, up)
        splits["test"] = view_poses(centre, distance, directions, up)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for split, c2ws in splits.items():
            (staging / split).mkdir()
            frames = []
            for i in tqdm(
                range(len(c2ws)),
                desc=f"rendering {split} views",
                disable=not progress,
                leave=False,
            ):
                rgba, depth = renderer.render(K, c2ws[i], resolution, resolution)
                _write_png(rgba, staging / split / f"r_{i}.png")
                np.save(staging / split / f"r_{i}_depth.npy", depth)
                frames.append(
                    {
                        "file_path": f"./{split}/r_{i}",
                        "depth_file_path": f"./{split}/r_{i}_depth.npy",
                        "transform_matrix": opencv_to_opengl(c2ws[i]).tolist(),
                    }
                )
            text = json.dumps({**meta, "frames": frames}, indent=2)
            (staging / f"transforms_{split}.json").write_text(text)
        _check_out_dir(out_dir, overwrite)  # again: something may have appeared meanwhile
        _replace_folder(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir
