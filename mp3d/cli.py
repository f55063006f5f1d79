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
        cuda = _backend.resolve_impl("auto", torch.device("cuda")) if torch.cuda.is_available() \
            else "(no GPU)"
        print(f"{family:<18} {cpu:<13} {cuda}")
    return 0


def demo(args: argparse.Namespace) -> int:
    """Writes the built-in scene (Blender format) and a turntable GIF under --out."""
    from mp3d.data.demo import render_turntable, write_demo_scene
    from mp3d.io import save_gif

    out = Path(args.out)
    start = time.perf_counter()
    scene = write_demo_scene(out / "scene", n_train=args.views, resolution=args.resolution)
    frames = render_turntable(n_frames=args.frames, resolution=args.resolution)
    gif = save_gif(frames, out / "turntable.gif")
    print(f"scene     {scene}  ({args.views} training views, {args.resolution}x{args.resolution})")
    print(f"preview   {gif}  ({args.frames} frames)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mp3d", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("doctor", help="show versions, compilers and kernel implementations",
                            description=doctor.__doc__)
    p.set_defaults(run=doctor)

    p = commands.add_parser("demo", help="render the built-in scene and a turntable preview",
                            description=demo.__doc__)
    p.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    p.add_argument("--views", type=int, default=64, help="training views (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=100,
                   help="image width and height in pixels (default: %(default)s)")
    p.add_argument("--frames", type=int, default=36,
                   help="turntable frames (default: %(default)s)")
    p.set_defaults(run=demo)
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
