"""`mp3d view PATH...`: the command that opens the viewer (registered in mp3d/cli.py)."""

from __future__ import annotations

import argparse
import time

__all__ = ["add_view_commands", "view"]

HELP = "look at meshes, point clouds, splats, checkpoints, bodies and datasets in a browser"
DESCRIPTION = """\
Opens an interactive viewer (viser) in the browser on the given paths:
  meshes          .ply .obj .off .stl .glb .gltf (vertex colours when present)
  point clouds    .ply (no faces) .npz ("points", optional "colours") .xyz
  Gaussian splats 3DGS-layout .ply, `mp3d splat train` checkpoints (splats in the browser;
                  the exact render with view-dependent colour under "server render")
  radiance fields `mp3d nerf train` and `mp3d dvr train` checkpoints or run folders,
                  rendered on the server at your camera (low resolution while it moves)
  bodies          --body (the built-in SMPL body) or an SMPL model .pkl/.npz: sliders for
                  shape and the pose of every joint; a `mp3d body fit` output folder
  datasets        Blender (transforms_train.json) or COLMAP (sparse/0) folders: camera
                  frusta with thumbnails (click one to look through it), COLMAP points

A path that cannot be shown is reported (here and in the page) and the rest are served.
The server listens on 127.0.0.1 only, unless --host says otherwise. On a remote machine,
forward the port over ssh and open the printed address on your own computer:
  ssh -N -L 8080:127.0.0.1:8080 USER@REMOTE     (then open http://127.0.0.1:8080)
Stop the viewer with Ctrl-C."""


def view(args: argparse.Namespace) -> int:
    """Serves the viewer on the given paths until interrupted."""
    from mp3d.viewer.app import Viewer

    if not args.paths and not args.body:
        raise ValueError("give at least one PATH to show, or --body for the built-in body")
    viewer = Viewer(host=args.host, port=args.port, full_side=args.resolution)
    if args.body:
        from mp3d.body.smpl import BUILTIN_BODY
        from mp3d.viewer.bodies import BodyLayer
        from mp3d.viewer.layers import node_name

        viewer.add_layer(BodyLayer(BUILTIN_BODY, node_name("builtin_body", 0)))
    for path in args.paths:
        layer = viewer.add(path)
        if layer is not None:
            print(f"showing     {layer.label}")
    if not viewer.layers:
        viewer.stop()
        raise ValueError("none of the paths could be shown (see the errors above)")
    print(f"viewer at   {viewer.url}   (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535, got {value}")
    return value


def _side(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int in 16..4096, got {text!r}") from None
    if not 16 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be an int in 16..4096, got {value}")
    return value


def add_view_commands(commands) -> argparse.ArgumentParser:
    """Adds `mp3d view` to the `mp3d` subcommands; returns its parser."""
    p = commands.add_parser(
        "view",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=view, prog=p.prog)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to show")
    p.add_argument("--body", action="store_true", help="show the built-in SMPL body")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 "
        "exposes the viewer to the network)",
    )
    p.add_argument("--port", type=_port, default=8080, help="port (default: %(default)s)")
    p.add_argument(
        "--resolution",
        type=_side,
        default=384,
        help="pixels on the longer side of server-side renders once the camera is still "
        "(default: %(default)s; 96 while it moves)",
    )
    return p
