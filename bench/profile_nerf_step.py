"""Where a hash-grid NeRF training step and a full-view render spend their time, at each
image resolution, with the same batch of rays.

For each --downscale (8: 100x100 lego, 4: 200x200, 1: 800x800) a model is warmed up on the
lego scene (the built-in demo scene when lego is absent) so that its occupancy grid is
realistic, then --steps training steps run under torch.profiler and the script prints the
milliseconds per step of each stage the trainer labels ("nerf.*": ray and pixel sampling,
marching through the occupancy grid, the gradient-free culling pass, shading (encoding and
MLPs), compositing, loss, backward, optimizer, grid updates averaged over their period),
the samples per ray at each stage, and the stages of rendering one held-back-size view
(rays/s). Stage times nest: "encoding" is part of "cull" and "shade".

    python bench/profile_nerf_step.py                       # 100, 200 and 800 px
    python bench/profile_nerf_step.py --downscale 1 --warmup 100 --steps 5
    python bench/profile_nerf_step.py --compare-encodings   # torch vs C++ hash encoding
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds  # noqa: E402
from quality_nerf_lego import LEGO, config_for  # noqa: E402

from mp3d.cameras import Camera, invert_rigid, random_rays  # noqa: E402
from mp3d.data.blender import load_blender  # noqa: E402
from mp3d.data.demo import write_demo_scene  # noqa: E402
from mp3d.nerf.model import NeRFModel  # noqa: E402
from mp3d.nerf.trainer import _optimizer, _train_step  # noqa: E402
from mp3d.ops.hash_encoding import hash_encode  # noqa: E402

STEP_STAGES = (
    "rays",
    "march",
    "cull",
    "shade",
    "encoding",
    "composite",
    "loss",
    "backward",
    "optimizer",
    "grid_update",
)
RENDER_STAGES = ("march", "cull", "shade", "encoding", "composite")


def load_scene(downscale: int):
    if (LEGO / "transforms_train.json").is_file():
        return "lego", load_blender(LEGO, "train", downscale, progress=False)
    scene = write_demo_scene(Path(tempfile.mkdtemp()) / "demo", progress=False)
    return "demo", load_blender(scene, "train", progress=False)


def stage_ms(prof, stages: tuple[str, ...], per: int) -> dict[str, float]:
    """Milliseconds per call of each "nerf.<stage>" label over `per` calls."""
    totals = {stage: 0.0 for stage in stages}
    for event in prof.key_averages():
        if event.key.startswith("nerf.") and event.key[5:] in totals:
            totals[event.key[5:]] += event.cpu_time_total / 1e3 / per
    return totals


def warm_model(data, config, warmup: int, generator, device):
    model = NeRFModel(config.model_spec(data))
    optimizer = _optimizer(model, config)
    model.grid.carve(data.Ks, invert_rigid(data.c2ws), data.alphas)
    for step in range(warmup):
        if step % config.grid_update_every == 0:
            model.grid.update(model.field.density, model.step_size, generator=generator)
        _train_step(model, optimizer, data, config, generator, device)
    return model, optimizer


@torch.no_grad()
def samples_per_ray(model, data, config, generator) -> tuple[float, float, float]:
    """Mean samples per ray of one training batch: marched (occupied), kept by the culling
    pass, and the dense steps the march examines."""
    origins, directions, _, _ = random_rays(
        data.Ks, data.c2ws, data.width, data.height, config.batch_rays, generator=generator
    )
    spec = model.spec
    starts, ends, rays = model.grid.march(
        origins, directions, spec.near, spec.far, model.step_size, True, generator
    )
    keep, _ = model._cull(starts, ends, rays, origins, directions, origins.shape[0])
    n = origins.shape[0]
    return starts.numel() / n, int(keep.sum()) / n, float(spec.march_steps)


def profile_resolution(downscale: int, args, device) -> dict:
    name, data = load_scene(downscale)
    config = config_for("cpu", minutes=None, steps=10**6)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model, optimizer = warm_model(data, config, args.warmup, generator, device)
    warm_s = time.perf_counter() - start

    def steps() -> list[float]:
        """args.steps training steps with the trainer's grid updates -> their wall times."""
        times = []
        for step in range(args.steps):
            begin = time.perf_counter()
            if step % config.grid_update_every == 0:
                model.grid.update(model.field.density, model.step_size, generator=generator)
            _train_step(model, optimizer, data, config, generator, device)
            times.append(time.perf_counter() - begin)
        return times

    steps()  # not timed: first calls after warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        times = steps()
    stages = stage_ms(prof, STEP_STAGES, args.steps)
    # One grid update per grid_update_every steps: charge each step its share.
    updates = len(range(0, args.steps, config.grid_update_every))
    stages["grid_update"] *= args.steps / updates / config.grid_update_every
    marched, kept, dense = samples_per_ray(model, data, config, generator)
    row = {
        "name": f"{name} {data.width}px",
        "warmup_s": warm_s,
        "step_ms": 1e3 * statistics.median(times),
        "stages": stages,
        "marched": marched,
        "kept": kept,
        "dense": dense,
        "occupied": float(model.grid.occupied.float().mean()),
    }
    if args.render:
        model.eval()
        camera = Camera(data.Ks[0], invert_rigid(data.c2ws[0]), data.width, data.height)
        begin = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.render(camera)
        seconds = time.perf_counter() - begin
        row["render_s"] = seconds
        row["render_rays_per_s"] = data.width * data.height / seconds
        row["render_stages"] = stage_ms(prof, RENDER_STAGES, 1)
        model.train()
    if args.compare_encodings:
        row["encodings"] = compare_encodings(
            model, optimizer, data, config, generator, args, device
        )
    return row


def compare_encodings(model, optimizer, data, config, generator, args, device) -> list[tuple]:
    """Step time and the encoding's share of it with the torch and the C++ hash encoding."""
    encoding = model.field.encoding
    calls = []  # (points, grad enabled) of every encoding call in the last step
    handle = encoding.register_forward_pre_hook(
        lambda module, inputs: calls.append((inputs[0].detach(), torch.is_grad_enabled()))
    )
    rows = []
    for impl in ("torch", "cpp"):
        encoding.impl = impl
        times = []
        for _ in range(args.steps):
            calls.clear()
            start = time.perf_counter()
            _train_step(model, optimizer, data, config, generator, device)
            times.append(time.perf_counter() - start)
        table = encoding.embeddings.detach().clone().requires_grad_()

        def replay(table=table, impl=impl):
            """The step's encoding calls again: culling pass forward only, shading both ways."""
            table.grad = None
            for points, grad in calls:
                with torch.set_grad_enabled(grad):
                    features = hash_encode(
                        points, table, encoding.resolutions, encoding.offsets, impl=impl
                    )
                    if grad:
                        features.sum().backward()

        step_s = statistics.median(times)
        encode_s = median_seconds(replay, device, repeats=5, warmup=1)
        n_points = "+".join(str(points.shape[0]) for points, _ in calls)
        rows.append((impl, step_s, encode_s, n_points))
    handle.remove()
    encoding.impl = "auto"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downscale", type=int, nargs="+", default=[8, 4, 1])
    parser.add_argument("--warmup", type=int, default=200, help="training steps before timing")
    parser.add_argument("--steps", type=int, default=16, help="profiled training steps")
    parser.add_argument("--no-render", dest="render", action="store_false")
    parser.add_argument("--compare-encodings", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    rows = [profile_resolution(d, args, device) for d in args.downscale]
    config = config_for("cpu", minutes=None, steps=1)
    print(
        f"hash NeRF, {config.batch_rays} rays per step, {torch.get_num_threads()} threads, "
        f"after {args.warmup} warm-up steps; ms per training step ({args.steps} profiled)"
    )
    header = f"{'stage':<13}" + "".join(f"{row['name']:>14}" for row in rows)
    print(header)
    print(f"{'step (wall)':<13}" + "".join(f"{row['step_ms']:>14.1f}" for row in rows))
    for stage in STEP_STAGES:
        print(f"{stage:<13}" + "".join(f"{row['stages'][stage]:>14.1f}" for row in rows))
    base = rows[0]["step_ms"]
    print(f"{'vs first':<13}" + "".join(f"{row['step_ms'] / base:>13.2f}x" for row in rows))
    print("samples per ray")
    for key, label in (("dense", "march steps"), ("marched", "occupied"), ("kept", "after cull")):
        print(f"{label:<13}" + "".join(f"{row[key]:>14.1f}" for row in rows))
    print(f"{'grid occupied':<13}" + "".join(f"{row['occupied']:>14.1%}" for row in rows))
    if args.render:
        print("rendering one training view (no autograd): ms per stage")
        for stage in RENDER_STAGES:
            print(f"{stage:<13}" + "".join(f"{row['render_stages'][stage]:>14.0f}" for row in rows))
        print(f"{'total s':<13}" + "".join(f"{row['render_s']:>14.2f}" for row in rows))
        print(f"{'rays/s':<13}" + "".join(f"{row['render_rays_per_s']:>14.0f}" for row in rows))
    if args.compare_encodings:
        print(f"{'resolution':<14}{'encoding':>9}{'step ms':>9}{'encoding ms':>12}{'share':>7}")
        for row in rows:
            for impl, step_s, encode_s, n_points in row["encodings"]:
                print(
                    f"{row['name']:<14}{impl:>9}{step_s * 1e3:>9.1f}{encode_s * 1e3:>12.1f}"
                    f"{100 * encode_s / step_s:>6.1f}%  points {n_points}"
                )


if __name__ == "__main__":
    main()
