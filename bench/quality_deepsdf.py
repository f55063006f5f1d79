"""DeepSDF quality on a small shape family within a CPU budget: train an auto-decoder on
procedural shapes (seeds 0..N-1) and randomly posed copies of the watertight shared meshes
(less the held-out ones), then infer codes with the decoder frozen and score the fields with
the Occupancy Networks metrics (mp3d.implicit.evaluation), in each shape's unit cube:

  (a) unseen procedural shapes (seeds >= 10000), from a few thousand of their SDF samples
      (and, for reference, the mean training code with no inference at all);
  (b) the held-out shared meshes (cheburashka, rocker-arm by default, randomly posed),
      from their SDF samples;
  (c) the unseen procedural shapes from a partial point cloud: only the surface points with
      x > 0 (the other half unseen), with their normals and with estimated normals;
  (d) training shapes with their trained codes (how well the family is represented).

Besides IoU, Chamfer-L1 (ONet: mean of the two mean distances), normal consistency and
F-score@1%, the table gives CD x1e3 in the DeepSDF convention (its evaluate.py: the sum of
the two mean *squared* nearest-neighbour distances, 30,000 points), here in our unit cube.
The built shapes are cached (--cache), so a rerun skips the sampling.

    python bench/quality_deepsdf.py                      # sized for ~11 minutes, 2 quiet cores
    python bench/quality_deepsdf.py --minutes 2 --procedural 24 --unseen 4
    python bench/quality_deepsdf.py --steps 2000 --threads 1   # a fixed amount of work

Measured (`--steps 2000 --threads 1`, shape set cached, on a 2-core machine shared with
other jobs, load average 5-8: 2620 s wall, 14.4 CPU-minutes; mean IoU / Chamfer-L1 /
normal consistency / F-score@1% / CD x1e3):
  (a) unseen procedural, 4000 SDF samples      0.738 / 0.0242 / 0.876 / 0.409 / 2.54
      the same, mean code (no inference)       0.392 / 0.1008 / 0.737 / 0.038 / 31.1
  (b) held-out cheburashka, rocker-arm (x2)    0.445 / 0.0357 / 0.668 / 0.168 / 4.28
  (c) unseen, x>0 half cloud, given normals    0.523 / 0.0549 / 0.765 / 0.226 / 13.8
      the same, estimated normals              0.521 / 0.0550 / 0.762 / 0.223 / 13.8
  (d) training shapes, trained codes           0.792 / 0.0178 / 0.880 / 0.501 / 1.73
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from mp3d.implicit.deepsdf import (
    DEEPSDF_INSIDE,
    DEEPSDF_LEVEL,
    DeepSDFConfig,
    infer_code,
    infer_code_from_cloud,
    train_deepsdf,
)
from mp3d.implicit.evaluation import field_mesh
from mp3d.implicit.shape_set import (
    build_shape_set,
    load_mesh_dir,
    load_shape_set,
    save_shape_set,
)
from mp3d.mesh.metrics import mesh_metrics, volumetric_iou

MESHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"
UNSEEN_FROM = 10_000
# The DeepSDF paper (Park et al., CVPR 2019), Table 3: unknown ShapeNet shapes (codes
# inferred from SDF samples of test shapes of each class, one decoder per class), CD x1e3 as
# its evaluate.py computes it, in the ShapeNet meshes' own normalisation; mean / median.
PAPER_UNKNOWN = {
    "chair": (0.204, 0.072),
    "plane": (0.143, 0.036),
    "table": (0.553, 0.068),
    "lamp": (0.832, 0.219),
    "sofa": (0.132, 0.068),
}


def shape_set(args) -> tuple[list, list, list]:
    """(training, unseen procedural, held-out mesh) shapes, built or read from the cache."""
    key = (
        f"p{args.procedural}-c{args.copies}-u{args.unseen}-h{args.held_out_copies}-"
        f"{'+'.join(args.held_out)}-n{args.samples_per_shape}"
    )
    cache = Path(args.cache) if args.cache else Path.home() / ".cache" / "mp3d" / "deepsdf.npz"
    cache = cache.with_name(f"{cache.stem}-{key}{cache.suffix or '.npz'}")
    if cache.is_file():
        shapes = load_shape_set(cache)
        print(f"shape set: {len(shapes)} shapes read from {cache}")
    else:
        start = time.perf_counter()
        meshes = []
        for name, mesh in load_mesh_dir(args.meshes):
            merged = mesh.copy()
            merged.merge_vertices(merge_tex=True, merge_norm=True)  # OBJ seams
            if merged.is_watertight:
                meshes.append((name, merged))
            else:
                print(f"  {name}: not watertight - left out")
        held = [(n, m) for n, m in meshes if n in args.held_out]
        train_meshes = [(n, m) for n, m in meshes if n not in args.held_out]
        print(
            f"meshes: training on {', '.join(n for n, _ in train_meshes)} "
            f"(x{args.copies}), holding out {', '.join(n for n, _ in held)}"
        )
        options = dict(
            n_surface=args.samples_per_shape,
            n_uniform=args.samples_per_shape,
            n_near=args.samples_per_shape,
            progress=True,
        )
        shapes = build_shape_set(
            train_meshes, args.copies, range(args.procedural), seed=0, **options
        )
        shapes += build_shape_set(
            procedural_seeds=range(UNSEEN_FROM, UNSEEN_FROM + args.unseen), seed=1, **options
        )
        if held:
            shapes += build_shape_set(held, args.held_out_copies, seed=2, **options)
        save_shape_set(shapes, cache)
        print(
            f"shape set: {len(shapes)} shapes built in {time.perf_counter() - start:.0f} s, "
            f"cached in {cache}"
        )

    def kind(shape) -> str:
        if shape.name.startswith("procedural-"):
            return "unseen" if int(shape.name.split("-")[1]) >= UNSEEN_FROM else "training"
        return "held" if shape.name.split("@")[0] in args.held_out else "training"

    kinds = [kind(shape) for shape in shapes]
    return tuple(
        [s for s, k in zip(shapes, kinds) if k == which] for which in ("training", "unseen", "held")
    )


@torch.no_grad()
def evaluate(field, shape, n_points: int) -> dict[str, float]:
    """shape_metrics' IoU, Chamfer-L1, normal consistency and F-score, plus CD x1e3 in the
    DeepSDF convention from the same MISE mesh (shape_metrics does not return Chamfer-L2)."""
    values = field(torch.as_tensor(shape.points[shape.uniform])).numpy()
    inside = values < DEEPSDF_LEVEL if DEEPSDF_INSIDE == "below" else values > DEEPSDF_LEVEL
    scores = {"iou": volumetric_iou(inside, shape.occupancy[shape.uniform])}
    mesh = field_mesh(field, DEEPSDF_LEVEL, DEEPSDF_INSIDE, upsampling_steps=2)
    if len(mesh.faces) == 0:
        nan = float("nan")
        return {**scores, "chamfer_l1": nan, "normal_consistency": nan, "fscore": nan, "cd": nan}
    surface = mesh_metrics(mesh, shape.mesh, n_points)
    return {
        **scores,
        "chamfer_l1": surface.chamfer_l1,
        "normal_consistency": surface.normal_consistency,
        "fscore": surface.fscore,
        "cd": 2.0 * surface.chamfer_l2 * 1e3,  # sum of the two mean squared distances
    }


def summary(label: str, rows: list[dict[str, float]], seconds: float) -> str:
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    median_cd = float(np.nanmedian([r["cd"] for r in rows]))
    return (
        f"  {label:<44} {len(rows):>3}  {mean['iou']:.3f}  {mean['chamfer_l1']:.4f}  "
        f"{mean['normal_consistency']:.3f}  {mean['fscore']:.3f}  "
        f"{mean['cd']:6.3f} / {median_cd:6.3f}  {seconds:6.1f} s"
    )


def sdf_samples(shape, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n of a shape's labelled points (uniform and near-surface alike), at random."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(shape.points), size=min(n, len(shape.points)), replace=False)
    return shape.points[index], shape.sdf[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", default=str(MESHES), help="folder of meshes")
    parser.add_argument("--held-out", nargs="+", default=["cheburashka", "rocker-arm"])
    parser.add_argument("--procedural", type=int, default=40, help="training seeds 0..N-1")
    parser.add_argument("--copies", type=int, default=3, help="posed copies of each mesh")
    parser.add_argument("--unseen", type=int, default=6, help="unseen procedural shapes")
    parser.add_argument("--held-out-copies", type=int, default=2)
    parser.add_argument(
        "--samples-per-shape",
        type=int,
        default=10_000,
        help="surface, uniform and near-surface samples each",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="shape-set cache file (default under "
        "~/.cache/mp3d; the build settings are added to its name)",
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="training budget (default 5 without --steps)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (with --minutes: the first to end)"
    )
    parser.add_argument("--run", default=None, help="checkpoint folder (resumes from it)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--latent-size", type=int, default=64)
    parser.add_argument(
        "--infer-samples",
        type=int,
        default=4000,
        help="SDF samples given to inference for (a) and (b)",
    )
    parser.add_argument("--infer-iterations", type=int, default=200)
    parser.add_argument("--eval-train", type=int, default=6, help="training shapes scored")
    parser.add_argument("--eval-points", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--build-only", action="store_true", help="build the cache, then stop")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}")
    training, unseen, held = shape_set(args)
    if args.build_only:
        return
    print(
        f"training on {len(training)} shapes; {len(unseen)} unseen procedural, "
        f"{len(held)} held-out mesh copies"
    )

    minutes = 5.0 if args.minutes is None and args.steps is None else args.minutes
    config = DeepSDFConfig(
        steps=args.steps,
        minutes=minutes,
        latent_size=args.latent_size,
        hidden=args.hidden,
        layers=args.layers,
        skip=args.layers // 2,
        infer_iterations=args.infer_iterations,
        seed=args.seed,
    )
    start = time.perf_counter()
    model = train_deepsdf(training, config, out_dir=args.run, progress=False)
    stats = model.train_stats
    print(
        f"trained {stats['steps']} steps in {time.perf_counter() - start:.0f} s "
        f"({config.shapes_per_batch} shapes x {config.samples_per_shape} samples a step; "
        f"loss {np.mean(model.losses[:50]):.4f} -> {np.mean(model.losses[-50:]):.4f})"
    )

    print(
        f"\n  {'set':<44} {'n':>3}  {'IoU':>5}  {'CD-L1':>6}  {'NC':>5}  {'F@1%':>5}  "
        f"{'CDx1e3 mean/median':>17}  time"
    )

    def run(label: str, shapes: list, code_of) -> None:
        start = time.perf_counter()
        rows = [
            evaluate(model.field(code_of(i, s)), s, args.eval_points) for i, s in enumerate(shapes)
        ]
        print(summary(label, rows, time.perf_counter() - start), flush=True)
        return rows

    def from_samples(i, shape):
        points, sdf = sdf_samples(shape, args.infer_samples, seed=i)
        return infer_code(model, points, sdf, seed=i)

    def from_half(normals: bool):
        def code(i, shape):
            keep = shape.surface[:, 0] > 0
            given = shape.normals[keep] if normals else None
            return infer_code_from_cloud(model, shape.surface[keep], given, seed=i)

        return code

    mean_code = model.codes.weight.mean(0).detach()
    run(f"(a) unseen procedural, {args.infer_samples} SDF samples", unseen, from_samples)
    run("(a) unseen procedural, mean code (no inference)", unseen, lambda i, s: mean_code)
    if held:
        rows = run(f"(b) held-out meshes, {args.infer_samples} SDF samples", held, from_samples)
        for shape, row in zip(held, rows, strict=True):
            print(
                f"      {shape.name:<20} IoU {row['iou']:.3f}  CD-L1 {row['chamfer_l1']:.4f}  "
                f"NC {row['normal_consistency']:.3f}  F {row['fscore']:.3f}"
            )
    run("(c) unseen procedural, x>0 half cloud, normals", unseen, from_half(True))
    run("(c) unseen procedural, x>0 half, est. normals", unseen, from_half(False))
    step = max(len(training) // max(args.eval_train, 1), 1)
    picked = training[::step][: args.eval_train]
    index = {s.name: i for i, s in enumerate(training)}
    run("(d) training shapes, trained codes", picked, lambda i, s: model.code(index[s.name]))
    print(
        "\nNot comparable, for scale only: the DeepSDF paper, Table 3 (unknown ShapeNet shapes, "
        "a decoder per class, 256-d codes, 8x512 layers, 2000 epochs on a GPU; CD x1e3 in "
        "ShapeNet's normalisation, not our unit cube), mean / median:"
    )
    print("  " + ", ".join(f"{k} {m:.3f} / {md:.3f}" for k, (m, md) in PAPER_UNKNOWN.items()))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nwall time {time.perf_counter() - wall:.0f} s (load average now {load})")


if __name__ == "__main__":
    main()
