"""IGR surface quality on shared meshes: fit a signed-distance field to surface points (with
and without normals) within a CPU budget, extract its zero level set by MISE, and score it
against the mesh with the Occupancy Networks metrics, all in the mesh's unit cube.

Goal (issue 10) on spot with normals, 5 minutes of this 2-core CPU: Chamfer-L1 <= 0.005,
normal consistency >= 0.97, F-score@1% >= 0.95. A classical baseline, screened Poisson
reconstruction from open3d (depth 9; pip install open3d-cpu), runs on the same points when
open3d is installed: with the given normals, and without them from normals open3d
estimates (30 neighbours) and orients consistently (its tangent-plane propagation, outward
from the centroid), the fair comparison for IGR without normals.

    python bench/quality_implicit.py                       # spot and bunny, both variants
    python bench/quality_implicit.py --meshes spot --variants normals --minutes 3
    python bench/quality_implicit.py --field hash
    python bench/quality_implicit.py --methods poisson     # the baseline alone
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import trimesh

from mp3d.implicit import IGRConfig, fit_igr, normalise_mesh, sdf_mesh, surface_points
from mp3d.mesh.metrics import mesh_metrics

MESHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"
GOAL = {"chamfer_l1": 0.005, "normal_consistency": 0.97, "fscore": 0.95}


def poisson_baseline(points: np.ndarray, normals: np.ndarray | None):
    """Screened Poisson reconstruction (open3d, depth 9) of oriented points (normals
    estimated and oriented by open3d when None), or None without open3d."""
    try:
        import open3d as o3d
    except ImportError:
        return None
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is None:
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
        cloud.orient_normals_consistent_tangent_plane(30)
        estimated = np.asarray(cloud.normals)
        # Propagation fixes the orientation up to one global sign: point it outward.
        if (estimated * (points - points.mean(axis=0))).sum() < 0:
            cloud.normals = o3d.utility.Vector3dVector(-estimated)
    else:
        cloud.normals = o3d.utility.Vector3dVector(normals)
    mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=9)
    return trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles))


def row(name: str, metrics, seconds: float) -> str:
    return (
        f"  {name:<24} Chamfer-L1 {metrics.chamfer_l1:.5f}  normal consistency "
        f"{metrics.normal_consistency:.4f}  F-score@1% {metrics.fscore:.4f}  {seconds:6.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", nargs="+", default=["spot", "bunny"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["normals", "no-normals"],
        choices=["normals", "no-normals"],
    )
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=5.0, help="fitting budget per run")
    parser.add_argument("--eval-points", type=int, default=100_000)
    parser.add_argument("--field", choices=["mlp", "hash"], default="mlp")
    parser.add_argument(
        "--methods", nargs="+", default=["igr", "poisson"], choices=["igr", "poisson"]
    )
    args = parser.parse_args()
    print(
        f"goal on spot with normals: Chamfer-L1 <= {GOAL['chamfer_l1']}, normal consistency "
        f">= {GOAL['normal_consistency']}, F-score@1% >= {GOAL['fscore']}"
    )
    for name in args.meshes:
        path = MESHES / f"{name}.obj"
        if not path.is_file():
            print(f"{name}: not found at {path} (see shared/data/README.md)")
            continue
        mesh, _ = normalise_mesh(trimesh.load(path, force="mesh", process=False))
        points, normals = surface_points(mesh, args.points, seed=0)
        print(f"{name}: {len(mesh.faces)} triangles, {len(points)} surface points, unit cube")
        for variant in args.variants:
            given = normals if variant == "normals" else None
            if "igr" in args.methods:
                start = time.perf_counter()
                config = IGRConfig(steps=None, minutes=args.minutes, field=args.field)
                field, normalisation = fit_igr(points, given, config, progress=False)
                surface = sdf_mesh(field, normalisation)
                seconds = time.perf_counter() - start
                metrics = mesh_metrics(surface, mesh, n_points=args.eval_points)
                steps = field.train_stats["steps"]
                print(row(f"IGR {args.field}, {variant} ({steps} steps)", metrics, seconds))
            if "poisson" in args.methods:
                start = time.perf_counter()
                baseline = poisson_baseline(points, given)
                if baseline is None:
                    print("  screened Poisson: open3d is not installed (pip install open3d-cpu)")
                    continue
                metrics = mesh_metrics(baseline, mesh, n_points=args.eval_points)
                seconds = time.perf_counter() - start
                print(row(f"screened Poisson, {variant}", metrics, seconds))


if __name__ == "__main__":
    main()
