"""Multi-view data from a mesh (mp3d.data.mesh_views): time to render 50 views of the shared
meshes with each ray caster, side by side in one process, and the ray casting alone.

For each mesh and resolution: the whole of render_mesh_views (cameras, rays, casting,
shading, PNG and NPY files) with embree (the default, embreex) and open3d's
RaycastingScene, and the ratio; then the casting of the same rays alone (through
RayCaster.cast, and the library's call by itself), with libigl's AABB tree beside them, and
how many of embree's hits each caster misses or puts elsewhere.

    python bench/bench_mesh_views.py                          # spot and bunny, 128 and 512
    python bench/bench_mesh_views.py --resolutions 128 --views 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mp3d.cameras import image_rays, intrinsics_from_fov
from mp3d.data import mesh_views
from mp3d.mesh.files import load_mesh

MESHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"


def render_seconds(mesh, backend: str, views: int, resolution: int) -> float:
    """Wall time of one render_mesh_views call (training views only) into a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        mesh_views.render_mesh_views(
            mesh,
            Path(scratch) / "views",
            n_train=views,
            n_test=0,
            resolution=resolution,
            backend=backend,
            progress=False,
        )
        return time.perf_counter() - start


def view_rays(mesh, views: int, resolution: int):
    """Per view (origins [R,3], directions [R,3]) of the cameras render_mesh_views uses."""
    vertices = np.asarray(mesh.vertices)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    centre = (low + high) / 2
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    fov = np.radians(40.0)
    distance = mesh_views.framing_distance(radius, fov)
    K = intrinsics_from_fov(fov, resolution, resolution, dtype=torch.float64)
    for c2w in mesh_views.view_poses(centre, distance, mesh_views.sphere_directions(views)):
        origins, directions = image_rays(K, c2w, resolution, resolution)
        # Contiguous copies: libigl misreads the strided view of the expanded origins.
        yield (
            np.ascontiguousarray(origins.reshape(-1, 3).numpy()),
            np.ascontiguousarray(directions.reshape(-1, 3).numpy()),
        )


def cast_seconds(mesh, views: int, resolution: int) -> dict[str, tuple]:
    """Per caster: (seconds casting all views' rays through RayCaster.cast, with its checks
    and float64 refinement; seconds in the caster itself (libigl: its tree's build and
    query); hits; hits embree has that it misses; hits farther or nearer than embree's by
    more than 1e-6 of the mesh's size)."""
    import igl

    casters = {name: mesh_views.RayCaster(mesh, name) for name in mesh_views.BACKENDS}
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    tree = igl.AABB()
    build = time.perf_counter()
    tree.init(vertices, faces)
    build = time.perf_counter() - build
    size = float((vertices.max(axis=0) - vertices.min(axis=0)).max())
    totals = {name: [0.0, 0.0, 0, 0, 0] for name in (*casters, "libigl")}
    totals["libigl"][0] = totals["libigl"][1] = build
    for origins, directions in view_rays(mesh, views, resolution):
        results = {}
        for name, caster in casters.items():
            start = time.perf_counter()
            hit, distance, face, _ = caster.cast(origins, directions)
            totals[name][0] += time.perf_counter() - start
            results[name] = hit, distance
            start = time.perf_counter()
            caster._first_hits(origins, directions)  # the library's call alone
            totals[name][1] += time.perf_counter() - start
        start = time.perf_counter()
        face, distance, _ = tree.intersect_ray_first(vertices, faces, origins, directions)
        totals["libigl"][0] += time.perf_counter() - start
        totals["libigl"][1] += time.perf_counter() - start
        results["libigl"] = face >= 0, np.where(face >= 0, distance, np.inf)
        reference_hit, reference_distance = results["embree"]
        for name, (hit, distance) in results.items():
            both = hit & reference_hit
            totals[name][2] += int(hit.sum())
            totals[name][3] += int((reference_hit & ~hit).sum())
            gap = np.abs(distance[both] - reference_distance[both])
            totals[name][4] += int((gap > 1e-6 * size).sum())
    return {name: tuple(values) for name, values in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", nargs="+", default=["spot.obj", "bunny.obj"])
    parser.add_argument("--resolutions", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--views", type=int, default=50)
    args = parser.parse_args()
    available = [b for b in mesh_views.BACKENDS if mesh_views._available(b)]
    if available != list(mesh_views.BACKENDS):
        raise SystemExit(f"needs both ray casters {mesh_views.BACKENDS}; found {available}")
    print(f"torch threads {torch.get_num_threads()}; {args.views} views per run")
    for name in args.meshes:
        mesh = load_mesh(MESHES / name)
        print(f"\n{name}: {len(mesh.faces)} triangles")
        render_seconds(mesh, "embree", 2, 32)  # warm up imports and caches
        for resolution in args.resolutions:
            rays = args.views * resolution**2
            times = {b: render_seconds(mesh, b, args.views, resolution) for b in available}
            embree, open3d = times["embree"], times["open3d"]
            print(
                f"  {resolution}x{resolution} render_mesh_views: embree {embree:.2f} s, "
                f"open3d {open3d:.2f} s, open3d/embree {open3d / embree:.2f}x"
            )
            casts = cast_seconds(mesh, args.views, resolution)
            reference, raw_reference = casts["embree"][:2]
            for caster, (seconds, raw, hits, missed, elsewhere) in casts.items():
                print(
                    f"    cast {caster:>7}: {seconds:.3f} s ({seconds / reference:.2f}x embree), "
                    f"in the library {raw:.3f} s ({rays / raw / 1e6:.1f} Mrays/s, "
                    f"{raw / raw_reference:.2f}x embree); {hits} hits, {missed} of embree's "
                    f"missed, {elsewhere} at another distance"
                )


if __name__ == "__main__":
    main()
