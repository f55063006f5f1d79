"""Occupancy Networks point-cloud completion on a CPU budget: train one ONet on procedural
shapes and randomly posed copies of the shared watertight meshes, then complete shapes from
clouds of 300 noisy points (std 0.005, unit cube) and score them with the ONet metrics:
(a) procedural shapes never seen (seeds >= 10000), (b) shared meshes held out of training
(cheburashka and rocker-arm by default), (c) training shapes, for reference.

The shape set is sampled once and cached (--cache), so reruns go straight to training.
The published figures are ONet's on ShapeNet (13 classes, thousands of shapes, days of GPU
training): other data, other budget, printed only for scale, never comparable.

On a machine shared with other jobs, --threads 1 trains far faster than torch's two
threads (measured here under a load of about 7: 0.59 steps/s against 0.07).

Measured (python bench/quality_onet.py --threads 1, cached shapes, load about 7 on the
2 cores: 238 steps in 6.5 minutes, 773 s in all): IoU / Chamfer-L1 / normal consistency /
F-score@1% of (a) 0.461 / 0.0903 / 0.817 / 0.050, (b) 0.272 / 0.0854 / 0.683 / 0.060,
(c) 0.372 / 0.0874 / 0.751 / 0.048: a few hundred steps, far from ONet's convergence.

    python bench/quality_onet.py                          # about 12 minutes on 2 cores
    python bench/quality_onet.py --minutes 2 --metrics iou
    python bench/quality_onet.py --hold-out homer --out runs/onet   # checkpoints, resume
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mp3d.implicit.evaluation import mean_metrics, shape_metrics
from mp3d.implicit.onet import ONET_INSIDE, ONET_LEVEL, ONetConfig, reconstruct_onet, train_onet
from mp3d.implicit.shape_set import build_shape_set, load_mesh_dir, load_shape_set, save_shape_set
from mp3d.mesh.metrics import volumetric_iou

MESHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"
TEST_SEED = 10_000  # procedural seeds from here on are never trained on
# ONet (Mescheder et al. 2019) on ShapeNet, as we recall its tables: Chamfer-L1 there is in
# units of 1/10 of the bounding box's longest edge, so it is divided by 10 here to match
# our unit cube. Not measured on our data.
PUBLISHED = [
    ("ONet, ShapeNet, 300-point clouds (Table 3)", 0.778, 0.0079, 0.895),
    ("ONet, ShapeNet, single images (Table 1)", 0.571, 0.0215, 0.834),
]


def watertight(mesh) -> bool:
    """Whether a mesh is closed once coincident vertices (texture seams) are merged."""
    import trimesh

    merged = trimesh.Trimesh(mesh.vertices, mesh.faces)
    merged.merge_vertices(merge_tex=True, merge_norm=True)
    return bool(merged.is_watertight)


def shape_sets(args) -> tuple[list, list, list]:
    """(training, unseen procedural, held-out meshes) shape sets, from the cache or built."""
    meshes = load_mesh_dir(args.meshes)
    closed = [(name, mesh) for name, mesh in meshes if watertight(mesh)]
    skipped = sorted({name for name, _ in meshes} - {name for name, _ in closed})
    missing = sorted(set(args.hold_out) - {name for name, _ in closed})
    if missing:
        raise SystemExit(
            f"--hold-out {' '.join(missing)}: no such watertight mesh in {args.meshes}"
        )
    train_meshes = [(n, m) for n, m in closed if n not in args.hold_out]
    held_meshes = [(n, m) for n, m in closed if n in args.hold_out]
    print(
        f"meshes in {args.meshes}: training on {', '.join(n for n, _ in train_meshes)} "
        f"({args.copies} random poses each); held out: {', '.join(args.hold_out)} "
        f"({args.test_copies} poses each); not watertight, unused: {', '.join(skipped) or '-'}"
    )
    samples = dict(n_surface=args.samples, n_uniform=args.samples, n_near=args.samples)
    parts = {
        "train": dict(
            meshes=train_meshes,
            copies=args.copies,
            procedural_seeds=range(args.train_shapes),
            seed=0,
        ),
        "unseen": dict(procedural_seeds=range(TEST_SEED, TEST_SEED + args.test_shapes), seed=1),
        "held": dict(meshes=held_meshes, copies=args.test_copies, seed=2),
    }
    expected = {
        "train": [f"{n}@{c}" for n, _ in train_meshes for c in range(args.copies)]
        + [f"procedural-{s}" for s in range(args.train_shapes)],
        "unseen": [f"procedural-{s}" for s in range(TEST_SEED, TEST_SEED + args.test_shapes)],
        "held": [f"{n}@{c}" for n, _ in held_meshes for c in range(args.test_copies)],
    }
    cache = Path(args.cache)
    sets = {}
    for key, options in parts.items():
        path = cache.with_name(f"{cache.stem}-{key}{cache.suffix or '.npz'}")
        if path.is_file():
            shapes = load_shape_set(path)
            if [s.name for s in shapes] == expected[key] and len(shapes[0].surface) == args.samples:
                sets[key] = shapes
                print(f"{key}: {len(shapes)} shapes from the cache {path}")
                continue
            print(f"{key}: the cache {path} holds other shapes; sampling again")
        start = time.perf_counter()
        sets[key] = build_shape_set(progress=True, **options, **samples)
        save_shape_set(sets[key], path)
        print(
            f"{key}: sampled {len(sets[key])} shapes in {time.perf_counter() - start:.0f} s, "
            f"cached in {path}"
        )
    return sets["train"], sets["unseen"], sets["held"]


def noisy_cloud(shape, n: int, noise: float, seed: int) -> np.ndarray:
    """n of the shape's surface samples plus Gaussian noise of std `noise` [n,3]."""
    rng = np.random.default_rng(seed)
    points = shape.surface[rng.choice(len(shape.surface), n, replace=len(shape.surface) < n)]
    return (points + rng.normal(0.0, noise, points.shape)).astype(np.float32)


def evaluate(model, shapes, args, label: str) -> dict[str, float]:
    """Mean metrics of the model's completions of `shapes` from noisy clouds."""
    rows = []
    start = time.perf_counter()
    for index, shape in enumerate(shapes):
        cloud = noisy_cloud(shape, args.cloud_points, args.cloud_noise, seed=1000 + index)
        field = reconstruct_onet(model, cloud)
        if args.metrics == "iou":
            with torch.no_grad():
                values = field(torch.as_tensor(shape.points[shape.uniform])).numpy()
            inside = shape.occupancy[shape.uniform]
            rows.append({"iou": volumetric_iou(values > ONET_LEVEL, inside)})
        else:
            rows.append(
                shape_metrics(
                    field, shape, ONET_LEVEL, ONET_INSIDE, upsampling_steps=args.upsampling
                )
            )
    scores = mean_metrics(rows)
    scores["shapes"] = len(shapes)
    scores["seconds"] = time.perf_counter() - start
    ious = [row["iou"] for row in rows]
    scores["iou_min"], scores["iou_max"] = min(ious), max(ious)
    print(f"  evaluated {label}: {len(shapes)} shapes in {scores['seconds']:.0f} s")
    return scores


@torch.no_grad()
def batch_norm_gap(model, shapes, config: ONetConfig, batches: int = 4) -> tuple[float, float]:
    """Mean BCE on training-like batches with batch norm's batch statistics (train mode, on
    a copy, so the running statistics stay untouched) and with its running statistics (eval
    mode): the gap says how much the batch's own statistics help, which eval cannot use."""
    rng = np.random.default_rng(7)
    train_mode = copy.deepcopy(model).train()
    losses = {"train": [], "eval": []}
    for _ in range(batches):
        chosen = rng.choice(len(shapes), min(config.shapes_per_batch, len(shapes)), replace=False)
        clouds, points, labels = [], [], []
        for i in chosen:
            shape = shapes[i]
            clouds.append(
                noisy_cloud(shape, config.cloud_points, config.cloud_noise, rng.integers(1 << 30))
            )
            near = rng.integers(shape.n_uniform, len(shape.points), config.near_queries)
            uniform = rng.integers(0, shape.n_uniform, config.query_points - config.near_queries)
            index = np.concatenate([near, uniform])
            points.append(shape.points[index])
            labels.append(shape.occupancy[index])
        cloud, query = torch.as_tensor(np.stack(clouds)), torch.as_tensor(np.stack(points))
        target = torch.as_tensor(np.stack(labels), dtype=torch.float32)
        for mode, net in (("train", train_mode), ("eval", model)):
            losses[mode].append(
                float(F.binary_cross_entropy_with_logits(net(query, cloud), target))
            )
    return float(np.mean(losses["train"])), float(np.mean(losses["eval"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=MESHES, help="folder of meshes")
    parser.add_argument("--hold-out", nargs="+", default=["cheburashka", "rocker-arm"])
    parser.add_argument("--train-shapes", type=int, default=64, help="procedural seeds 0..N-1")
    parser.add_argument("--copies", type=int, default=8, help="random poses of each mesh")
    parser.add_argument("--test-shapes", type=int, default=12, help="unseen procedural shapes")
    parser.add_argument("--test-copies", type=int, default=3, help="poses of each held-out mesh")
    parser.add_argument("--reference-shapes", type=int, default=8, help="training shapes scored")
    parser.add_argument("--samples", type=int, default=10_000, help="points of each kind")
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "mp3d-quality-onet.npz"),
        help="shape-set cache (three files beside this name)",
    )
    parser.add_argument("--minutes", type=float, default=6.5, help="training budget")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (resumes)")
    parser.add_argument("--fresh", action="store_true", help="ignore a checkpoint in --out")
    parser.add_argument("--latent", type=int, default=ONetConfig.latent)
    parser.add_argument("--hidden", type=int, default=ONetConfig.hidden)
    parser.add_argument("--encoder-hidden", type=int, default=ONetConfig.encoder_hidden)
    parser.add_argument("--blocks", type=int, default=ONetConfig.blocks)
    parser.add_argument("--encoder-blocks", type=int, default=ONetConfig.encoder_blocks)
    parser.add_argument("--query-points", type=int, default=ONetConfig.query_points)
    parser.add_argument("--near-fraction", type=float, default=ONetConfig.near_fraction)
    parser.add_argument("--shapes-per-batch", type=int, default=ONetConfig.shapes_per_batch)
    parser.add_argument("--lr", type=float, default=ONetConfig.lr)
    parser.add_argument("--lr-final-factor", type=float, default=ONetConfig.lr_final_factor)
    parser.add_argument("--cloud-points", type=int, default=300)
    parser.add_argument("--cloud-noise", type=float, default=0.005)
    parser.add_argument("--metrics", choices=["all", "iou"], default="all")
    parser.add_argument("--upsampling", type=int, default=2, help="MISE steps above 32^3")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    train, unseen, held = shape_sets(args)

    config = ONetConfig(
        steps=args.steps,
        minutes=None if args.steps is not None else args.minutes,
        latent=args.latent,
        hidden=args.hidden,
        encoder_hidden=args.encoder_hidden,
        blocks=args.blocks,
        encoder_blocks=args.encoder_blocks,
        cloud_points=args.cloud_points,
        cloud_noise=args.cloud_noise,
        query_points=args.query_points,
        near_fraction=args.near_fraction,
        shapes_per_batch=args.shapes_per_batch,
        lr=args.lr,
        lr_final_factor=args.lr_final_factor,
        log_every=50,
    )
    start = time.perf_counter()
    model = train_onet(train, config, out_dir=args.out, fresh=args.fresh, progress=True)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    stats = model.train_stats
    print(
        f"trained on {len(train)} shapes: {stats['steps']} steps of {config.shapes_per_batch} "
        f"shapes x {config.query_points} points in {seconds:.0f} s "
        f"({stats['steps_per_second']:.2f} steps/s), {parameters:,} parameters, "
        f"last loss {stats.get('last_loss', float('nan')):.4f}"
    )
    in_batch, running = batch_norm_gap(model, train, config)
    print(
        f"batch norm on training batches: BCE {in_batch:.4f} with the batch's statistics "
        f"(train mode), {running:.4f} with the running ones (eval mode)"
    )

    # Training shapes for reference: every mesh's first pose and the first procedural ones.
    firsts = [s for s in train if s.name.endswith("@0")]
    procedural = [s for s in train if s.name.startswith("procedural-")]
    reference = (firsts + procedural)[: args.reference_shapes]
    if len(reference) < args.reference_shapes:
        reference = train[: args.reference_shapes]
    results = [
        (f"(a) unseen procedural (seeds >= {TEST_SEED})", evaluate(model, unseen, args, "unseen")),
        (f"(b) held-out meshes ({', '.join(args.hold_out)})", evaluate(model, held, args, "held")),
        ("(c) training shapes (reference)", evaluate(model, reference, args, "training")),
    ]
    print()
    print(
        f"ONet completion from {args.cloud_points} points (noise {args.cloud_noise}), "
        f"threshold 0.2, MISE 32^3 x {args.upsampling} upsampling; "
        f"IoU at the shapes' uniform points"
    )
    header = (
        f"{'':<52} {'shapes':>6} {'IoU':>6} {'(min-max)':>13} {'Chamfer-L1':>10} "
        f"{'normal c.':>9} {'F@1%':>6}"
    )
    print(header)
    print("-" * len(header))

    def number(scores, key, width, digits):
        value = scores.get(key, float("nan"))
        return f"{value:>{width}.{digits}f}" if np.isfinite(value) else f"{'-':>{width}}"

    for label, scores in results:
        spread = f"{scores['iou_min']:.2f}-{scores['iou_max']:.2f}"
        print(
            f"{label:<52} {scores['shapes']:>6} {number(scores, 'iou', 6, 3)} {spread:>13} "
            f"{number(scores, 'chamfer_l1', 10, 4)} {number(scores, 'normal_consistency', 9, 3)}"
            f" {number(scores, 'fscore', 6, 3)}"
        )
    print("published, ShapeNet - NOT comparable data (thousands of shapes, 13 classes, GPU days):")
    for label, iou, chamfer, normals in PUBLISHED:
        print(f"  {label:<50} {'':>6} {iou:>6.3f} {'':>13} {chamfer:>10.4f} {normals:>9.3f}")
    print(f"\ntotal wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
