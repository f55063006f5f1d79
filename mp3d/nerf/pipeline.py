"""End-to-end NeRF jobs behind the command line: fit a scene folder, re-render or mesh a
checkpoint. Each returns a summary dict of what it measured and wrote."""

from __future__ import annotations

from pathlib import Path

import torch

from mp3d.data.blender import BlenderScene, load_blender
from mp3d.io import save_gif
from mp3d.mesh.marching_cubes import save_mesh
from mp3d.nerf.checkpoint import load_checkpoint
from mp3d.nerf.export import evaluate, extract_mesh, render_turntable
from mp3d.nerf.model import orbit_cameras
from mp3d.nerf.trainer import TrainConfig, train


def split_views(data_dir: Path, downscale: int, background, holdout: int, progress: bool
                ) -> tuple[BlenderScene, BlenderScene]:
    """(training views, evaluation views): the test split if the folder has one, else every
    `holdout`-th training view held back (indices 0, holdout, 2 holdout, ...)."""
    views = load_blender(data_dir, "train", downscale, background, progress)
    if (data_dir / "transforms_test.json").is_file():
        return views, load_blender(data_dir, "test", downscale, background, progress)
    if holdout < 2 or len(views) < 2:
        raise ValueError(f"{data_dir} has no test split: need holdout >= 2 and at least 2 "
                         f"training views to hold some back (holdout={holdout}, {len(views)} views)")
    held = list(range(0, len(views), holdout))
    kept = [i for i in range(len(views)) if i % holdout != 0]
    return views.subset(kept), views.subset(held)


def fit_scene(data_dir: str | Path, out_dir: str | Path, config: TrainConfig, downscale: int = 1,
              background="white", holdout: int = 8, turntable_frames: int = 36,
              device=None, progress: bool = True) -> dict:
    """Trains on a Blender-format folder, then evaluates on held-out views and renders a
    turntable. Writes out_dir/checkpoint.pt, out_dir/test/*.png, metrics.json, turntable.gif."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    train_views, eval_views = split_views(data_dir, downscale, background, holdout, progress)
    meta = {"data": str(data_dir.resolve()), "downscale": downscale,
            "background": train_views.background.tolist(), "width": train_views.width,
            "height": train_views.height, "K": train_views.Ks[0].tolist(),
            "radius": float(train_views.c2ws[:, :3, 3].norm(dim=-1).mean())}
    model = train(train_views, config, out_dir=out_dir, device=device, progress=progress,
                  meta=meta)
    metrics = evaluate(model, eval_views, out_dir / "test", progress=progress)
    gif = render_turntable(model, train_views, out_dir / "turntable.gif", turntable_frames,
                           background=train_views.background, progress=progress)
    return {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "eval_views": len(eval_views),
            "train_views": len(train_views), **model.train_stats,
            "checkpoint": out_dir / "checkpoint.pt", "turntable": gif, "images": out_dir / "test",
            "model": model}


def render_checkpoint(checkpoint: str | Path, out_dir: str | Path, n_frames: int = 36,
                      device=None, progress: bool = True) -> dict:
    """Re-renders a checkpoint: a turntable from its training cameras' setup, and the test
    views with metrics when the training data is still where it was."""
    model, payload = load_checkpoint(checkpoint, device=device or "cpu")
    meta, out_dir = payload["meta"], Path(out_dir)
    if not {"K", "width", "height", "radius"} <= meta.keys():
        raise ValueError(f"{checkpoint}: has no camera metadata to render with")
    background = meta.get("background", [1.0, 1.0, 1.0])
    cameras = orbit_cameras(torch.tensor(meta["K"]), meta["width"], meta["height"],
                            meta["radius"], n_frames)
    frames = torch.stack([model.render(c, background=background)["rgb"].cpu() for c in cameras])
    summary = {"turntable": save_gif(frames, out_dir / "turntable.gif")}
    data = Path(meta.get("data", ""))
    if meta.get("data") and (data / "transforms_train.json").is_file():
        _, eval_views = split_views(data, meta["downscale"], background, 8, progress)
        metrics = evaluate(model, eval_views, out_dir / "test", progress=progress)
        summary.update(psnr=metrics["psnr"], ssim=metrics["ssim"], images=out_dir / "test")
    return summary


def mesh_checkpoint(checkpoint: str | Path, out_path: str | Path, resolution: int = 256,
                    threshold: float = 10.0, colour: bool = True, device=None,
                    progress: bool = True) -> dict:
    """Marching-cubes mesh of a checkpoint's density, saved as PLY/OBJ by suffix."""
    model, _ = load_checkpoint(checkpoint, device=device or "cpu")
    mesh = extract_mesh(model, resolution, threshold, colour=colour, progress=progress)
    return {"mesh": save_mesh(mesh, out_path), "vertices": len(mesh.vertices),
            "faces": len(mesh.faces)}
