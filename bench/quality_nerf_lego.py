"""NeRF quality on the real lego scene in a fixed wall-time budget.

Trains a hash-grid NeRF on ../shared/data/lego, holding back every 8th of its 87 views, and
reports PSNR and SSIM on the held-back views plus training rays per second.

    python bench/quality_nerf_lego.py                       # CPU: 100x100, 10 minutes
    python bench/quality_nerf_lego.py --downscale 1 --minutes 5 --device cuda   # GPU
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from mp3d.nerf import TrainConfig
from mp3d.nerf.pipeline import fit_scene

LEGO = Path(__file__).resolve().parents[2] / "shared" / "data" / "lego"


def config_for(device: str, minutes: float, steps: int) -> TrainConfig:
    """Hash-grid settings sized for the machine: small tables and grid on a 2-core CPU."""
    if device == "cuda":
        return TrainConfig(
            model="hash",
            steps=steps,
            minutes=minutes,
            batch_rays=8192,
            log2_table_size=19,
            finest_resolution=2048,
            grid_resolution=128,
        )
    return TrainConfig(
        model="hash",
        steps=steps,
        minutes=minutes,
        batch_rays=4096,
        log2_table_size=17,
        finest_resolution=1024,
        grid_resolution=64,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LEGO)
    parser.add_argument("--downscale", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound on steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None, help="keep outputs here")
    parser.add_argument(
        "--log2-table-size", type=int, default=None, help="hash table entries per level, log2"
    )
    parser.add_argument(
        "--finest-resolution", type=int, default=None, help="the hash grid's finest level"
    )
    parser.add_argument(
        "--march-steps",
        type=int,
        default=None,
        help="ray-marching steps across the box (default: 1.5 per pixel, at most 512)",
    )
    parser.add_argument("--batch-rays", type=int, default=None, help="rays per training step")
    parser.add_argument(
        "--turntable-frames",
        type=int,
        default=12,
        help="frames of the turntable GIF (default: %(default)s)",
    )
    args = parser.parse_args()
    if not (args.data / "transforms_train.json").is_file():
        raise SystemExit(f"lego scene not found at {args.data} (see shared/data/README.md)")
    out = args.out or Path(tempfile.mkdtemp(prefix="mp3d-lego-"))
    overrides = {
        name: getattr(args, name)
        for name in ("log2_table_size", "finest_resolution", "march_steps", "batch_rays")
        if getattr(args, name) is not None
    }
    config = replace(config_for(args.device, args.minutes, args.steps), **overrides)
    summary = fit_scene(
        args.data,
        out,
        config,
        downscale=args.downscale,
        holdout=8,
        turntable_frames=args.turntable_frames,
        device=args.device,
    )
    print(
        f"lego {800 // args.downscale}px on {args.device} "
        f"({torch.get_num_threads()} threads), {args.minutes:g} min budget"
    )
    print(
        f"hash table 2^{config.log2_table_size} per level, finest level "
        f"{config.finest_resolution}, {config.batch_rays} rays a step, march steps "
        f"{config.march_steps or 'auto'}; train views {summary['train_views']}, held-back views "
        f"{summary['eval_views']}"
    )
    print(
        f"steps {summary['steps']} in {summary['seconds']:.0f} s, "
        f"{summary['rays_per_second']:.0f} training rays/s"
    )
    print(f"held-back PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.4f}")
    print(
        f"rendering {summary['render_seconds']:.2f} s per held-back view "
        f"({summary['render_rays_per_second']:.0f} rays/s)"
    )
    print(f"outputs in {out}")


if __name__ == "__main__":
    main()
