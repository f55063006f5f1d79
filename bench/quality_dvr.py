"""DVR and SDF volume rendering quality (issue 11), side by side on the same data and budget.

spot: spot.obj rendered (mp3d.data.mesh_views.render_mesh_views) into 50 training and 10
test views at 128x128; each renderer trains for --minutes, then reports the held-out mask
IoU, PSNR and SSIM, and its MISE mesh against spot.obj (Chamfer-L1, normal consistency,
F-score@1%, in spot's unit cube, the Occupancy Networks definitions of mp3d.mesh.metrics).
Goal, 10 minutes of a 2-core CPU per renderer: mask IoU >= 0.97, Chamfer-L1 <= 0.01, normal
consistency >= 0.95.

lego: ../shared/data/lego at 100x100 (downscale 8), every 8th view held back: DVR, SDF
volume rendering and `mp3d nerf` (hash grid, bench/quality_nerf_lego.py's CPU settings) at
--lego-minutes each; PSNR and mask IoU on the held-back views.

    python bench/quality_dvr.py                                  # spot, both renderers
    python bench/quality_dvr.py --parts spot --renderers surface --minutes 3
    python bench/quality_dvr.py --data DIR --gt-mesh MESH        # an existing Blender folder
    python bench/quality_dvr.py --parts lego --lego-minutes 10   # lego, all three
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from mp3d.data.scene import load_scene
from mp3d.implicit.dvr import DVRConfig, dvr_mesh, evaluate_dvr, mask_iou, train_dvr
from mp3d.rendering import Rendering, evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPOT = SHARED / "meshes" / "spot.obj"
LEGO = SHARED / "lego"
GOAL = {"mask_iou": 0.97, "chamfer_l1": 0.01, "normal_consistency": 0.95}


def spot_views(out_dir: Path, mesh: Path, resolution: int) -> Path:
    """A Blender folder of `mesh` (50 training, 10 test views), rendered once and kept."""
    if (out_dir / "transforms_train.json").is_file():
        return out_dir
    try:
        from mp3d.data.mesh_views import render_mesh_views
    except ImportError as error:
        raise SystemExit(
            f"mp3d.data.mesh_views is not available ({error}): render the views elsewhere "
            f"and pass --data DIR (a Blender folder with transforms_train/test.json)"
        ) from None
    print(f"rendering {mesh.name} into {out_dir} (50 + 10 views at {resolution}x{resolution})")
    return render_mesh_views(mesh, out_dir, 50, 10, resolution, progress=False)


def dvr_config(renderer: str, field: str, minutes: float) -> DVRConfig:
    """The trainer's defaults, bounded by wall time only."""
    return DVRConfig(renderer=renderer, field=field, steps=None, minutes=minutes)


def mesh_scores(model, gt_path: Path, n_points: int) -> dict:
    """Surface metrics of the model's MISE mesh against the ground-truth mesh, both in the
    ground truth's unit cube."""
    import trimesh

    from mp3d.implicit.sampling import normalise_mesh
    from mp3d.mesh.metrics import mesh_metrics

    gt = trimesh.load(gt_path, force="mesh", process=False)
    gt_unit, normalisation = normalise_mesh(gt)
    surface = dvr_mesh(model)
    if len(surface.faces) == 0:
        return {"chamfer_l1": math.nan, "normal_consistency": math.nan, "fscore": math.nan}
    surface.vertices = normalisation.to_unit(surface.vertices)
    metrics = mesh_metrics(surface, gt_unit, n_points=n_points)
    return {
        "chamfer_l1": metrics.chamfer_l1,
        "normal_consistency": metrics.normal_consistency,
        "fscore": metrics.fscore,
        "faces": len(surface.faces),
    }


def run_dvr(name, train_views, eval_views, config, out: Path | None, gt_mesh, n_points) -> dict:
    start = time.perf_counter()
    model = train_dvr(train_views, config, progress=False)
    trained = time.perf_counter() - start
    folder = None if out is None else out / name
    metrics = evaluate_dvr(model, eval_views, folder, progress=False)
    row = {
        "method": name,
        "steps": model.train_stats["steps"],
        "train_s": trained,
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "mask_iou": metrics["mask_iou"],
    }
    if "last_s" in model.train_stats:
        row["s"] = model.train_stats["last_s"]
    if gt_mesh is not None:
        row.update(mesh_scores(model, gt_mesh, n_points))
    row["total_s"] = time.perf_counter() - start
    return row


def run_nerf(train_views, eval_views, minutes: float) -> dict:
    """`mp3d nerf` (hash grid, the CPU settings of bench/quality_nerf_lego.py) at the budget."""
    from mp3d.nerf import TrainConfig, train

    start = time.perf_counter()
    config = TrainConfig(
        model="hash",
        steps=None,
        minutes=minutes,
        batch_rays=4096,
        log2_table_size=17,
        finest_resolution=1024,
        grid_resolution=64,
    )
    model = train(train_views, config, progress=False)
    trained = time.perf_counter() - start
    opacities = []

    def render(camera) -> Rendering:
        image = model.render(camera, background=eval_views.background_rgb)
        opacities.append(image.opacity.cpu())
        return image

    metrics = evaluate(render, eval_views, progress=False)
    ious = [mask_iou(o, a) for o, a in zip(opacities, eval_views.alphas)]
    return {
        "method": "nerf (hash)",
        "steps": model.train_stats["steps"],
        "train_s": trained,
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "mask_iou": sum(ious) / len(ious),
        "total_s": time.perf_counter() - start,
    }


def show(row: dict) -> None:
    text = (
        f"  {row['method']:<18} {row['steps']:>5} steps {row['train_s']:6.0f} s  "
        f"PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}  mask IoU {row['mask_iou']:.4f}"
    )
    if "chamfer_l1" in row:
        text += (
            f"  Chamfer-L1 {row['chamfer_l1']:.5f}  NC {row['normal_consistency']:.4f}"
            f"  F@1% {row['fscore']:.4f}"
        )
    if "s" in row:
        text += f"  s {row['s']:.0f}"
    print(text + f"  ({row['total_s']:.0f} s in all)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["spot"], choices=["spot", "lego"])
    parser.add_argument("--renderers", nargs="+", default=["surface", "volume"])
    parser.add_argument("--field", choices=["mlp", "hash"], default="mlp")
    parser.add_argument("--minutes", type=float, default=10.0, help="spot budget per renderer")
    parser.add_argument("--data", type=Path, default=None, help="an existing Blender folder")
    parser.add_argument("--gt-mesh", type=Path, default=SPOT, help="mesh to score against")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mp3d_dvr")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--eval-points", type=int, default=100_000)
    parser.add_argument("--lego", type=Path, default=LEGO)
    parser.add_argument("--lego-minutes", type=float, default=10.0)
    parser.add_argument("--lego-methods", nargs="+", default=["surface", "volume", "nerf"])
    parser.add_argument("--out", type=Path, default=None, help="keep rendered views here")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    if "spot" in args.parts:
        data = args.data or spot_views(args.work / "spot_views", SPOT, args.resolution)
        train_views, test_views, _ = load_scene(data, progress=False)
        gt = args.gt_mesh if args.gt_mesh and args.gt_mesh.is_file() else None
        print(
            f"{data}: {len(train_views)} training, {len(test_views)} test views at "
            f"{train_views.width}x{train_views.height}; goal: mask IoU >= {GOAL['mask_iou']}, "
            f"Chamfer-L1 <= {GOAL['chamfer_l1']}, NC >= {GOAL['normal_consistency']}"
        )
        for renderer in args.renderers:
            config = dvr_config(renderer, args.field, args.minutes)
            name = f"{'DVR' if renderer == 'surface' else 'NeuS'} {args.field}"
            row = run_dvr(name, train_views, test_views, config, args.out, gt, args.eval_points)
            rows.append({"part": "spot", **row})
            show(row)
    if "lego" in args.parts:
        if not (args.lego / "transforms_train.json").is_file():
            print(f"lego: not found at {args.lego} (see shared/data/README.md)")
        else:
            train_views, eval_views, _ = load_scene(args.lego, downscale=8, progress=False)
            print(
                f"lego: {len(train_views)} training, {len(eval_views)} held-back views at "
                f"{train_views.width}x{train_views.height}, {args.lego_minutes} minutes each"
            )
            for method in args.lego_methods:
                if method == "nerf":
                    row = run_nerf(train_views, eval_views, args.lego_minutes)
                else:
                    config = dvr_config(method, args.field, args.lego_minutes)
                    name = f"{'DVR' if method == 'surface' else 'NeuS'} {args.field}"
                    row = run_dvr(name, train_views, eval_views, config, args.out, None, 0)
                rows.append({"part": "lego", **row})
                show(row)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
