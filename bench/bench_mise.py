"""MISE against the dense grid at the same final resolution: field evaluations, time, and
whether the surfaces agree (vertex and face counts, largest vertex distance).

The field is the generalised winding number of a shared mesh (spot.obj in the unit cube,
inside where it exceeds 0.5), or two analytic spheres when the mesh is absent.

    python bench/bench_mise.py                 # 32^3 start, 3 subdivisions: 257^3 points
    python bench/bench_mise.py --initial 16 --steps 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from mp3d.mesh import extract_mesh
from mp3d.mesh.mise import extract_mesh_mise

MESH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes" / "spot.obj"


def field_of(mesh_path: Path):
    """(field_fn, threshold, inside, name)."""
    if mesh_path.is_file():
        import igl
        import trimesh

        from mp3d.implicit.sampling import normalise_mesh

        mesh, _ = normalise_mesh(trimesh.load(mesh_path, force="mesh", process=False))
        vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
        faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)

        def winding(points: torch.Tensor) -> torch.Tensor:
            query = np.ascontiguousarray(points.double().numpy())
            return torch.as_tensor(igl.fast_winding_number(vertices, faces, query))

        return winding, 0.5, "above", f"winding number of {mesh_path.name}"

    def spheres(points: torch.Tensor) -> torch.Tensor:
        first = (points - torch.tensor([-0.1, 0.0, 0.0])).norm(dim=-1) - 0.3
        return torch.minimum(first, (points - torch.tensor([0.2, 0.1, 0.0])).norm(dim=-1) - 0.2)

    return spheres, 0.0, "below", "two analytic spheres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initial", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mesh", type=Path, default=MESH)
    args = parser.parse_args()
    field_fn, threshold, inside, name = field_of(args.mesh)
    aabb = [-0.55, -0.55, -0.55, 0.55, 0.55, 0.55]
    resolution = args.initial * 2**args.steps + 1

    start = time.perf_counter()
    mise = extract_mesh_mise(field_fn, aabb, threshold, args.initial, args.steps, inside=inside)
    mise_s = time.perf_counter() - start
    start = time.perf_counter()
    dense = extract_mesh(field_fn, aabb, resolution, threshold, inside=inside, progress=False)
    dense_s = time.perf_counter() - start

    gap = cKDTree(dense.vertices).query(mise.vertices)[0].max() if len(mise.vertices) else np.inf
    evaluations = mise.metadata["evaluations"]
    print(f"{name}, final grid {resolution}^3 ({args.initial}^3 cells, {args.steps} subdivisions)")
    print(f"{'':>6} {'evaluations':>12} {'seconds':>9} {'vertices':>9} {'faces':>9}")
    print(
        f"{'dense':>6} {resolution**3:>12} {dense_s:>9.2f} {len(dense.vertices):>9} "
        f"{len(dense.faces):>9}"
    )
    print(
        f"{'MISE':>6} {evaluations:>12} {mise_s:>9.2f} {len(mise.vertices):>9} {len(mise.faces):>9}"
    )
    print(
        f"MISE / dense: {evaluations / resolution**3:.3f}x the evaluations, "
        f"{mise_s / dense_s:.3f}x the time; largest distance of a MISE vertex to the dense "
        f"mesh: {gap:.2e} (grid spacing {1.1 / (resolution - 1):.2e})"
    )


if __name__ == "__main__":
    main()
