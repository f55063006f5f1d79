"""The `mp3d` command line. Verbs are thin: parse, call the library, say where results went.

Every user error ends in one line on stderr that names the argument or the file, and exit
status 2: argparse checks each option's type and range while parsing (before any work
starts), the libraries check the rest (ValueError, FileNotFoundError) and main() reports
them, with OSErrors that name their file (PermissionError, IsADirectoryError, ...).
Defaults come from the config dataclasses and library signatures, never repeated here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DESCRIPTION = "mp3d: 3D machine perception in PyTorch."
EPILOG = "Run `mp3d COMMAND --help` for the options of one command."
DEMO_STEPS = {"nerf": 1500, "splat": 3000}
DEMO_INIT_POINTS = 2000
DEMO_MESH_RESOLUTION = 192
# Upper bounds that refuse sizes no machine renders, before any work starts.
MAX_IMAGE_SIDE = 8192  # pixels of a rendered image's width or height
MAX_DEMO_RESOLUTION = 2048  # pixels of the demo scene's views
MAX_DEMO_VIEWS = 1000
MAX_GRID_RESOLUTION = 1024  # marching-cubes grid side (1024^3 float32 values: 4 GiB)
MAX_FRAMES = 3600  # turntable frames
DEVICE_HELP = "cpu, cuda or cuda:N (default: cuda if available, else cpu)"
ETA_HELP = (
    "DDIM's noise level with --steps: 0 deterministic, 1 as stochastic as DDPM (diffusion "
    "models; default: 0)"
)

# The command groups, each with its one-line help; _GROUPS maps them to their builders.
COMMANDS = {
    "doctor": "show versions, compilers and kernel implementations",
    "demo": "render the built-in scene, fit a NeRF or Gaussians",
    "nerf": "train, render and mesh neural radiance fields",
    "splat": "train and render 3D Gaussian splatting",
    "body": "pose SMPL bodies, fit them to keypoints",
    "mesh": "compare meshes with the standard reconstruction metrics",
    "sdf": "fit a signed-distance field to a point cloud or mesh (IGR)",
    "data": "make datasets: render a mesh into posed images",
    "dvr": "learn a surface from posed images (DVR surface or NeuS volume rendering)",
    "gen": "train, score and sample generative image models (MNIST)",
    "implicit": "learn shape spaces (occupancy networks, DeepSDF), reconstruct from points",
    "view": "look at meshes, splats, checkpoints, bodies and datasets in a browser",
    "seq": "train, score and sample sequence models (char-level LMs, sequential MNIST)",
    "rl": "train and evaluate reinforcement-learning agents on gymnasium environments",
}


# ----------------------------------------------------------------------------- argument types


def _field_default(config_class: type, name: str):
    """The default of field `name` of a config dataclass."""
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def _parameter_default(function: Callable, name: str):
    """The default of parameter `name` of `function`."""
    return inspect.signature(function).parameters[name].default


def _bounds(minimum, maximum, open_low: bool = False, open_high: bool = False) -> str:
    """ " in [a, b]", " >= a", " > a and < b", ... for messages (ints written out in full)."""

    def shown(bound) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    if minimum is not None and maximum is not None and not (open_low or open_high):
        return f" in [{shown(minimum)}, {shown(maximum)}]"
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if open_low else '>='} {shown(minimum)}")
    if maximum is not None:
        parts.append(f"{'<' if open_high else '<='} {shown(maximum)}")
    return " " + " and ".join(parts) if parts else ""


def int_in(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [minimum, maximum] (bounds optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if (
            value is None
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(
                f"must be an int{_bounds(minimum, maximum)}, got {text!r}"
            )
        return value

    parse.__name__ = "int"
    return parse


def number_in(
    minimum: float | None = None,
    maximum: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite float in [minimum, maximum] (ends open on request)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        if ok and minimum is not None:
            ok = value > minimum if open_low else value >= minimum
        if ok and maximum is not None:
            ok = value < maximum if open_high else value <= maximum
        if not ok:
            bounds = _bounds(minimum, maximum, open_low, open_high)
            raise argparse.ArgumentTypeError(f"must be a finite number{bounds}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def _type_from(check: Callable[[str], object], name: str) -> Callable[[str], str]:
    """An argparse type that passes the text on if `check(text)` raises no ValueError."""

    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    parse.__name__ = name
    return parse


def _check_device(text: str) -> None:
    from mp3d.training import resolve_device

    resolve_device(text)


def _check_background(text: str) -> None:
    from mp3d.data.blender import parse_background

    parse_background(text)


def _check_folder(text: str) -> None:
    from mp3d.training import check_out_dir

    check_out_dir(text, name="folder")


def _file_type(suffixes: tuple[str, ...] | None = None) -> Callable[[str], str]:
    """An argparse type: a file to write, with one of `suffixes`; refused if it is a folder
    or lies under a file."""

    def check(text: str) -> None:
        from mp3d.training import check_out_dir

        path = Path(text)
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise ValueError(f"must end in one of {', '.join(suffixes)}, got {text!r}")
        if path.is_dir():
            raise ValueError(f"{text!r} is a folder, not a file")
        check_out_dir(path.parent, name="the folder of")

    return _type_from(check, "file")


device_type = _type_from(_check_device, "device")
background_type = _type_from(_check_background, "background")
folder_type = _type_from(_check_folder, "folder")


def _config(config_class: type, **fields):
    """config_class(**fields); a ValueError naming a field names its option instead."""
    try:
        return config_class(**fields)
    except ValueError as error:
        message = str(error)
        name = message.split(" ", 1)[0].removeprefix("config.")
        if name in fields:
            message = f"--{name.replace('_', '-')}{message[message.index(' ') :]}"
        raise ValueError(message) from error


def _steps(args: argparse.Namespace, default: int | None) -> int | None:
    """--steps as given; else `default`, unless --minutes alone bounds the run (None)."""
    if args.steps is not None:
        return args.steps
    return None if args.minutes is not None else default


# ----------------------------------------------------------------------------- doctor


def _trainer_config(config_class: type, args: argparse.Namespace, **fields):
    """config_class with the TRAINER options (--steps, --minutes, --seed) and `fields`."""
    return _config(
        config_class,
        steps=_steps(args, args.default_steps),
        minutes=args.minutes,
        seed=args.seed,
        **fields,
    )


def _scene_run_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of a scene pipeline (fit_scene and its kin) from the SCENE
    and TRAINER options."""
    return {
        "downscale": args.downscale,
        "background": args.background,
        "holdout": args.holdout,
        "turntable_frames": args.frames,
        "device": args.device,
        "progress": not args.quiet,
        "fresh": args.fresh,
    }


def _resumed(stats: dict) -> str:
    """ ", resumed from step N" when a run continued a checkpoint, else ""."""
    start = stats.get("start_step", 0)
    return f", resumed from step {start}" if start else ""


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


# fmt: off
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
# fmt: on


# ----------------------------------------------------------------------------- demo


def demo(args: argparse.Namespace) -> int:
    """Renders the built-in scene, then fits it with --method: a hash-grid NeRF (evaluated on
    the test views, meshed) or 3D Gaussians (evaluated, saved as PLY), all under --out."""
    from mp3d.data.demo import render_turntable, write_demo_scene
    from mp3d.io import save_gif

    out = Path(args.out)
    start = time.perf_counter()
    steps = _steps(args, DEMO_STEPS[args.method])
    # Every setting is checked before the scene is written, so a bad one leaves nothing.
    config = (
        None
        if steps == 0
        else (_demo_nerf_config if args.method == "nerf" else _demo_splat_config)(args, steps)
    )
    scene = write_demo_scene(
        out / "scene", n_train=args.views, resolution=args.resolution, progress=not args.quiet
    )
    truth = save_gif(
        render_turntable(n_frames=args.frames, resolution=args.resolution, progress=not args.quiet),
        out / "scene_turntable.gif",
    )
    print(f"scene       {scene}  ({args.views} training views, {args.resolution}px)")
    print(f"truth       {truth}")
    if config is None:
        return 0
    if args.method == "splat":
        _demo_splat(args, scene, out, config)
    else:
        _demo_nerf(args, scene, out, config)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _demo_nerf_config(args: argparse.Namespace, steps: int | None):
    from mp3d.nerf import TrainConfig

    # Sized for a 2-core CPU: a small hash table and a coarse occupancy grid.
    return _config(
        TrainConfig,
        model="hash",
        steps=steps,
        minutes=args.minutes,
        seed=args.seed,
        batch_rays=2048,
        log2_table_size=16,
        finest_resolution=512,
        grid_resolution=64,
    )


def _demo_splat_config(args: argparse.Namespace, steps: int | None):
    from mp3d.splat import SplatConfig

    # Sized for a 2-core CPU (3000 steps: 37.6 dB on the test views in about 3 minutes): few
    # starting Gaussians and the original schedule compressed into a short run: densify every
    # 100 steps from step 100 to half-way, a new SH band every 300 steps, opacity resets
    # every 600 steps (two in a 3000-step run, at 600 and 1200).
    return _config(
        SplatConfig,
        steps=steps,
        minutes=args.minutes,
        seed=args.seed,
        densify_from=100,
        densify_every=100,
        sh_every=300,
        opacity_reset_every=600,
    )


def _demo_nerf(args: argparse.Namespace, scene: Path, out: Path, config) -> None:
    from mp3d.mesh import NoSurfaceError, save_mesh
    from mp3d.nerf import extract_mesh
    from mp3d.nerf.pipeline import fit_scene

    summary = fit_scene(
        scene,
        out / "nerf",
        config,
        turntable_frames=args.frames,
        device=args.device,
        progress=not args.quiet,
        fresh=args.fresh,
    )
    _print_fit(summary)
    try:
        mesh = extract_mesh(
            summary["model"],
            resolution=args.mesh_resolution,
            threshold=args.threshold,
            colour=True,
            progress=not args.quiet,
        )
    except NoSurfaceError as error:
        raise ValueError(_no_surface(error)) from error
    print(f"mesh        {save_mesh(mesh, out / 'nerf' / 'mesh.ply')}")


def _demo_splat(args: argparse.Namespace, scene: Path, out: Path, config) -> None:
    from mp3d.splat.pipeline import fit_scene

    summary = fit_scene(
        scene,
        out / "splat",
        config,
        init_points=args.init_points,
        turntable_frames=args.frames,
        device=args.device,
        progress=not args.quiet,
        fresh=args.fresh,
    )
    _print_splat_fit(summary)


def _no_surface(error) -> str:
    """The message of a NoSurfaceError in the terms of --threshold."""
    return (
        f"--threshold {error.threshold:g} finds no surface: the density takes values in "
        f"[{error.low:.4g}, {error.high:.4g}] over the model's box; try a {error.hint} "
        f"--threshold, strictly between them"
    )


# ----------------------------------------------------------------------------- nerf


def _print_fit(summary: dict) -> None:
    print(
        f"trained     {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['rays_per_second']:.0f} rays/s)"
    )
    print(
        f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
        f"over {summary['eval_views']} views -> {summary['images']}"
    )
    print(f"checkpoint  {summary['checkpoint']}")
    print(f"turntable   {summary['turntable']}")


def nerf_train(args: argparse.Namespace) -> int:
    """Trains a NeRF on a Blender or COLMAP scene folder (detected from its contents) and
    evaluates it on held-out views; a run already in --out is resumed unless --fresh."""
    from mp3d.nerf import TrainConfig
    from mp3d.nerf.pipeline import fit_scene

    config = _trainer_config(
        TrainConfig,
        args,
        model=args.model,
        batch_rays=args.batch_rays,
        background=args.train_background,
    )
    with _live_view(args):
        summary = fit_scene(
            args.data,
            args.out,
            config,
            **_scene_run_options(args),
        )
        _print_fit(summary)
    return 0


def nerf_render(args: argparse.Namespace) -> int:
    """Renders a NeRF checkpoint: a turntable GIF, and the held-out views if its data is found."""
    from mp3d.nerf.pipeline import render_checkpoint

    summary = render_checkpoint(
        args.checkpoint,
        args.out,
        n_frames=args.frames,
        device=args.device,
        progress=not args.quiet,
    )
    print(f"turntable   {summary['turntable']}")
    if "psnr" in summary:
        print(
            f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
            f"-> {summary['images']}"
        )
    return 0


def nerf_mesh(args: argparse.Namespace) -> int:
    """Extracts a mesh from a NeRF checkpoint by marching cubes on its density."""
    from mp3d.mesh import NoSurfaceError
    from mp3d.nerf.pipeline import mesh_checkpoint

    try:
        summary = mesh_checkpoint(
            args.checkpoint,
            args.out,
            resolution=args.resolution,
            threshold=args.threshold,
            colour=not args.no_colour,
            device=args.device,
            progress=not args.quiet,
        )
    except NoSurfaceError as error:
        raise ValueError(f"{args.checkpoint}: {_no_surface(error)}") from error
    print(
        f"mesh        {summary['mesh']}  ({summary['vertices']} vertices, {summary['faces']} faces)"
    )
    return 0


def _surface_samples(path: str, n_points: int):
    """(points [N,3], normals [N,3] or None) of a point-cloud file, or n_points samples of a
    mesh file's surface."""
    from mp3d.data.point_clouds import POINT_CLOUD_SUFFIXES, load_point_cloud
    from mp3d.implicit import surface_points
    from mp3d.mesh.files import load_mesh

    source = Path(path)
    if source.suffix.lower() in POINT_CLOUD_SUFFIXES and source.suffix.lower() != ".ply":
        return load_point_cloud(source)
    try:
        mesh = load_mesh(source)
    except ValueError as error:
        if source.suffix.lower() == ".ply" and "holds no triangles" in str(error):
            return load_point_cloud(source)  # a PLY of vertices only: a point cloud
        raise
    return surface_points(mesh, n_points, seed=0)


def sdf_fit(args: argparse.Namespace) -> int:
    """Fits a signed-distance field to the points of POINTS (.ply, .xyz, .npz; normals used
    when the file has them) or to samples of MESH's surface (.obj, .ply, .off, .stl, .glb)
    by IGR (|f| on the points, the eikonal term, and the normal term when normals are
    known), then writes its zero level set, extracted by MISE, as a mesh in the input's
    coordinates. With --run DIR, checkpoints go there and a run is resumed."""
    from mp3d.implicit import IGRConfig, fit_igr, sdf_mesh
    from mp3d.mesh import save_mesh

    points, normals = _surface_samples(args.source, args.points)
    if args.no_normals:
        normals = None
    config = _trainer_config(
        IGRConfig,
        args,
        field=args.field,
    )
    field, normalisation = fit_igr(
        points,
        normals,
        config,
        out_dir=args.run_dir,
        device=args.device,
        progress=not args.quiet,
        fresh=args.fresh,
    )
    mesh = sdf_mesh(field, normalisation, args.initial, args.upsampling_steps, device=args.device)
    stats = field.train_stats
    print(
        f"fitted      {len(points)} points ({'with' if normals is not None else 'without'} "
        f"normals), {stats['steps']} steps in {stats['seconds']:.0f} s{_resumed(stats)}"
    )
    print(
        f"mesh        {save_mesh(mesh, args.out)}  ({len(mesh.vertices)} vertices, "
        f"{len(mesh.faces)} faces, {mesh.metadata['resolution']}^3 grid by MISE)"
    )
    return 0


def mesh_eval(args: argparse.Namespace) -> int:
    """Compares a reconstructed mesh PRED with a ground-truth mesh GT by the Occupancy
    Networks definitions: accuracy, completeness, Chamfer-L1 and -L2, normal consistency,
    precision, recall and F-score at --tau, from --points surface samples of each. Both
    meshes are first put in the unit cube of GT's bounding box (unless --no-normalise), so
    distances are in units of GT's longest side."""
    from mp3d.implicit.sampling import Normalisation
    from mp3d.mesh import mesh_metrics
    from mp3d.mesh.files import load_mesh

    pred, gt = load_mesh(args.pred), load_mesh(args.gt)
    if not args.no_normalise:
        normalisation = Normalisation.of_points(gt.vertices)
        for mesh in (pred, gt):
            mesh.vertices = normalisation.to_unit(mesh.vertices)
    metrics = mesh_metrics(pred, gt, n_points=args.points, tau=args.tau, seed=args.seed)
    units = "GT's longest side" if not args.no_normalise else "the meshes' units"
    print(f"pred        {args.pred}")
    print(f"gt          {args.gt}  (distances in {units}, {args.points} points each)")
    for name, value in metrics.to_dict().items():
        print(f"{name:<19} {value:.6g}")
    if args.json is not None:
        from mp3d.rendering import write_json

        record = {
            "pred": str(args.pred),
            "gt": str(args.gt),
            "normalised": not args.no_normalise,
            **metrics.to_dict(),
        }
        print(f"json        {write_json(args.json, record)}")
    return 0


# ----------------------------------------------------------------------------- data


def data_render_mesh(args: argparse.Namespace) -> int:
    """Renders MESH (.obj, .ply, .off, .stl, .glb) from --views cameras on a sphere (and
    --test-views others) into a Blender-format folder: RGBA PNGs with exact masks, depth
    along each camera's axis as NPY, transforms_train.json and transforms_test.json, by ray
    casting (Embree) with Lambertian shading of the mesh's colours or texture, else of a
    procedural colour. The mesh's own coordinates are kept, so a reconstruction from the
    images compares with it directly."""
    from mp3d.data.mesh_views import render_mesh_views

    out = render_mesh_views(
        args.mesh,
        args.out,
        n_train=args.views,
        n_test=args.test_views,
        resolution=args.resolution,
        fov_degrees=args.fov,
        seed=args.seed,
        overwrite=args.overwrite,
        backend=args.backend,
        up=args.up,
        progress=not args.quiet,
    )
    print(
        f"rendered    {args.views} training and {args.test_views} test views of {args.mesh} "
        f"at {args.resolution}x{args.resolution} -> {out}"
    )
    return 0


# ----------------------------------------------------------------------------- dvr


def dvr_train(args: argparse.Namespace) -> int:
    """Learns a signed-distance surface and its colour from the posed images of a Blender
    folder (masks from the alpha channel; e.g. made by mp3d data render-mesh): by surface
    rendering (DVR: ray marching, secant refinement, implicit differentiation, mask losses)
    or by NeuS volume rendering on the volume-rendering kernel, with the eikonal term.
    Evaluates the held-out views (PSNR, SSIM, mask IoU, normal maps) and writes the mesh,
    extracted by MISE in the scene's coordinates. OUT/checkpoint.pt is resumed."""
    from mp3d.implicit.dvr import DVRConfig, fit_dvr_scene

    config = _trainer_config(
        DVRConfig,
        args,
        field=args.field,
        renderer=args.renderer,
    )
    summary = fit_dvr_scene(
        args.data,
        args.out,
        config,
        **_scene_run_options(args),
    )
    print(
        f"trained     {args.renderer} renderer, {args.field} field, {summary['steps']} steps "
        f"in {summary['seconds']:.0f} s{_resumed(summary)}"
    )
    print(
        f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f}, mask IoU "
        f"{summary['mask_iou']:.3f} over {summary['eval_views']} views -> {summary['images']}"
    )
    if "mesh" in summary:
        print(f"mesh        {summary['mesh']}  ({summary['vertices']} vertices)")
    else:
        print("mesh        none: the field has no surface in the scene box yet")
    print(f"checkpoint  {summary['checkpoint']}")
    if "turntable" in summary:
        print(f"turntable   {summary['turntable']}")
    return 0


def dvr_mesh(args: argparse.Namespace) -> int:
    """Extracts the surface of a DVR checkpoint by MISE as a mesh in the scene's
    coordinates."""
    from mp3d.implicit.dvr import mesh_dvr_checkpoint

    summary = mesh_dvr_checkpoint(
        args.checkpoint, args.out, args.initial, args.upsampling_steps, args.device
    )
    print(
        f"mesh        {summary['mesh']}  ({summary['vertices']} vertices, {summary['faces']} faces)"
    )
    return 0


def dvr_render(args: argparse.Namespace) -> int:
    """Renders a DVR checkpoint: turntables of colour and normals around its training
    cameras, and the held-out views with metrics when its training data is still there."""
    from mp3d.implicit.dvr import render_dvr_checkpoint

    summary = render_dvr_checkpoint(
        args.checkpoint, args.out, args.frames, args.renderer, args.device, not args.quiet
    )
    print(f"turntable   {summary['turntable']}")
    print(f"normals     {summary['normals']}")
    if "psnr" in summary:
        print(
            f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f}, mask IoU "
            f"{summary['mask_iou']:.3f} -> {summary['images']}"
        )
    return 0


# ----------------------------------------------------------------------------- gen


def _print_gen_scores(scores: dict) -> None:
    """The test NLL of a likelihood model, the translation scores of a translation model,
    or the sample scores of another."""
    if "directions" in scores:
        for name, row in scores["directions"].items():
            line = f"translation {name}: L1 {row['l1']:.4f} to the targets (the inputs: "
            line += f"{row['copy_l1']:.4f})"
            if row["accuracy"] is not None:
                line += (
                    f", classifier accuracy {row['accuracy']:.3f} (targets "
                    f"{row['target_accuracy']:.3f}, inputs {row['source_accuracy']:.3f})"
                )
            print(f"{line}, {scores['images']} images")
        if scores.get("note"):
            print(f"            accuracy not scored: {scores['note']}")
    elif "nats" in scores:
        kind = "" if scores["nll_kind"] == "exact" else f" ({scores['nll_kind']})"
        print(
            f"test NLL    {scores['nats']:.2f} nats per image, {scores['bits_per_dim']:.4f} "
            f"bits/dim{kind}, {scores['images']} images"
        )
    elif scores.get("fd") is None:
        print(f"samples     not scored: {scores.get('note', 'no digit classifier')}")
    else:
        line = f"samples     FD {scores['fd']:.1f} ({scores['fd_samples']} samples"
        line += f" vs {scores['fd_reference_images']} test images"
        if scores.get("sampling_steps") is not None:
            line += f", {scores['sampling_steps']} sampling steps"
        if scores.get("eta") is not None:
            line += f" at eta {scores['eta']:g}"
        line += ")"
        if scores.get("conditional_accuracy") is not None:
            line += f", conditional accuracy {scores['conditional_accuracy']:.3f}"
        print(line)


def gen_train(args: argparse.Namespace) -> int:
    """Trains a generative image model on the MNIST digits in --data (IDX files; the
    first images for training, the last 1,000 for evaluation), with dynamic binarisation or
    dequantisation as the model needs, then scores the evaluation images: NLL in nats per
    image and bits per dimension (exact, or a bound where the model has no exact
    likelihood). Writes OUT/checkpoint.pt (resumed), OUT/metrics.json and OUT/samples.png."""
    from mp3d.data.mnist import load_mnist
    from mp3d.generative import GenerativeConfig, train_generative

    options = None
    if args.task is not None:
        from mp3d.generative import model_spec

        spec = model_spec(args.model)
        if "task" not in spec.options:
            raise ValueError(f"--task: {args.model} takes no task (pix2pix and cyclegan do)")
        try:
            spec.make(task=args.task)
        except ValueError as error:
            raise ValueError(f"--task: {error}") from None
        options = {"task": args.task}
    data = load_mnist(args.data)
    config = _trainer_config(
        GenerativeConfig,
        args,
        model=args.model,
        batch_size=args.batch_size,
        lr=args.lr,
    )
    model = train_generative(
        data, config, args.out, args.device, not args.quiet, args.fresh, options
    )
    stats = model.train_stats
    print(
        f"trained     {args.model} on {len(data.train_images)} images, {stats['steps']} "
        f"steps in {stats['seconds']:.0f} s{_resumed(stats)}"
    )
    _print_gen_scores(model.test_scores)
    out = Path(args.out)
    print(f"samples     {out / 'samples.png'}")
    print(f"checkpoint  {out / 'checkpoint.pt'}")
    return 0


def gen_eval(args: argparse.Namespace) -> int:
    """Scores a trained model (CKPT: its checkpoint or run folder) on the evaluation
    images of --data: NLL in nats per image and bits per dimension, or, for models without
    a likelihood (GANs, diffusion), the Fréchet distance of 1,000 samples in the features of
    the digit classifier made by scripts/train_digit_classifier.py (and the conditional
    accuracy of conditional models)."""
    from mp3d.data.mnist import load_mnist
    from mp3d.generative import evaluate_model, load_generative

    model = load_generative(args.checkpoint, args.device)
    data = load_mnist(args.data)
    scores = evaluate_model(model, data, steps=args.sampling_steps, eta=args.eta)
    print(f"model       {type(model).__name__} ({args.checkpoint})")
    _print_gen_scores(scores)
    if args.json is not None:
        from mp3d.rendering import write_json

        print(f"json        {write_json(args.json, scores)}")
    return 0


def gen_sample(args: argparse.Namespace) -> int:
    """Draws --n samples from a trained model at --temperature (of the digit --label, with
    classifier-free --guidance, in --steps sampling steps, where the model takes them) and
    writes them as one PNG grid; a translation model (pix2pix, cyclegan) translates --n
    evaluation digits of --data instead, each source beside its translation and target."""
    import torch

    from mp3d.generative import load_generative, sample_grid
    from mp3d.generative.translation import TranslationModel

    if args.eta is not None and args.sampling_steps is None:
        raise ValueError("--eta: DDIM's noise level needs --steps (without it: DDPM)")
    model = load_generative(args.checkpoint, args.device)
    translates = isinstance(model, TranslationModel)
    if translates and args.temperature != 1.0:
        raise ValueError(f"--temperature: {type(model).__name__} models do not take it")
    conditions = {}
    if args.label is not None:
        conditions["labels"] = torch.full((args.n,), args.label, dtype=torch.int64)
    if args.guidance is not None:
        conditions["guidance"] = args.guidance
    if args.sampling_steps is not None:
        conditions["steps"] = args.sampling_steps
    if args.eta is not None:
        conditions["eta"] = args.eta
    option = {"labels": "--label", "guidance": "--guidance", "steps": "--steps", "eta": "--eta"}
    for name in conditions:
        if not model.sampler_takes(name):
            raise ValueError(f"{option[name]}: {type(model).__name__} models do not take it")
    data = None
    if args.data is not None:
        from mp3d.data.mnist import load_mnist

        data = load_mnist(args.data)
    path = sample_grid(
        model, args.out, args.n, args.temperature, args.seed, data=data, **conditions
    )
    given = "".join(
        f", {option[k]} {v if k != 'labels' else args.label}" for k, v in conditions.items()
    )
    if translates:
        print(f"translated  {path}  ({args.n} evaluation digits: source, translation, target)")
    else:
        print(f"samples     {path}  ({args.n} at temperature {args.temperature:g}{given})")
    return 0


# ----------------------------------------------------------------------------- implicit


def _print_scores(title: str, rows: list[dict]) -> None:
    from mp3d.implicit.evaluation import mean_metrics

    means = mean_metrics([{k: v for k, v in row.items() if k != "shape"} for row in rows])
    print(
        f"{title:<11} IoU {means['iou']:.3f}  Chamfer-L1 {means['chamfer_l1']:.4f}  normal "
        f"consistency {means['normal_consistency']:.3f}  F-score@1% {means['fscore']:.3f}  "
        f"({len(rows)} shapes)"
    )


def implicit_train(args: argparse.Namespace) -> int:
    """Trains an occupancy network (ResNet-PointNet encoder, conditional-batch-norm decoder)
    or a DeepSDF auto-decoder on the meshes of MESH_DIR, each in --copies random rotations
    and scales, plus --procedural shapes of mp3d's procedural family. The sampled training
    set is kept in OUT/shapes.npz (reused while the options stay the same), the checkpoint
    in OUT/checkpoint.pt (resumed). Afterwards it scores the model on the meshes named by
    --hold-out (left out of training) and on --eval-procedural procedural shapes never seen
    in training: IoU, Chamfer-L1, normal consistency and F-score, also in OUT/metrics.json."""
    from mp3d.implicit.shape_set import build_shape_set, load_mesh_dir
    from mp3d.implicit.shape_space import (
        UNSEEN_SEED_START,
        prepared_shape_set,
        score_model,
        shape_space,
    )
    from mp3d.rendering import write_json

    space = shape_space(args.model)
    meshes = load_mesh_dir(args.mesh_dir)
    names = [name for name, _ in meshes]
    unknown = sorted(set(args.hold_out) - set(names))
    if unknown:
        raise ValueError(
            f"--hold-out {', '.join(unknown)}: no such mesh in {args.mesh_dir} "
            f"(it has {', '.join(names)})"
        )
    training = [(name, mesh) for name, mesh in meshes if name not in args.hold_out]
    if not training and args.procedural == 0:
        raise ValueError("--hold-out leaves no mesh to train on; add --procedural shapes")
    config = _trainer_config(
        space.config_class,
        args,
    )
    out = Path(args.out)
    shapes = prepared_shape_set(
        out, training, args.copies, args.procedural, seed=args.seed, progress=not args.quiet
    )
    model = space.train(shapes, config, out, args.device, not args.quiet, args.fresh)
    stats = model.train_stats
    print(
        f"trained     {args.model} on {len(shapes)} shapes, {stats['steps']} steps in "
        f"{stats['seconds']:.0f} s{_resumed(stats)}"
    )
    report: dict = {"model": args.model, "train_shapes": len(shapes), **stats}
    held_out = [(name, mesh) for name, mesh in meshes if name in args.hold_out]
    evaluations = {
        "held_out_meshes": build_shape_set(held_out) if held_out else [],
        "unseen_procedural": build_shape_set(
            procedural_seeds=range(UNSEEN_SEED_START, UNSEEN_SEED_START + args.eval_procedural)
        )
        if args.eval_procedural
        else [],
    }
    for title, eval_shapes in evaluations.items():
        if eval_shapes:
            rows = score_model(space, model, eval_shapes, device=args.device)
            _print_scores(title.split("_")[0], rows)
            report[title] = rows
    print(f"checkpoint  {out / 'checkpoint.pt'}")
    print(f"metrics     {write_json(out / 'metrics.json', report)}")
    return 0


def implicit_reconstruct(args: argparse.Namespace) -> int:
    """Reconstructs a mesh from the points of POINTS (.ply, .xyz, .npz, or samples of a
    mesh file's surface) with a trained occupancy network (from a noisy cloud of its
    encoder's size) or DeepSDF model (a code inferred from the points, with +-eps samples
    along their normals, estimated when the file has none). The points are put in the unit
    cube of their bounding box as the training shapes were, and the mesh, extracted by
    MISE, comes back in their coordinates."""
    from mp3d.implicit.shape_space import reconstruct_mesh, space_of_checkpoint
    from mp3d.mesh import save_mesh

    space, checkpoint = space_of_checkpoint(args.checkpoint)
    model = space.load(checkpoint, args.device)
    points, normals = _surface_samples(args.points, args.samples)
    mesh = reconstruct_mesh(
        space,
        model,
        points,
        None if args.no_normals else normals,
        args.upsampling_steps,
        args.seed,
        args.device,
    )
    print(f"model       {space.name} ({checkpoint})")
    print(f"points      {len(points)} from {args.points}")
    print(
        f"mesh        {save_mesh(mesh, args.out)}  ({len(mesh.vertices)} vertices, "
        f"{len(mesh.faces)} faces, {mesh.metadata['resolution']}^3 grid by MISE)"
    )
    return 0


# ----------------------------------------------------------------------------- splat


def _print_splat_fit(summary: dict) -> None:
    print(
        f"trained     {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['steps_per_second']:.1f} steps/s), {summary['initial_gaussians']} -> "
        f"{summary['gaussians']} Gaussians"
    )
    print(
        f"test views  PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f} "
        f"over {summary['eval_views']} views -> {summary['images']}"
    )
    print(f"metrics     {summary['metrics']}")
    print(f"gaussians   {summary['ply']}")
    print(f"checkpoint  {summary['checkpoint']}")
    print(f"turntable   {summary['turntable']}")


def splat_train(args: argparse.Namespace) -> int:
    """Trains 3D Gaussians on a Blender or COLMAP scene folder (detected from its contents),
    evaluates them on held-out views and writes them as a 3DGS PLY file; a run already in
    --out is resumed unless --fresh."""
    from mp3d.splat import SplatConfig
    from mp3d.splat.pipeline import fit_scene

    config = _trainer_config(SplatConfig, args)
    with _live_view(args):
        summary = fit_scene(
            args.data,
            args.out,
            config,
            init_points=args.init_points,
            sh_degree=args.sh_degree,
            carve=not args.no_carve,
            **_scene_run_options(args),
        )
        _print_splat_fit(summary)
    return 0


def splat_render(args: argparse.Namespace) -> int:
    """Renders a turntable around the Gaussians of a 3DGS PLY file (frames and a GIF)."""
    from mp3d.splat.pipeline import render_ply

    summary = render_ply(
        args.ply,
        args.out,
        width=args.width,
        height=args.height,
        n_frames=args.frames,
        fov_deg=args.fov,
        elevation_deg=args.elevation,
        up=args.up,
        radius=args.radius,
        background=args.background,
        device=args.device,
        progress=not args.quiet,
    )
    print(f"rendered    {summary['gaussians']} Gaussians from radius {summary['radius']:.3g}")
    print(f"frames      {summary['frames']}")
    print(f"turntable   {summary['turntable']}")
    return 0


# ----------------------------------------------------------------------------- body


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
            raise ValueError(
                f"--pose expects JOINT=RX,RY,RZ (e.g. left_elbow=0,-1.5,0), got {item!r}"
            )
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
    print(
        f"mesh        {path}  ({output.vertices.shape[1]} vertices, "
        f"{output.faces.shape[0]} faces; model: {source})"
    )
    if args.keypoints_out:
        from mp3d.body.keypoints import keypoints_from_joints

        keypoints = keypoints_from_joints(output.joints[0], model.joint_names)
        print(
            f"keypoints   {keypoints.save(args.keypoints_out)}  (its joints seen from the "
            f"front, {keypoints.width}x{keypoints.height} px; try `mp3d body fit`)"
        )
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
    config = _config(SMPLifyConfig, sigma=args.sigma, keypoint_std=args.keypoint_std)
    result = fit_smplify(
        model,
        keypoints,
        keypoint_file.K,
        confidences=confidences,
        viewmat=keypoint_file.viewmat,
        config=config,
    )
    info = {
        "keypoints": str(args.keypoints),
        "model": args.model or "built-in body",
        "frame": "world (viewmat)" if keypoint_file.viewmat is not None else "camera",
        "image_size": (
            [keypoint_file.width, keypoint_file.height] if keypoint_file.width is not None else None
        ),
    }
    paths = save_fit(result, model, args.out, info=info, config=config)
    initial = float(
        (result.confidences * result.initial_joint_errors).sum() / result.confidences.sum()
    )
    print(
        f"fitted      {int((torch.as_tensor(confidences) > 0).sum())} keypoints in "
        f"{result.seconds:.1f} s; mean reprojection error {float(result.mean_error()[0]):.2f} "
        f"px (after the torso stage: {initial:.1f} px)"
    )
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


# ----------------------------------------------------------------------------- the parser


def _add_command(
    commands, name: str, run: Callable, help: str, **kwargs
) -> argparse.ArgumentParser:
    """A subcommand parser that runs `run`, described by its docstring."""
    p = commands.add_parser(name, help=help, description=run.__doc__, **kwargs)
    p.set_defaults(run=run, prog=p.prog)
    return p


def add_trainer_options(
    p: argparse.ArgumentParser,
    steps: int | None,
    steps_text: str = "",
    out_default: str | None = None,
    min_steps: int = 1,
) -> None:
    """The options every trainer takes, one way: --out, --steps, --minutes, --seed,
    --device, --fresh, --quiet. `steps` is the default number of steps (shown in the help
    unless `steps_text` describes it)."""
    if out_default is None:
        p.add_argument(
            "--out",
            required=True,
            type=folder_type,
            help="output folder (checkpoint, metrics, renders)",
        )
    else:
        p.add_argument(
            "--out",
            default=out_default,
            type=folder_type,
            help="output folder (default: %(default)s)",
        )
    add_budget_options(p, steps, steps_text, min_steps)


def add_budget_options(
    p: argparse.ArgumentParser, steps: int | None, steps_text: str = "", min_steps: int = 1
) -> None:
    """The trainer options besides --out: --steps, --minutes, --seed, --device, --fresh,
    --quiet (for trainers whose output is not a folder)."""
    from mp3d.training import TrainerConfig

    p.add_argument(
        "--steps",
        type=int_in(min_steps),
        default=None,
        help=f"training steps (default: {steps_text or steps}; with --minutes "
        f"alone, as many as fit in the time)",
    )
    p.add_argument(
        "--minutes",
        type=number_in(0.0, open_low=True),
        default=None,
        help="wall-time budget in minutes; with --steps, whichever comes first "
        "ends the run (default: no time limit)",
    )
    p.add_argument(
        "--seed",
        type=int_in(0),
        default=_field_default(TrainerConfig, "seed"),
        help="random seed (default: %(default)s)",
    )
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start over, deleting the checkpoint of the run, instead of resuming it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(default_steps=steps)


def _live_view(args: argparse.Namespace):
    """With --view, the viewer on the model being trained (mp3d.viewer.live); else nothing."""
    if not args.view:
        return contextlib.nullcontext()
    from mp3d.viewer.live import live_view

    return live_view(port=args.view_port, every=args.view_every)


def add_view_options(p: argparse.ArgumentParser) -> None:
    """--view, --view-port, --view-every: watch a trainer's model in the browser."""
    p.add_argument(
        "--view",
        action="store_true",
        help="show the model in the viewer while it trains (on 127.0.0.1; see mp3d view "
        "--help for ssh forwarding); the viewer stays up after training until Ctrl-C",
    )
    p.add_argument(
        "--view-port", type=int_in(1, 65535), default=8080, help="viewer port (default: 8080)"
    )
    p.add_argument(
        "--view-every",
        type=int_in(1),
        default=100,
        help="steps between viewer updates (default: %(default)s)",
    )


def add_scene_options(p: argparse.ArgumentParser) -> None:
    """What both trainers read a scene folder with: DATA, --downscale, --background,
    --holdout, --frames."""
    from mp3d.data.scene import DEFAULT_HOLDOUT

    p.add_argument(
        "data", help="scene folder: transforms_train.json (Blender) or sparse/0 (COLMAP)"
    )
    p.add_argument(
        "--downscale",
        type=int_in(1),
        default=1,
        help="integer image downscale factor (default: %(default)s)",
    )
    p.add_argument(
        "--background",
        type=background_type,
        default="white",
        help="Blender scenes: background the images are composited on: white, "
        "black, a grey level or R,G,B in [0, 1] (default: %(default)s)",
    )
    p.add_argument(
        "--holdout",
        type=int_in(2),
        default=DEFAULT_HOLDOUT,
        help="evaluate on every N-th view (Blender: unless the folder has a test "
        "split) (default: %(default)s)",
    )
    p.add_argument(
        "--frames",
        type=int_in(1, MAX_FRAMES),
        default=36,
        help="turntable frames (default: %(default)s)",
    )


def _mesh_out_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """--out: the mesh file a command writes, its type chosen by suffix."""
    from mp3d.mesh.marching_cubes import MESH_SUFFIXES

    p.add_argument(
        "--out",
        required=True,
        type=_file_type(MESH_SUFFIXES),
        help=help or f"mesh file: {', '.join(MESH_SUFFIXES)}",
    )


def _mise_options(p: argparse.ArgumentParser) -> None:
    """--initial and --upsampling-steps of MISE extraction."""
    p.add_argument(
        "--initial",
        type=int_in(1, 256),
        default=32,
        help="MISE: cells per axis of the coarse grid (default: %(default)s)",
    )
    p.add_argument(
        "--upsampling-steps",
        type=int_in(0, 6),
        default=3,
        help="MISE: subdivisions, final grid initial * 2^steps + 1 (default: %(default)s)",
    )


def _frames_option(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument(
        "--frames",
        type=int_in(1, MAX_FRAMES),
        default=default,
        help="turntable frames (default: %(default)s)",
    )


def _threshold_default() -> float:
    from mp3d.nerf.export import extract_mesh

    return _parameter_default(extract_mesh, "threshold")


def add_doctor_commands(commands) -> None:
    """`mp3d doctor`."""
    _add_command(commands, "doctor", doctor, COMMANDS["doctor"])


def add_demo_commands(commands) -> None:
    """`mp3d demo`."""
    p = _add_command(commands, "demo", demo, COMMANDS["demo"])
    p.add_argument(
        "--method",
        choices=["nerf", "splat"],
        default="nerf",
        help="NeRF (hash grid) or 3D Gaussian splatting (default: %(default)s)",
    )
    add_trainer_options(
        p,
        None,
        out_default="demo_out",
        min_steps=0,
        steps_text=f"{DEMO_STEPS['nerf']} for nerf, {DEMO_STEPS['splat']} for "
        f"splat; 0: only render the scene",
    )
    p.add_argument(
        "--views",
        type=int_in(1, MAX_DEMO_VIEWS),
        default=64,
        help="training views (default: %(default)s)",
    )
    p.add_argument(
        "--resolution",
        type=int_in(1, MAX_DEMO_RESOLUTION),
        default=100,
        help="image width and height in pixels (default: %(default)s)",
    )
    _frames_option(p, 36)
    p.add_argument(
        "--mesh-resolution",
        type=int_in(2, MAX_GRID_RESOLUTION),
        default=DEMO_MESH_RESOLUTION,
        help="nerf: marching-cubes grid size (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=number_in(),
        default=_threshold_default(),
        help="nerf: density level of the mesh surface (default: %(default)s)",
    )
    p.add_argument(
        "--init-points",
        type=int_in(2),
        default=DEMO_INIT_POINTS,
        help="splat: random Gaussians to start from (default: %(default)s)",
    )


def add_nerf_commands(commands) -> None:
    """`mp3d nerf train | render | mesh`."""
    from mp3d.nerf import TrainConfig
    from mp3d.nerf.pipeline import mesh_checkpoint
    from mp3d.nerf.trainer import BACKGROUNDS

    nerf = commands.add_parser("nerf", help=COMMANDS["nerf"], description="Neural radiance fields.")
    nerf_commands = nerf.add_subparsers(dest="nerf_command", metavar="COMMAND", required=True)
    p = _add_command(nerf_commands, "train", nerf_train, "train on a Blender or COLMAP folder")
    add_scene_options(p)
    add_trainer_options(p, _field_default(TrainConfig, "steps"))
    add_view_options(p)
    p.add_argument(
        "--model",
        choices=["hash", "vanilla"],
        default=_field_default(TrainConfig, "model"),
        help="hash grid (fast) or the original MLP (default: %(default)s)",
    )
    p.add_argument(
        "--batch-rays",
        type=int_in(1),
        default=_field_default(TrainConfig, "batch_rays"),
        help="rays per step (default: %(default)s)",
    )
    p.add_argument(
        "--train-background",
        choices=BACKGROUNDS,
        default=_field_default(TrainConfig, "background"),
        help="background used while training (default: %(default)s)",
    )

    p = _add_command(nerf_commands, "render", nerf_render, "render a checkpoint")
    p.add_argument("checkpoint", help="checkpoint.pt written by `mp3d nerf train`")
    p.add_argument("--out", required=True, type=folder_type, help="output folder")
    _frames_option(p, 36)
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _add_command(nerf_commands, "mesh", nerf_mesh, "extract a mesh from a checkpoint")
    p.add_argument("checkpoint", help="checkpoint.pt written by `mp3d nerf train`")
    _mesh_out_option(p)
    p.add_argument(
        "--resolution",
        type=int_in(2, MAX_GRID_RESOLUTION),
        default=_parameter_default(mesh_checkpoint, "resolution"),
        help="marching-cubes grid size (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=number_in(),
        default=_threshold_default(),
        help="density level of the surface (default: %(default)s)",
    )
    p.add_argument("--no-colour", action="store_true", help="do not colour the vertices")
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_splat_commands(commands) -> None:
    """`mp3d splat train | render`."""
    from mp3d.ops.gaussians import MAX_SH_DEGREE
    from mp3d.splat import SplatConfig
    from mp3d.splat.pipeline import INIT_POINTS_CPU, INIT_POINTS_CUDA, render_ply

    splat = commands.add_parser(
        "splat", help=COMMANDS["splat"], description="3D Gaussian splatting."
    )
    splat_commands = splat.add_subparsers(dest="splat_command", metavar="COMMAND", required=True)
    p = _add_command(splat_commands, "train", splat_train, "train on a Blender or COLMAP folder")
    add_scene_options(p)
    add_trainer_options(p, _field_default(SplatConfig, "steps"))
    add_view_options(p)
    p.add_argument(
        "--init-points",
        type=int_in(2),
        default=None,
        help=f"Blender scenes: random Gaussians to start from (default: "
        f"{INIT_POINTS_CUDA} on CUDA, {INIT_POINTS_CPU} on CPU); COLMAP scenes "
        f"start from points3D",
    )
    p.add_argument(
        "--no-carve",
        action="store_true",
        help="Blender scenes: start anywhere in the scene box rather than inside the "
        "visual hull of the alpha masks",
    )
    p.add_argument(
        "--sh-degree",
        type=int_in(0, MAX_SH_DEGREE),
        default=MAX_SH_DEGREE,
        help="largest spherical-harmonics degree (default: %(default)s)",
    )

    def default(name):
        return _parameter_default(render_ply, name)

    p = _add_command(splat_commands, "render", splat_render, "render a turntable of a PLY file")
    p.add_argument("ply", help="Gaussians in the 3DGS PLY layout (e.g. point_cloud.ply)")
    p.add_argument("--out", required=True, type=folder_type, help="output folder")
    for name in ("width", "height"):
        p.add_argument(
            f"--{name}",
            type=int_in(1, MAX_IMAGE_SIDE),
            default=default(name),
            help=f"image {name} in pixels (default: %(default)s)",
        )
    _frames_option(p, default("n_frames"))
    p.add_argument(
        "--fov",
        type=number_in(0.0, 180.0, open_low=True, open_high=True),
        default=default("fov_deg"),
        help="horizontal field of view in degrees (default: %(default)s)",
    )
    p.add_argument(
        "--elevation",
        type=number_in(-90.0, 90.0, open_low=True, open_high=True),
        default=default("elevation_deg"),
        help="camera elevation in degrees (default: %(default)s)",
    )
    p.add_argument(
        "--up",
        default=default("up"),
        choices=["+x", "-x", "+y", "-y", "+z", "-z"],
        help="world axis to turn about (default: %(default)s; COLMAP scenes often -y)",
    )
    p.add_argument(
        "--radius",
        type=number_in(0.0, open_low=True),
        default=None,
        help="camera distance (default: frame the opaque Gaussians)",
    )
    p.add_argument(
        "--background",
        type=background_type,
        default=default("background"),
        help="white, black, a grey level or R,G,B in [0, 1] (default: %(default)s)",
    )
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_body_commands(commands) -> None:
    """`mp3d body pose | fit`."""
    from mp3d.body.fit import SMPLifyConfig

    body = commands.add_parser(
        "body", help=COMMANDS["body"], description="Parametric human bodies (SMPL)."
    )
    body_commands = body.add_subparsers(dest="body_command", metavar="COMMAND", required=True)
    model_help = "SMPL model file (.pkl as distributed, or .npz) (default: the built-in body)"
    number = number_in()
    p = _add_command(body_commands, "pose", body_pose, "pose a body and write the mesh")
    p.add_argument("--model", default=None, help=model_help)
    _mesh_out_option(p, "mesh file: .obj or .ply (or .glb, .off, .stl)")
    p.add_argument(
        "--betas",
        type=number,
        nargs="+",
        metavar="B",
        default=None,
        help="shape coefficients, first ones first (e.g. --betas 1.5 -0.5)",
    )
    p.add_argument(
        "--pose",
        nargs="+",
        action="extend",
        metavar="JOINT=RX,RY,RZ",
        default=None,
        help="a joint's axis-angle rotation, by name or index, repeatable "
        "(e.g. --pose left_elbow=0,-1.5,0 right_knee=1,0,0 bends the left "
        "forearm forward and the right shin back)",
    )
    p.add_argument(
        "--global-orient",
        type=number,
        nargs=3,
        metavar=("RX", "RY", "RZ"),
        default=None,
        help="axis-angle rotation of the whole body about the pelvis",
    )
    p.add_argument(
        "--transl",
        type=number,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=None,
        help="translation in metres",
    )
    p.add_argument(
        "--degrees", action="store_true", help="angles of --pose and --global-orient are in degrees"
    )
    p.add_argument(
        "--keypoints-out",
        default=None,
        metavar="JSON",
        type=_file_type((".json",)),
        help="also write the posed joints as seen by a camera in front of the body, "
        "in the KEYPOINTS.json format of `mp3d body fit`",
    )

    p = _add_command(
        body_commands,
        "fit",
        body_fit,
        "fit a body to 2D keypoints (SMPLify)",
        epilog=_KeypointsFormatHelp.PLACEHOLDER,
        formatter_class=_KeypointsFormatHelp,
    )
    p.add_argument("keypoints", help="KEYPOINTS.json (format below)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--out", required=True, type=folder_type, help="output folder")
    p.add_argument(
        "--sigma",
        type=number_in(0.0, open_low=True),
        default=_field_default(SMPLifyConfig, "sigma"),
        help="Geman-McClure scale in pixels: residuals beyond it count less and less "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--keypoint-std",
        type=number_in(0.0, open_low=True),
        default=_field_default(SMPLifyConfig, "keypoint_std"),
        help="expected keypoint error in pixels; larger trusts the priors more "
        "(default: %(default)s)",
    )


def add_mesh_commands(commands) -> None:
    """`mp3d mesh eval`."""
    from mp3d.mesh.metrics import DEFAULT_POINTS, DEFAULT_TAU

    mesh = commands.add_parser("mesh", help=COMMANDS["mesh"], description="Mesh metrics.")
    mesh_commands = mesh.add_subparsers(dest="mesh_command", metavar="COMMAND", required=True)
    p = _add_command(mesh_commands, "eval", mesh_eval, "reconstruction metrics of two meshes")
    p.add_argument("pred", help="reconstructed mesh (.obj, .ply, .off, .stl, .glb)")
    p.add_argument("gt", help="ground-truth mesh")
    p.add_argument(
        "--points",
        type=int_in(1, 10_000_000),
        default=DEFAULT_POINTS,
        help="surface samples of each mesh (default: %(default)s)",
    )
    p.add_argument(
        "--tau",
        type=number_in(0.0, open_low=True),
        default=DEFAULT_TAU,
        help="F-score distance threshold (default: %(default)s, 1%% of the unit cube)",
    )
    p.add_argument(
        "--no-normalise",
        action="store_true",
        help="keep the meshes' own units instead of GT's unit cube",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="sampling seed (default: 0)")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")


def add_sdf_commands(commands) -> None:
    """`mp3d sdf fit`."""
    from mp3d.implicit import IGRConfig

    sdf = commands.add_parser("sdf", help=COMMANDS["sdf"], description="Signed-distance fields.")
    sdf_commands = sdf.add_subparsers(dest="sdf_command", metavar="COMMAND", required=True)
    p = _add_command(sdf_commands, "fit", sdf_fit, "fit IGR to points or a mesh, write its mesh")
    p.add_argument("source", help="POINTS (.ply, .xyz, .npz) or MESH (.obj, .ply, .off, ...)")
    _mesh_out_option(p)
    p.add_argument(
        "--run",
        dest="run_dir",
        type=folder_type,
        default=None,
        help="folder for checkpoints, resumed if it holds one (default: none)",
    )
    p.add_argument(
        "--field",
        choices=["mlp", "hash"],
        default=_field_default(IGRConfig, "field"),
        help="an MLP (autograd gradients) or a hash grid (finite-difference gradients) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--points",
        type=int_in(2, 10_000_000),
        default=100_000,
        help="surface samples of a mesh (default: %(default)s)",
    )
    p.add_argument(
        "--no-normals",
        action="store_true",
        help="ignore normals (a mesh's face normals, or a cloud's nx, ny, nz)",
    )
    _mise_options(p)
    add_budget_options(p, _field_default(IGRConfig, "steps"))


def add_data_commands(commands) -> None:
    """`mp3d data render-mesh`."""
    from mp3d.cameras import AXES

    data = commands.add_parser("data", help=COMMANDS["data"], description="Datasets.")
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    p = _add_command(
        data_commands, "render-mesh", data_render_mesh, "render a mesh into posed images"
    )
    p.add_argument("mesh", metavar="MESH", help="mesh file to render (.obj, .ply, .off, ...)")
    p.add_argument("--out", required=True, type=folder_type, help="output folder")
    p.add_argument(
        "--views",
        type=int_in(1, 10_000),
        default=50,
        help="training views (default: %(default)s)",
    )
    p.add_argument(
        "--test-views",
        type=int_in(0, 10_000),
        default=10,
        help="test views, at other positions (default: %(default)s)",
    )
    p.add_argument(
        "--resolution",
        type=int_in(1, 8192),
        default=128,
        help="image width and height in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--fov",
        type=number_in(0.0, 180.0, open_low=True, open_high=True),
        default=40.0,
        help="field of view in degrees (default: %(default)s)",
    )
    p.add_argument(
        "--up",
        choices=sorted(AXES),
        default="+z",
        help="the mesh's up axis, shown upwards (default: %(default)s; spot and the bunny are +y)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "embree", "open3d"],
        default="auto",
        help="ray caster (default: %(default)s: Embree, else open3d)",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="procedural colour seed")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_dvr_commands(commands) -> None:
    """`mp3d dvr train | mesh | render`."""
    from mp3d.implicit.dvr import FIELDS, RENDERERS, DVRConfig

    dvr = commands.add_parser("dvr", help=COMMANDS["dvr"], description="Surfaces from images.")
    dvr_commands = dvr.add_subparsers(dest="dvr_command", metavar="COMMAND", required=True)
    p = _add_command(dvr_commands, "train", dvr_train, "learn a surface from a Blender folder")
    add_scene_options(p)
    add_trainer_options(p, _field_default(DVRConfig, "steps"))
    p.add_argument(
        "--field",
        choices=FIELDS,
        default=_field_default(DVRConfig, "field"),
        help="signed-distance network: an MLP or a hash grid (default: %(default)s)",
    )
    p.add_argument(
        "--renderer",
        choices=RENDERERS,
        default=_field_default(DVRConfig, "renderer"),
        help="surface (DVR) or volume (NeuS) rendering (default: %(default)s)",
    )

    p = _add_command(dvr_commands, "mesh", dvr_mesh, "the mesh of a DVR checkpoint")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file")
    _mesh_out_option(p)
    _mise_options(p)
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)

    p = _add_command(dvr_commands, "render", dvr_render, "turntables of a DVR checkpoint")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file")
    p.add_argument("--out", required=True, type=folder_type, help="output folder")
    _frames_option(p, 36)
    p.add_argument(
        "--renderer",
        choices=RENDERERS,
        default=None,
        help="render with this renderer (default: the one it was trained with)",
    )
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_gen_commands(commands) -> None:
    """`mp3d gen train`, `mp3d gen eval` and `mp3d gen sample`."""
    from mp3d.generative import GenerativeConfig, models

    gen = commands.add_parser("gen", help=COMMANDS["gen"], description="Generative models.")
    gen_commands = gen.add_subparsers(dest="gen_command", metavar="COMMAND", required=True)
    specs = models()
    listing = "; ".join(f"{name}: {spec.summary}" for name, spec in specs.items())
    p = _add_command(gen_commands, "train", gen_train, "train a model on MNIST digits")
    p.add_argument("model", choices=list(specs), metavar="MODEL", help=listing)
    p.add_argument("--data", required=True, help="folder of MNIST IDX files")
    p.add_argument(
        "--batch-size",
        type=int_in(1, 1 << 16),
        default=None,
        help="images per step (default: the model's own)",
    )
    p.add_argument(
        "--lr",
        type=number_in(0.0, 1.0, open_low=True),
        default=None,
        help="Adam learning rate (default: the model's own)",
    )
    p.add_argument(
        "--task",
        default=None,
        help="the digit task of a translation model: pix2pix edges|half (edge map or top "
        "half -> digit), cyclegan thicken|invert (default: edges, thicken)",
    )
    add_trainer_options(p, _field_default(GenerativeConfig, "steps"))

    p = _add_command(gen_commands, "eval", gen_eval, "test NLL of a trained model")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument("--data", required=True, help="folder of MNIST IDX files")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.add_argument(
        "--steps",
        dest="sampling_steps",
        type=int_in(1, 100_000),
        default=100,
        help="sampling steps of models that take them (diffusion: DDIM with this many; "
        "default: 100, as after training)",
    )
    p.add_argument("--eta", type=number_in(0.0, 1.0), default=None, help=ETA_HELP)
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)

    p = _add_command(gen_commands, "sample", gen_sample, "a grid of samples of a model")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument("--out", required=True, type=_file_type((".png",)), help="PNG file for the grid")
    p.add_argument("--n", type=int_in(1, 1024), default=64, help="samples (default: 64)")
    p.add_argument(
        "--temperature",
        type=number_in(0.0, 10.0, open_low=True),
        default=1.0,
        help="sampling temperature (default: 1)",
    )
    p.add_argument("--label", type=int_in(0, 9), default=None, help="digit class to draw")
    p.add_argument(
        "--data",
        default=None,
        help="folder of MNIST IDX files: the digits a translation model translates (required "
        "for pix2pix and cyclegan)",
    )
    p.add_argument(
        "--guidance",
        type=number_in(0.0, 100.0),
        default=None,
        help="classifier-free guidance weight (guided diffusion models)",
    )
    p.add_argument(
        "--steps",
        dest="sampling_steps",
        type=int_in(1, 100_000),
        default=None,
        help="sampling steps (diffusion models: DDIM with this many; default: all)",
    )
    p.add_argument("--eta", type=number_in(0.0, 1.0), default=None, help=ETA_HELP)
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed (default: 0)")
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)


def add_implicit_commands(commands) -> None:
    """`mp3d implicit train` and `mp3d implicit reconstruct`."""
    from mp3d.implicit.shape_space import KINDS, UNSEEN_SEED_START

    implicit = commands.add_parser(
        "implicit", help=COMMANDS["implicit"], description="Learned shape spaces."
    )
    implicit_commands = implicit.add_subparsers(
        dest="implicit_command", metavar="COMMAND", required=True
    )
    p = _add_command(
        implicit_commands, "train", implicit_train, "train ONet or DeepSDF on a mesh folder"
    )
    p.add_argument("model", choices=KINDS, help="onet (occupancy network) or deepsdf")
    p.add_argument("mesh_dir", metavar="MESH_DIR", help="folder of meshes (.obj, .ply, ...)")
    p.add_argument(
        "--copies",
        type=int_in(1, 1000),
        default=4,
        help="random rotations and scales of each mesh (default: %(default)s)",
    )
    p.add_argument(
        "--procedural",
        type=int_in(0, UNSEEN_SEED_START),
        default=32,
        help="procedural shapes (seeds 0..N-1) added to the training set (default: %(default)s)",
    )
    p.add_argument(
        "--hold-out",
        nargs="+",
        default=[],
        metavar="NAME",
        help="meshes (file stems) left out of training and scored afterwards",
    )
    p.add_argument(
        "--eval-procedural",
        type=int_in(0, 1000),
        default=4,
        help=f"procedural shapes never seen in training (seeds from {UNSEEN_SEED_START}) "
        "scored afterwards (default: %(default)s)",
    )
    add_trainer_options(p, 2000)

    p = _add_command(
        implicit_commands,
        "reconstruct",
        implicit_reconstruct,
        "a mesh from a point cloud with a trained model",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument("points", metavar="POINTS", help="point cloud (.ply, .xyz, .npz) or mesh")
    _mesh_out_option(p)
    p.add_argument(
        "--samples",
        type=int_in(1, 10_000_000),
        default=3000,
        help="surface samples taken when POINTS is a mesh (default: %(default)s)",
    )
    p.add_argument("--no-normals", action="store_true", help="ignore the file's normals")
    p.add_argument(
        "--upsampling-steps",
        type=int_in(0, 6),
        default=3,
        help="MISE: subdivisions of the 32^3 grid (default: %(default)s)",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed (default: 0)")
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)


def add_seq_commands(commands) -> None:
    """`mp3d seq train | eval | sample` (built in mp3d.sequence.commands, imported here
    so that `mp3d --help` stays fast)."""
    from mp3d.sequence.commands import add_seq_commands as add

    add(commands)


def add_rl_commands(commands) -> None:
    """`mp3d rl train | eval` (built in mp3d.rl.commands, imported here so that
    `mp3d --help` stays fast)."""
    from mp3d.rl.commands import add_rl_commands as add

    add(commands)


def add_view_commands(commands) -> None:
    """`mp3d view` (the viewer, mp3d.viewer, is imported only when its group is built)."""
    from mp3d.viewer.cli import add_view_commands as add

    add(commands)


_GROUPS = {
    "doctor": add_doctor_commands,
    "demo": add_demo_commands,
    "nerf": add_nerf_commands,
    "splat": add_splat_commands,
    "body": add_body_commands,
    "mesh": add_mesh_commands,
    "sdf": add_sdf_commands,
    "data": add_data_commands,
    "dvr": add_dvr_commands,
    "gen": add_gen_commands,
    "implicit": add_implicit_commands,
    "view": add_view_commands,
    "seq": add_seq_commands,
    "rl": add_rl_commands,
}


def build_parser(only: str | None = "all") -> argparse.ArgumentParser:
    """The `mp3d` parser. Building a command group imports its library (for its defaults),
    so with `only` set to one group's name the others get a placeholder that only lists
    them (None: placeholders only, enough for `mp3d --help`); "all" builds every group."""
    parser = argparse.ArgumentParser(prog="mp3d", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add_group in _GROUPS.items():
        if only in ("all", name):
            add_group(commands)
        else:
            commands.add_parser(name, help=COMMANDS[name])
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The command group named in `argv` (the first word that is one), or None."""
    return next((word for word in argv if word in _GROUPS), None)


def _error_message(error: BaseException) -> str | None:
    """The one line that reports a user error, or None if `error` is not one (a bug)."""
    if isinstance(error, OSError) and error.filename is not None:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
        return f"{names}: {error.strerror or error}"
    # The libraries' own messages: bad values, files, and a missing optional package.
    if isinstance(error, (ValueError, OSError, ImportError)):
        return " ".join(str(error).split("\n")) or type(error).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs the `mp3d` command line on `argv` (default: sys.argv[1:]); returns the exit
    status: 0 on success, 2 on a user error, reported on stderr in one line."""
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    parser = build_parser(_command_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or an error argparse reported
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.version:
        import mp3d

        print(mp3d.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                return args.run(args)
        return args.run(args)
    except (ValueError, OSError, ImportError) as error:
        message = _error_message(error)
        if message is None:
            raise
        print(f"{args.prog}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
