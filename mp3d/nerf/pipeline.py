"""End-to-end NeRF jobs behind the command line: fit a scene folder (Blender or COLMAP),
re-render or mesh a checkpoint. Each returns a summary dict of what it measured and wrote."""

from __future__ import annotations

from pathlib import Path

from mp3d import distributed
from mp3d.cameras import orbit_of_views
from mp3d.data.scene import (
    DEFAULT_HOLDOUT,
    load_scene,
    metadata_cameras,
    metadata_eval_views,
    scene_metadata,
)
from mp3d.mesh.marching_cubes import save_mesh
from mp3d.nerf.checkpoint import load_checkpoint
from mp3d.nerf.export import extract_mesh
from mp3d.nerf.trainer import TrainConfig, train
from mp3d.rendering import evaluate, evaluation_summary, render_turntable, write_json
from mp3d.training import CHECKPOINT_NAME, check_int, check_out_dir, resolve_device


def fit_scene(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    downscale: int = 1,
    background="white",
    holdout: int = DEFAULT_HOLDOUT,
    turntable_frames: int = 36,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> dict:
    """Trains on a Blender or COLMAP folder, then evaluates on held-out views (the test split,
    or every `holdout`-th view) and renders a turntable. Writes out_dir/checkpoint.pt,
    out_dir/test/*.png and test/metrics.json, out_dir/metrics.json, out_dir/turntable.gif."""
    config = config if config is not None else TrainConfig()
    check_int("turntable_frames", turntable_frames, 1)
    out_dir, data_dir = check_out_dir(out_dir), Path(data_dir)
    device = resolve_device(device)
    train_views, eval_views, kind = load_scene(data_dir, downscale, background, holdout, progress)
    meta = scene_metadata(data_dir, kind, train_views, downscale, holdout)
    model = train(
        train_views,
        config,
        out_dir=out_dir,
        device=device,
        progress=progress,
        meta=meta,
        fresh=fresh,
    )
    summary = {
        "format": kind,
        "eval_views": len(eval_views),
        "train_views": len(train_views),
        **model.train_stats,
    }
    paths = {
        "checkpoint": out_dir / CHECKPOINT_NAME,
        "turntable": out_dir / "turntable.gif",
        "metrics": out_dir / "metrics.json",
        "images": out_dir / "test",
    }
    if not distributed.is_main_process():  # under torchrun, rank 0 evaluates and writes
        return {**summary, **paths, "psnr": float("nan"), "ssim": float("nan"), "model": model}
    metrics = evaluate(model, eval_views, paths["images"], progress=progress)
    cameras = orbit_of_views(train_views.c2ws).cameras(
        train_views.Ks[0], train_views.width, train_views.height, turntable_frames
    )
    render_turntable(
        model, cameras, paths["turntable"], background=train_views.background_rgb, progress=progress
    )
    summary.update(evaluation_summary(metrics))
    write_json(paths["metrics"], {**summary, "views": metrics["views"]})
    return {**summary, **paths, "model": model}


def render_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    n_frames: int = 36,
    device=None,
    progress: bool = True,
) -> dict:
    """Re-renders a checkpoint: a turntable around its training cameras' orbit, and the
    held-out views (by the hold-out it was trained with) with metrics when the training data
    is still where it was."""
    check_int("frames", n_frames, 1)
    out_dir = check_out_dir(out_dir)
    model, payload = load_checkpoint(checkpoint, device=resolve_device(device))
    meta = payload["meta"]
    orbit, K, size = metadata_cameras(meta, checkpoint)
    background = meta.get("background", [1.0, 1.0, 1.0])
    eval_views = metadata_eval_views(meta, progress)  # read before writing: no partial output
    cameras = orbit.cameras(K, size[0], size[1], n_frames)
    summary = {
        "turntable": render_turntable(
            model, cameras, out_dir / "turntable.gif", background=background, progress=progress
        )
    }
    if eval_views is not None:
        metrics = evaluate(model, eval_views, out_dir / "test", progress=progress)
        summary.update(evaluation_summary(metrics), images=out_dir / "test")
    return summary


def mesh_checkpoint(
    checkpoint: str | Path,
    out_path: str | Path,
    resolution: int = 256,
    threshold: float = 10.0,
    colour: bool = True,
    device=None,
    progress: bool = True,
) -> dict:
    """Marching-cubes mesh of a checkpoint's density, saved as PLY/OBJ by suffix."""
    model, _ = load_checkpoint(checkpoint, device=resolve_device(device))
    mesh = extract_mesh(model, resolution, threshold, colour=colour, progress=progress)
    return {
        "mesh": save_mesh(mesh, out_path),
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
    }
