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
DEMO_STEPS = {"nerf": 1500, "splat": 3000}
DEMO_INIT_POINTS = 2000
SPLAT_STEPS = 30_000


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
    reasons = []
    for family in FAMILIES:
        impls = _backend.family_impls(family)
        print(f"{family:<18} {impls['cpu']:<13} {impls['cuda']}")
        reasons += [f"  {family} on {device.upper()}: {impls[device + '_why']}"
                    for device in ("cpu", "cuda") if device + "_why" in impls]
    if reasons:
        print("\nwhy the torch reference runs:")
        print("\n".join(reasons))
    return 0


def demo(args: argparse.Namespace) -> int:
    """Renders the built-in scene, then fits it with --method: a hash-grid NeRF (evaluated on
    the test views, meshed) or 3D Gaussians (evaluated, saved as PLY), all under --out."""
    from mp3d.data.demo import render_turntable, write_demo_scene
    from mp3d.io import save_gif

    out = Path(args.out)
    start = time.perf_counter()
    steps = args.steps if args.steps is not None else DEMO_STEPS[args.method]
    scene = write_demo_scene(out / "scene", n_train=args.views, resolution=args.resolution)
    truth = save_gif(render_turntable(n_frames=args.frames, resolution=args.resolution),
                     out / "scene_turntable.gif")
    print(f"scene       {scene}  ({args.views} training views, {args.resolution}px)")
    print(f"truth       {truth}")
    if steps == 0:
        return 0
    if args.method == "splat":
        _demo_splat(args, scene, out, steps)
    else:
        _demo_nerf(args, scene, out, steps)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _demo_nerf(args: argparse.Namespace, scene: Path, out: Path, steps: int) -> None:
    from mp3d.mesh import save_mesh
    from mp3d.nerf import extract_mesh
    from mp3d.nerf.pipeline import fit_scene

    summary = fit_scene(scene, out / "nerf", _demo_config(args, steps),
                        turntable_frames=args.frames)
    mesh = save_mesh(extract_mesh(summary["model"], resolution=args.mesh_resolution,
                                  threshold=args.threshold, colour=True), out / "nerf" / "mesh.ply")
    _print_fit(summary)
    print(f"mesh        {mesh}")


def _demo_splat(args: argparse.Namespace, scene: Path, out: Path, steps: int) -> None:
    from mp3d.splat import SplatConfig
    from mp3d.splat.pipeline import fit_scene

    # Sized for a 2-core CPU (3000 steps: 37.6 dB on the test views in about 3 minutes): few
    # starting Gaussians and the original schedule compressed into a short run: densify every
    # 100 steps from step 100 to half-way, a new SH band every 300 steps, opacity resets
    # every 600 steps (two in a 3000-step run, at 600 and 1200).
    config = SplatConfig(steps=steps, minutes=args.minutes, densify_from=100, densify_every=100,
                         sh_every=300, opacity_reset_every=600)
    summary = fit_scene(scene, out / "splat", config, init_points=args.init_points,
                        turntable_frames=args.frames)
    _print_splat_fit(summary)


def _demo_config(args: argparse.Namespace, steps: int):
    from mp3d.nerf import TrainConfig

    # Sized for a 2-core CPU: a small hash table and a coarse occupancy grid.
    return TrainConfig(model="hash", steps=steps, minutes=args.minutes, batch_rays=2048,
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


def _print_splat_fit(summary: dict) -> None:
    print(f"trained     {summary['steps']} steps in {summary['seconds']:.0f} s "
          f"({summary['steps_per_second']:.1f} steps/s), {summary['initial_gaussians']} -> "
          f"{summary['gaussians']} Gaussians")
    print(f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
          f"over {summary['eval_views']} views -> {summary['images']}")
    print(f"metrics     {summary['metrics']}")
    print(f"gaussians   {summary['ply']}")
    print(f"checkpoint  {summary['checkpoint']}")
    print(f"turntable   {summary['turntable']}")


def splat_train(args: argparse.Namespace) -> int:
    """Trains 3D Gaussians on a Blender or COLMAP scene folder (detected from its contents),
    evaluates them on held-out views and writes them as a 3DGS PLY file."""
    from mp3d.splat import SplatConfig
    from mp3d.splat.pipeline import fit_scene

    steps = args.steps if args.steps is not None or args.minutes is not None else SPLAT_STEPS
    config = SplatConfig(steps=steps, minutes=args.minutes, seed=args.seed)
    summary = fit_scene(args.data, args.out, config, downscale=args.downscale,
                        background=args.background, holdout=args.holdout,
                        init_points=args.init_points, sh_degree=args.sh_degree,
                        carve=not args.no_carve, turntable_frames=args.frames,
                        device=args.device)
    _print_splat_fit(summary)
    return 0


def splat_render(args: argparse.Namespace) -> int:
    """Renders a turntable around the Gaussians of a 3DGS PLY file (frames and a GIF)."""
    from mp3d.splat.pipeline import render_ply

    summary = render_ply(args.ply, args.out, width=args.width, height=args.height,
                         n_frames=args.frames, fov_deg=args.fov, elevation_deg=args.elevation,
                         up=args.up, radius=args.radius, background=args.background,
                         device=args.device)
    print(f"rendered    {summary['gaussians']} Gaussians from radius {summary['radius']:.3g}")
    print(f"frames      {summary['frames']}")
    print(f"turntable   {summary['turntable']}")
    return 0


def _joint_rotations(items: list[str], scale: float) -> dict[str | int, list[float]]:
    """{joint: [rx, ry, rz]} from "JOINT=RX,RY,RZ" strings (JOINT: a name or an index)."""
    rotations: dict[str | int, list[float]] = {}
    for item in items:
        joint, sep, values = item.partition("=")
        try:
            angles = [float(v) * scale for v in values.split(",")] if sep else []
        except ValueError:
            angles = []
        if not joint or len(angles) != 3:
            raise ValueError(f"--pose expects JOINT=RX,RY,RZ (e.g. left_elbow=0,-1.5,0), "
                             f"got {item!r}")
        rotations[int(joint) if joint.isdigit() else joint] = angles
    return rotations


def body_pose(args: argparse.Namespace) -> int:
    """Poses a body model (SMPL .pkl/.npz, or the built-in body without --model) and writes
    the posed mesh (OBJ or PLY by suffix). Rotations are axis-angle in the joint's parent
    frame (radians unless --degrees); the body stands y up, facing +z, its left on +x."""
    import math

    import torch

    from mp3d.body import SMPL, save_body_mesh

    model = SMPL(args.model)
    scale = math.pi / 180.0 if args.degrees else 1.0
    params = {"body_pose": model.body_pose_from(_joint_rotations(args.pose or [], scale))}
    if args.betas:
        params["betas"] = torch.tensor([args.betas], dtype=torch.float32)
    if args.global_orient:
        params["global_orient"] = torch.tensor([args.global_orient]) * scale
    if args.transl:
        params["transl"] = torch.tensor([args.transl], dtype=torch.float32)
    with torch.no_grad():
        output = model(**params)
    path = save_body_mesh(output.vertices[0], output.faces, args.out)
    source = args.model or "built-in body"
    print(f"mesh        {path}  ({output.vertices.shape[1]} vertices, "
          f"{output.faces.shape[0]} faces; model: {source})")
    if args.keypoints_out:
        from mp3d.body.keypoints import keypoints_from_joints

        keypoints = keypoints_from_joints(output.joints[0], model.joint_names)
        print(f"keypoints   {keypoints.save(args.keypoints_out)}  (its joints seen from the "
              f"front, {keypoints.width}x{keypoints.height} px; try `mp3d body fit`)")
    return 0


def body_fit(args: argparse.Namespace) -> int:
    """Fits a body model (SMPL .pkl/.npz, or the built-in body without --model) to the 2D
    keypoints of one person by SMPLify (robust reprojection, pose, shape and angle priors;
    torso first, then everything) and writes DIR/params.npz, DIR/mesh.obj and DIR/fit.json."""
    import torch

    from mp3d.body import SMPL
    from mp3d.body.fit import SMPLifyConfig, fit_smplify
    from mp3d.body.keypoints import load_keypoints, save_fit

    torch.set_num_threads(1)  # [24,3]-sized tensors: threads only add overhead
    model = SMPL(args.model)
    keypoint_file = load_keypoints(args.keypoints)
    keypoints, confidences = keypoint_file.for_model(model.joint_names)
    config = SMPLifyConfig(sigma=args.sigma, keypoint_std=args.keypoint_std)
    result = fit_smplify(model, keypoints, keypoint_file.K, confidences=confidences,
                         viewmat=keypoint_file.viewmat, config=config)
    info = {"keypoints": str(args.keypoints), "model": args.model or "built-in body",
            "frame": "world (viewmat)" if keypoint_file.viewmat is not None else "camera",
            "image_size": ([keypoint_file.width, keypoint_file.height]
                           if keypoint_file.width is not None else None)}
    paths = save_fit(result, model, args.out, info=info, config=config)
    initial = float((result.confidences * result.initial_joint_errors).sum()
                    / result.confidences.sum())
    print(f"fitted      {int((torch.as_tensor(confidences) > 0).sum())} keypoints in "
          f"{result.seconds:.1f} s; mean reprojection error {float(result.mean_error()[0]):.2f} "
          f"px (after the torso stage: {initial:.1f} px)")
    for name in ("params", "mesh", "summary"):
        print(f"{name:<11} {paths[name]}")
    return 0


class _KeypointsFormatHelp(argparse.RawDescriptionHelpFormatter):
    """Help formatter that spells out the KEYPOINTS.json format, importing it (and torch)
    only when the help is shown."""

    PLACEHOLDER = "{KEYPOINTS_FORMAT}"

    def add_text(self, text: str | None) -> None:
        if text == self.PLACEHOLDER:
            from mp3d.body.keypoints import KEYPOINTS_FORMAT

            text = KEYPOINTS_FORMAT
        super().add_text(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mp3d", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("doctor", help="show versions, compilers and kernel implementations",
                            description=doctor.__doc__)
    p.set_defaults(run=doctor)

    p = commands.add_parser("demo", help="render the built-in scene, fit a NeRF or Gaussians",
                            description=demo.__doc__)
    p.add_argument("--method", choices=["nerf", "splat"], default="nerf",
                   help="NeRF (hash grid) or 3D Gaussian splatting (default: %(default)s)")
    p.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    p.add_argument("--views", type=int, default=64, help="training views (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=100,
                   help="image width and height in pixels (default: %(default)s)")
    p.add_argument("--frames", type=int, default=36,
                   help="turntable frames (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps (default: {DEMO_STEPS['nerf']} for nerf, "
                        f"{DEMO_STEPS['splat']} for splat; 0: only render the scene)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop after this much wall time, even before --steps")
    p.add_argument("--mesh-resolution", type=int, default=192,
                   help="nerf: marching-cubes grid size (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=10.0,
                   help="nerf: density level of the mesh surface (default: %(default)s)")
    p.add_argument("--init-points", type=int, default=DEMO_INIT_POINTS,
                   help="splat: random Gaussians to start from (default: %(default)s)")
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

    splat = commands.add_parser("splat", help="train and render 3D Gaussian splatting",
                                description="3D Gaussian splatting.")
    splat_commands = splat.add_subparsers(dest="splat_command", metavar="COMMAND", required=True)
    p = splat_commands.add_parser("train", help="train on a Blender or COLMAP scene folder",
                                  description=splat_train.__doc__)
    p.add_argument("data", help="scene folder: transforms_train.json (Blender) or sparse/0 "
                                "(COLMAP)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--downscale", type=int, default=1, help="image downscale factor")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None,
                        help=f"training steps (default: {SPLAT_STEPS})")
    length.add_argument("--minutes", type=float, default=None,
                        help="train for this much wall time instead of a number of steps")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--background", default="white",
                   help="Blender scenes: background the images are composited on (white or "
                        "black)")
    p.add_argument("--holdout", type=int, default=8,
                   help="evaluate on every N-th view (Blender: unless the folder has a test "
                        "split) (default: %(default)s)")
    p.add_argument("--init-points", type=int, default=None,
                   help="Blender scenes: random Gaussians to start from (default: 100000 on "
                        "CUDA, 20000 on CPU); COLMAP scenes start from points3D")
    p.add_argument("--no-carve", action="store_true",
                   help="Blender scenes: start anywhere in the scene box rather than inside the "
                        "visual hull of the alpha masks")
    p.add_argument("--sh-degree", type=int, default=3, help="largest SH degree (default: 3)")
    p.add_argument("--frames", type=int, default=36, help="turntable frames")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(run=splat_train)

    p = splat_commands.add_parser("render", help="render a turntable of a PLY file",
                                  description=splat_render.__doc__)
    p.add_argument("ply", help="Gaussians in the 3DGS PLY layout (e.g. point_cloud.ply)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--width", type=int, default=256, help="image width (default: %(default)s)")
    p.add_argument("--height", type=int, default=256, help="image height (default: %(default)s)")
    p.add_argument("--frames", type=int, default=36, help="turntable frames (default: %(default)s)")
    p.add_argument("--fov", type=float, default=40.0,
                   help="horizontal field of view in degrees (default: %(default)s)")
    p.add_argument("--elevation", type=float, default=20.0,
                   help="camera elevation in degrees (default: %(default)s)")
    p.add_argument("--up", default="+z", choices=["+x", "-x", "+y", "-y", "+z", "-z"],
                   help="world axis to turn about (default: %(default)s; COLMAP scenes often -y)")
    p.add_argument("--radius", type=float, default=None,
                   help="camera distance (default: frame the opaque Gaussians)")
    p.add_argument("--background", default="white", help="white, black or a grey level")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(run=splat_render)

    body = commands.add_parser("body", help="pose SMPL bodies, fit them to keypoints",
                               description="Parametric human bodies (SMPL).")
    body_commands = body.add_subparsers(dest="body_command", metavar="COMMAND", required=True)
    p = body_commands.add_parser("pose", help="pose a body and write the mesh",
                                 description=body_pose.__doc__)
    p.add_argument("--model", default=None,
                   help="SMPL model file (.pkl as distributed, or .npz) (default: the built-in "
                        "body)")
    p.add_argument("--out", required=True, help="mesh file: .obj or .ply")
    p.add_argument("--betas", type=float, nargs="+", metavar="B", default=None,
                   help="shape coefficients, first ones first (e.g. --betas 1.5 -0.5)")
    p.add_argument("--pose", nargs="+", action="extend", metavar="JOINT=RX,RY,RZ", default=None,
                   help="a joint's axis-angle rotation, by name or index, repeatable "
                        "(e.g. --pose left_elbow=0,-1.5,0 right_knee=1,0,0 bends the left "
                        "forearm forward and the right shin back)")
    p.add_argument("--global-orient", type=float, nargs=3, metavar=("RX", "RY", "RZ"),
                   default=None, help="axis-angle rotation of the whole body about the pelvis")
    p.add_argument("--transl", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                   help="translation in metres")
    p.add_argument("--degrees", action="store_true",
                   help="angles of --pose and --global-orient are in degrees")
    p.add_argument("--keypoints-out", default=None, metavar="JSON",
                   help="also write the posed joints as seen by a camera in front of the body, "
                        "in the KEYPOINTS.json format of `mp3d body fit`")
    p.set_defaults(run=body_pose)

    p = body_commands.add_parser(
        "fit", help="fit a body to 2D keypoints (SMPLify)", description=body_fit.__doc__,
        epilog=_KeypointsFormatHelp.PLACEHOLDER, formatter_class=_KeypointsFormatHelp)
    p.add_argument("keypoints", help="KEYPOINTS.json (format below)")
    p.add_argument("--model", default=None,
                   help="SMPL model file (.pkl as distributed, or .npz) (default: the built-in "
                        "body)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sigma", type=float, default=100.0,
                   help="Geman-McClure scale in pixels: residuals beyond it count less and less "
                        "(default: %(default)s)")
    p.add_argument("--keypoint-std", type=float, default=4.0,
                   help="expected keypoint error in pixels; larger trusts the priors more "
                        "(default: %(default)s)")
    p.set_defaults(run=body_fit)
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
