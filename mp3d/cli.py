"""The `mp3d` command line. Verbs are thin: parse, call the library, say where results went."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

DESCRIPTION = "mp3d: 3D machine perception in PyTorch."
EPILOG = "Run `mp3d COMMAND --help` for the options of one command."


def _version_line(command: list[str], last: bool = False) -> str:
    """The first (or last) non-empty line a tool prints, or "not found"."""
    if shutil.which(command[0]) is None:
        return "not found"
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    if not lines:
        return "not found"
    return lines[-1] if last else lines[0]


def doctor(args: argparse.Namespace) -> int:
    """Prints the environment mp3d runs in and the implementation each op family picks."""
    import torch

    import mp3d
    from mp3d import _backend
    from mp3d.ops import FAMILIES

    cxx = os.environ.get("CXX", "c++")
    rows = [
        ("mp3d", f"{mp3d.__version__} ({Path(mp3d.__file__).parent})"),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("torch CUDA", torch.version.cuda or "none (CPU build)"),
        ("CUDA device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"),
        ("C++ compiler", _version_line([cxx, "--version"])),
        ("nvcc", _version_line(["nvcc", "--version"], last=True)),
        ("CPU threads", str(torch.get_num_threads())),
    ]
    backend = _backend.backend()
    rows.append(("kernels", f"{backend.source}: {backend.detail}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\nop family          CPU tensors   CUDA tensors")
    for family in FAMILIES:
        cpu = _backend.resolve_impl("auto", torch.device("cpu"))
        cuda = _backend.resolve_impl("auto", torch.device("cuda")) \
            if torch.cuda.is_available() else "(no GPU)"
        print(f"{family:<18} {cpu:<13} {cuda}")
    return 0


def demo(args: argparse.Namespace) -> int:
    """Renders the built-in scene, trains a hash-grid NeRF on it, evaluates it on the test
    views and exports its mesh, all under --out."""
    from mp3d.data.demo import render_turntable, write_demo_scene
    from mp3d.io import save_gif
    from mp3d.mesh import save_mesh
    from mp3d.nerf import extract_mesh
    from mp3d.nerf.pipeline import fit_scene

    out = Path(args.out)
    start = time.perf_counter()
    scene = write_demo_scene(out / "scene", n_train=args.views, resolution=args.resolution)
    truth = save_gif(render_turntable(n_frames=args.frames, resolution=args.resolution),
                     out / "scene_turntable.gif")
    print(f"scene       {scene}  ({args.views} training views, {args.resolution}px)")
    print(f"truth       {truth}")
    if args.steps == 0:
        return 0
    summary = fit_scene(scene, out / "nerf", _demo_config(args), turntable_frames=args.frames)
    mesh = save_mesh(extract_mesh(summary["model"], resolution=args.mesh_resolution,
                                  threshold=args.threshold, colour=True), out / "nerf" / "mesh.ply")
    _print_fit(summary)
    print(f"mesh        {mesh}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _demo_config(args: argparse.Namespace):
    from mp3d.nerf import TrainConfig

    # Sized for a 2-core CPU: a small hash table and a coarse occupancy grid.
    return TrainConfig(model="hash", steps=args.steps, minutes=args.minutes, batch_rays=2048,
                       log2_table_size=16, finest_resolution=512, grid_resolution=64)


def _print_fit(summary: dict) -> None:
    print(f"trained     {summary['steps']} steps in {summary['seconds']:.0f} s "
          f"({summary['rays_per_second']:.0f} rays/s)")
    print(f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
          f"over {summary['eval_views']} views -> {summary['images']}")
    print(f"checkpoint  {summary['checkpoint']}")
    print(f"turntable   {summary['turntable']}")


def nerf_train(args: argparse.Namespace) -> int:
    """Trains a NeRF on a Blender-format scene folder and evaluates it on held-out views."""
    from mp3d.nerf import TrainConfig
    from mp3d.nerf.pipeline import fit_scene

    config = TrainConfig(model=args.model, steps=args.steps, minutes=args.minutes,
                         batch_rays=args.batch_rays, background=args.train_background)
    summary = fit_scene(args.data, args.out, config, downscale=args.downscale,
                        background=args.background, holdout=args.holdout)
    _print_fit(summary)
    return 0


def nerf_render(args: argparse.Namespace) -> int:
    """Renders a NeRF checkpoint: a turntable GIF, and the held-out views if its data is found."""
    from mp3d.nerf.pipeline import render_checkpoint

    summary = render_checkpoint(args.checkpoint, args.out, n_frames=args.frames)
    print(f"turntable   {summary['turntable']}")
    if "psnr" in summary:
        print(f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
              f"-> {summary['images']}")
    return 0


def nerf_mesh(args: argparse.Namespace) -> int:
    """Extracts a mesh from a NeRF checkpoint by marching cubes on its density."""
    from mp3d.nerf.pipeline import mesh_checkpoint

    summary = mesh_checkpoint(args.checkpoint, args.out, resolution=args.resolution,
                              threshold=args.threshold, colour=not args.no_colour)
    print(f"mesh        {summary['mesh']}  ({summary['vertices']} vertices, "
          f"{summary['faces']} faces)")
    return 0


def _add_length_options(p: argparse.ArgumentParser, steps: int, note: str = "") -> None:
    p.add_argument("--steps", type=int, default=steps,
                   help=f"training steps (default: %(default)s{note})")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop after this much wall time, even before --steps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mp3d", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("doctor", help="show versions, compilers and kernel implementations",
                            description=doctor.__doc__)
    p.set_defaults(run=doctor)

    p = commands.add_parser("demo", help="render the built-in scene, fit a NeRF, export a mesh",
                            description=demo.__doc__)
    p.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    p.add_argument("--views", type=int, default=64, help="training views (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=100,
                   help="image width and height in pixels (default: %(default)s)")
    p.add_argument("--frames", type=int, default=36,
                   help="turntable frames (default: %(default)s)")
    _add_length_options(p, steps=1500, note="; 0: only render the scene")
    p.add_argument("--mesh-resolution", type=int, default=192,
                   help="marching-cubes grid size (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=10.0,
                   help="density level of the mesh surface (default: %(default)s)")
    p.set_defaults(run=demo)

    nerf = commands.add_parser("nerf", help="train, render and mesh neural radiance fields",
                               description="Neural radiance fields.")
    nerf_commands = nerf.add_subparsers(dest="nerf_command", metavar="COMMAND", required=True)
    p = nerf_commands.add_parser("train", help="train on a Blender-format scene folder",
                                 description=nerf_train.__doc__)
    p.add_argument("data", help="scene folder with transforms_train.json")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", choices=["hash", "vanilla"], default="hash",
                   help="hash grid (fast) or the original MLP (default: %(default)s)")
    p.add_argument("--downscale", type=int, default=1, help="image downscale factor")
    _add_length_options(p, steps=5000)
    p.add_argument("--batch-rays", type=int, default=4096, help="rays per step")
    p.add_argument("--background", default="white",
                   help="background the images are composited on: white or black")
    p.add_argument("--train-background", default="random", choices=["white", "black", "random"],
                   help="background used while training (default: %(default)s)")
    p.add_argument("--holdout", type=int, default=8,
                   help="without a test split, evaluate on every N-th view (default: %(default)s)")
    p.set_defaults(run=nerf_train)

    p = nerf_commands.add_parser("render", help="render a checkpoint",
                                 description=nerf_render.__doc__)
    p.add_argument("checkpoint", help="checkpoint.pt written by `mp3d nerf train`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=36, help="turntable frames")
    p.set_defaults(run=nerf_render)

    p = nerf_commands.add_parser("mesh", help="extract a mesh from a checkpoint",
                                 description=nerf_mesh.__doc__)
    p.add_argument("checkpoint", help="checkpoint.pt written by `mp3d nerf train`")
    p.add_argument("--out", required=True, help="mesh file: .ply, .obj, .glb, .off or .stl")
    p.add_argument("--resolution", type=int, default=256, help="marching-cubes grid size")
    p.add_argument("--threshold", type=float, default=10.0, help="density level of the surface")
    p.add_argument("--no-colour", action="store_true", help="do not colour the vertices")
    p.set_defaults(run=nerf_mesh)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import mp3d

        print(mp3d.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"mp3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
