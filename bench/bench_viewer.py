"""Speed of the interactive viewer (mp3d.viewer): loading a large splat file, server-side
renders of Gaussians and of a NeRF, and how much the live viewer slows training down.

Parts (--parts; every one but the browser's frame rate by default):
  load          a synthetic 3DGS PLY of --gaussians Gaussians (SH degree 3, a ball of radius
                0.8) written to a temporary folder, or --ply FILE: time to read it into the
                viewer's splat layer, to compute the covariances and colours viser takes, and
                to add the layer to a Viewer on 127.0.0.1. With --browser (minutes under
                headless chromium's software WebGL): time from opening the page to the
                splats drawn, and the page's requestAnimationFrame rate with a still camera.
  splat-render  the exact server-side render of those Gaussians (all SH bands) at the preview
                and refined sizes (longer side 96 and 384 px, 16:9): ms per frame and fps.
  nerf-fps      the same for a NeRF checkpoint (--nerf CKPT), or, without one, a tiny hash NeRF
                trained for a few steps on the built-in demo scene (mp3d.data.demo).
  live          training steps/s of a tiny hash NeRF on the demo scene without the viewer (A)
                and with LiveTraining updating it every --view-every steps (B), alternated
                A B A B; in B a headless chromium page is connected (the viewer renders the
                model on the server for it), or, without chromium, no page is, and snapshots
                are taken as if one were. Prints the slowdown in percent.

The browser is Debian's chromium (/usr/bin/chromium) driven by Playwright, as in
tests/viewer/test_browser.py. Temporary files go to a fresh temporary folder, removed at exit.

    python bench/bench_viewer.py                          # 1M Gaussians; load, renders, live
    python bench/bench_viewer.py --gaussians 100000 --parts load splat-render
    python bench/bench_viewer.py --parts load --browser   # the page's frame rate (minutes)
    python bench/bench_viewer.py --parts nerf-fps --nerf runs/lego/checkpoint.pt --threads 2
    python bench/bench_viewer.py --parts live --view-every 25 --live-steps 150 --rounds 3

Measured (`--gaussians 100000`, 1 thread, a 2-core CPU busy with other work, load 3-5):
read + add 0.23 s; exact splat render 104 ms at 96x54, 161 ms at 384x216; tiny NeRF 43 and
258 ms; live training 19.1 steps/s without the viewer, 11.7 with it (every 25 steps, page
connected): 39% slower.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mp3d.viewer.headless import browser_missing, chromium, free_port, wait_for

PARTS = ("load", "splat-render", "nerf-fps", "live")
SIDES = (96, 384)  # the viewer's preview and refined sizes (longer side, pixels)
ASPECT = 16 / 9
VIEWPORT = {"width": 900, "height": 500}
DIFFERENT = 40  # grey levels from the white page that count as drawn
# A hash NeRF small enough to train at tens of steps per second on a CPU core.
TINY_NERF = dict(
    model="hash",
    batch_rays=512,
    n_levels=8,
    log2_table_size=13,
    finest_resolution=96,
    grid_resolution=24,
    checkpoint_every=100_000,
)


# ----------------------------------------------------------------------------- helpers


def open_page(browser, viewer, timeout: float = 120.0):
    """A page connected to `viewer`, once the viewer runs a render loop for it."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(viewer.url, timeout=1000 * timeout)
    wait_for(lambda: viewer.server.get_clients(), timeout, "the page to connect")
    client = next(iter(viewer.server.get_clients().values()))
    wait_for(lambda: client.client_id in viewer.renderers, timeout, "a render loop")
    return page


def write_splats(path: Path, n: int, sh_degree: int = 3, seed: int = 0) -> Path:
    """n opaque Gaussians (scale 0.05) filling a ball of radius 0.8 at the origin, orange
    where x > 0 and blue elsewhere, with random higher SH bands, as a 3DGS PLY file (the
    scene of tests/viewer/scenes.py, at any SH degree)."""
    from mp3d.splat.model import SH_C0, inverse_sigmoid
    from mp3d.splat.ply import save_ply

    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    means = directions * 0.8 * torch.rand(n, 1, generator=generator) ** (1 / 3)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=generator), dim=-1)
    log_scales = torch.full((n, 3), math.log(0.05))
    opacity_logits = inverse_sigmoid(torch.full((n,), 0.9))
    sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
    colours = torch.where(
        means[:, :1] > 0, torch.tensor([1.0, 0.55, 0.1]), torch.tensor([0.15, 0.35, 0.9])
    )
    sh[:, 0] = (colours - 0.5) / SH_C0
    if sh_degree >= 1:
        sh[:, 1:] = 0.05 * torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=generator)
    return save_ply(path, means, quats, log_scales, opacity_logits, sh)


def synthetic_ply(args, folder: Path) -> Path:
    """folder/splats_N.ply of write_splats with N = --gaussians, written once."""
    path = folder / f"splats_{args.gaussians}.ply"
    return path if path.is_file() else write_splats(path, args.gaussians)


def orbit_views(bounds: np.ndarray, up: str, n: int):
    """n ViewRequests (16:9) circling the box bounds [2,3] at the viewer's first-view
    distance and elevation, starting at the first view."""
    from mp3d.cameras import look_at
    from mp3d.viewer.app import FOV_Y, _axis, framing
    from mp3d.viewer.cameras import pose_from_viewmat
    from mp3d.viewer.progressive import ViewRequest

    position, centre = framing(bounds, up)
    axis = _axis(up)
    views = []
    for k in range(n):
        angle = 2 * math.pi * k / n
        offset = position - centre
        # Rodrigues' rotation of the offset about the up axis.
        offset = (
            offset * math.cos(angle)
            + np.cross(axis, offset) * math.sin(angle)
            + axis * (axis @ offset) * (1 - math.cos(angle))
        )
        eye = torch.as_tensor(centre + offset, dtype=torch.float64)
        viewmat = look_at(eye, torch.as_tensor(centre, dtype=torch.float64), torch.as_tensor(axis))
        wxyz, pos = pose_from_viewmat(viewmat)
        views.append(ViewRequest(tuple(wxyz), tuple(pos), FOV_Y, ASPECT))
    return views


def render_rate(layer, depth_range: tuple[float, float], up: str, frames: int) -> list[tuple]:
    """Rows (size, ms per frame, fps) of `layer`'s server-side RGB render, through the
    viewer's ProgressiveRenderer, at each of SIDES: median of `frames` frames around the
    content after one frame of warm-up."""
    from mp3d.viewer.app import output_image
    from mp3d.viewer.progressive import ProgressiveRenderer

    rows = []
    for side in SIDES:
        shapes, times = [], []
        renderer = ProgressiveRenderer(
            lambda camera: output_image(layer.render(camera), "rgb", depth_range),
            lambda image, level, shapes=shapes: shapes.append(image.shape),
            preview_side=side,
            full_side=side,
            settle_s=0.0,
            n_strips=layer.render_strips,
        )
        views = orbit_views(layer.bounds(), up, frames)
        for k, view in enumerate([views[0], *views]):
            renderer.request(view)
            start = time.perf_counter()
            renderer.run_job(renderer.next_job())
            if k > 0:
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        height, width = shapes[-1][:2]
        rows.append((f"{width}x{height} px", 1000 * seconds, 1 / seconds))
        print(f"  {width}x{height}: {1000 * seconds:.0f} ms per frame", flush=True)
    return rows


def demo_views(folder: Path):
    """The training views of the demo scene (32 px, 24 views), written once into folder."""
    from mp3d.data.blender import load_blender
    from mp3d.data.demo import write_demo_scene

    scene = folder / "demo"
    if not scene.is_dir():
        write_demo_scene(scene, n_train=24, n_val=1, n_test=1, resolution=32, progress=False)
    return load_blender(scene, "train", progress=False)


# ----------------------------------------------------------------------------- parts


def part_load(args, folder: Path, table: list) -> Path:
    """Times the splat file's way into the viewer (and, with --browser, onto the page)."""
    from mp3d.viewer.app import Viewer
    from mp3d.viewer.splats import SplatLayer, splat_arrays

    path = args.ply
    if path is None:
        start = time.perf_counter()
        path = synthetic_ply(args, folder)
        size = f"{path.stat().st_size / 1e6:.0f} MB"
        what = f"write PLY ({args.gaussians:,} Gaussians, SH 3, {size})"
        table.append(("load", what, time.perf_counter() - start, "s"))
    start = time.perf_counter()
    layer = SplatLayer.from_ply(path, "/0")
    read_s = time.perf_counter() - start
    table.append(("load", f"read PLY -> splat layer ({len(layer.model):,} Gaussians)", read_s, "s"))
    start = time.perf_counter()
    splat_arrays(layer.model)
    table.append(("load", "covariances + colours", time.perf_counter() - start, "s"))
    viewer = Viewer(port=free_port())
    try:
        start = time.perf_counter()
        viewer.add_layer(layer)
        add_s = time.perf_counter() - start
        table.append(("load", "add to viewer (arrays again, packing)", add_s, "s"))
        table.append(("load", "total: read + add", read_s + add_s, "s"))
        print(f"  {len(layer.model):,} Gaussians in the viewer at {viewer.url}", flush=True)
        if args.browser:
            browser_frame_rate(args, viewer, table)
    finally:
        viewer.stop()
    return path


def browser_frame_rate(args, viewer, table: list) -> None:
    """Time from page.goto to the splats on screen, then the requestAnimationFrame rate."""
    from PIL import Image

    missing = browser_missing()
    if missing is not None:
        print(f"  browser: skipped: {missing}", flush=True)
        table.append(("load", f"browser: skipped ({missing})", math.nan, ""))
        return
    with chromium() as browser:
        start = time.perf_counter()
        page = open_page(browser, viewer, timeout=args.browser_timeout)
        width, height = page.evaluate(
            """() => {
                const sizes = [...document.querySelectorAll('canvas')].map(
                    c => c.getBoundingClientRect()).filter(r => r.left < 1 && r.top < 1);
                const best = sizes.sort((a, b) => b.width * b.height - a.width * a.height)[0];
                return [Math.round(best.width), Math.round(best.height)];
            }"""
        )

        def drawn() -> bool:  # the canvas centre, where the ball projects, is not white
            shot = page.screenshot(timeout=1000 * args.browser_timeout)
            image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
            centre = image[height // 2 - 20 : height // 2 + 20, width // 2 - 20 : width // 2 + 20]
            return bool(np.abs(centre - 255).max() > DIFFERENT)

        wait_for(drawn, args.browser_timeout, "the splats to be drawn")
        table.append(
            ("load", "browser: page opened to splats drawn", time.perf_counter() - start, "s")
        )
        fps = page.evaluate(
            """() => new Promise(done => {
                let n = 0; const t0 = performance.now();
                function frame() {
                    n++;
                    if (performance.now() - t0 < 5000) requestAnimationFrame(frame);
                    else done(n / ((performance.now() - t0) / 1000));
                }
                requestAnimationFrame(frame);
            })"""
        )
        table.append(("load", "browser: requestAnimationFrame, still camera", fps, "fps"))
        page.close()


def part_splat_render(args, path: Path, table: list) -> None:
    """The exact server-side splat render at the two sizes."""
    from mp3d.viewer.splats import SplatLayer

    layer = SplatLayer.from_ply(path, "/0")
    print(f"  {layer.label}", flush=True)
    for size, ms, fps in render_rate(layer, (0.0, 1.0), "+z", args.frames):
        table.append(
            ("splat-render", f"{len(layer.model):,} Gaussians, {size}", ms, f"ms ({fps:.2f} fps)")
        )


def part_nerf_fps(args, folder: Path, table: list) -> None:
    """The server-side NeRF render at the two sizes."""
    from mp3d.viewer.app import framing
    from mp3d.viewer.fields import FieldLayer

    checkpoint = args.nerf
    if checkpoint is None:
        from mp3d.nerf import TrainConfig, train

        views = demo_views(folder)
        print(
            f"  training a tiny hash NeRF on the demo scene for {args.nerf_steps} steps", flush=True
        )
        config = TrainConfig(steps=args.nerf_steps, **TINY_NERF)
        train(views, config, out_dir=folder / "nerf", progress=False, fresh=True)
        checkpoint = folder / "nerf" / "checkpoint.pt"
    layer = FieldLayer.from_checkpoint(checkpoint, "/0", "mp3d.nerf")
    bounds = layer.bounds()
    radius = 0.5 * float(np.linalg.norm(bounds[1] - bounds[0]))
    position, centre = framing(bounds, layer.up())
    distance = float(np.linalg.norm(position - centre))
    depth_range = (max(distance - radius, 0.0), distance + radius)  # as the viewer sets it
    print(f"  {layer.label}", flush=True)
    for size, ms, fps in render_rate(layer, depth_range, layer.up(), args.frames):
        table.append(("nerf-fps", f"{layer.kind}, {size}", ms, f"ms ({fps:.2f} fps)"))


def part_live(args, folder: Path, table: list) -> None:
    """Training steps/s without (A) and with (B) the live viewer, alternated."""
    from mp3d.nerf import TrainConfig, train
    from mp3d.viewer.app import Viewer
    from mp3d.viewer.live import LiveTraining

    views = demo_views(folder)
    config = TrainConfig(steps=args.live_steps, **TINY_NERF)
    missing = browser_missing()
    if missing is None:
        how = "a headless chromium page connected"
    else:
        how = f"no browser ({missing}): snapshots taken as if one were connected, no renders"
        print(f"  {how}", flush=True)

    def steps_per_second() -> float:
        start = time.perf_counter()
        train(views, config, progress=False)
        return args.live_steps / (time.perf_counter() - start)

    viewer = Viewer(port=free_port())
    live = LiveTraining(viewer, every=args.view_every)
    live.only_when_watched = missing is None
    results: dict[str, list[float]] = {"A": [], "B": []}
    renders = {"preview": 0, "full": 0, "abandoned": 0}
    try:
        with chromium() if missing is None else contextlib.nullcontext() as browser:
            for round_ in range(args.rounds):
                results["A"].append(steps_per_second())
                page = None
                if browser is not None:
                    page = open_page(browser, viewer)
                    time.sleep(2.0)  # the page finishes loading
                live.attach()
                try:
                    results["B"].append(steps_per_second())
                finally:
                    live.detach()
                if page is not None:
                    # The last snapshot's refined render finishes before the next A run.
                    for renderer in list(viewer.renderers.values()):
                        wait_for(lambda r=renderer: r.next_job() is None, 120.0, "the render")
                        renders["preview"] += renderer.completed["preview"]
                        renders["full"] += renderer.completed["full"]
                        renders["abandoned"] += renderer.abandoned
                    page.close()
                    wait_for(lambda: not viewer.server.get_clients(), 30.0, "the page to close")
                print(
                    f"  round {round_ + 1}: A {results['A'][-1]:.2f}, B {results['B'][-1]:.2f} "
                    f"steps/s; {live.snapshots} snapshots so far",
                    flush=True,
                )
    finally:
        live.detach()
        viewer.stop()
    off, on = statistics.mean(results["A"]), statistics.mean(results["B"])
    every = f"every {args.view_every} steps"
    table.append(
        ("live", f"A: no viewer ({args.live_steps} steps, {args.rounds} runs)", off, "steps/s")
    )
    table.append(("live", f"B: LiveTraining {every}, {how}", on, "steps/s"))
    table.append(("live", "snapshots (model rebuilt and shown)", live.snapshots, ""))
    table.append(("live", "time in snapshots", live.snapshot_seconds, "s"))
    if missing is None:
        counts = ", ".join(f"{name} {count}" for name, count in renders.items())
        table.append(("live", f"server renders: {counts}", math.nan, ""))
    table.append(("live", "slowdown B against A", 100 * (1 - on / off), "%"))


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--gaussians", type=int, default=1_000_000, help="synthetic PLY size")
    parser.add_argument("--ply", type=Path, default=None, help="an existing 3DGS PLY instead")
    parser.add_argument("--browser", action="store_true", help="load: the page's frame rate")
    parser.add_argument("--browser-timeout", type=float, default=600.0, help="seconds")
    parser.add_argument("--frames", type=int, default=5, help="renders per size (median)")
    parser.add_argument("--nerf", type=Path, default=None, help="a NeRF checkpoint.pt")
    parser.add_argument("--nerf-steps", type=int, default=50, help="tiny NeRF's training")
    parser.add_argument("--live-steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--view-every", type=int, default=25, help="live viewer updates")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs of live runs")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest on a shared CPU)"
    )
    args = parser.parse_args()
    if args.gaussians < 1 or args.frames < 1 or args.rounds < 1 or args.threads < 1:
        raise SystemExit("--gaussians, --frames, --rounds and --threads must be >= 1")
    if args.ply is not None and not args.ply.is_file():
        raise SystemExit(f"--ply: no such file {args.ply}")
    if args.nerf is not None and not args.nerf.is_file():
        raise SystemExit(f"--nerf: no such file {args.nerf}")
    torch.set_num_threads(args.threads)
    print(f"parts: {' '.join(args.parts)}; {args.threads} torch thread(s)", flush=True)

    table: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_viewer_") as temporary:
        folder = Path(temporary)
        ply = args.ply
        if "load" in args.parts:
            print("load", flush=True)
            ply = part_load(args, folder, table)
        if "splat-render" in args.parts:
            print("splat-render", flush=True)
            part_splat_render(args, ply or synthetic_ply(args, folder), table)
        if "nerf-fps" in args.parts:
            print("nerf-fps", flush=True)
            part_nerf_fps(args, folder, table)
        if "live" in args.parts:
            print("live", flush=True)
            part_live(args, folder, table)

    print()
    width = max(len(what) for _, what, _, _ in table)
    print(f"{'part':<13} {'measurement':<{width}} {'value':>9}")
    for part, what, value, unit in table:
        shown = "" if isinstance(value, float) and math.isnan(value) else f"{value:>9.2f} {unit}"
        if isinstance(value, int):
            shown = f"{value:>9d}"
        print(f"{part:<13} {what:<{width}} {shown}".rstrip())


if __name__ == "__main__":
    main()
