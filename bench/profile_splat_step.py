"""Where a 3D Gaussian splatting training step and a full-view render spend their time, at
each image resolution.

Gaussians start as the quality script starts them (20k in the lego masks' visual hull) and
are trained for --warmup steps on the CPU schedule of bench/quality_splat_lego.py at
--warmup-downscale (cheap: the Gaussians do not depend on the image size), densification
included, with every SH band active from then on. The same Gaussians are then trained at
each --downscale (4: 200x200 lego, 2: 400x400, 1: 800x800): --steps steps timed without
the profiler (wall), then --steps more under torch.profiler, and the script prints the
milliseconds per step of each stage the code labels ("splat.*"): projection, SH colours,
tile binning and depth sorting, rasterization, the rest of rendering (checks, background),
loss with SSIM, backward (rasterization, projection, SH and the rest: SSIM and the loss),
the optimizer, the densification statistics, and one densify-and-prune (with the screen
size test) charged to each step of its period. Then the time of rendering one training view
without autograd (ms, Mpixels/s). Stages nest as indented. Last, what these step times
make of a 10-minute run of the quality script at each size (at this Gaussian count, on
--threads threads): steps, and steps before half-way (the densification phase: a round
every 100), at full size throughout and coarse to fine (its CPU schedule, which renders
the early steps at the smaller sizes measured here).

    python bench/profile_splat_step.py --threads 1            # 200, 400 and 800 px
    python bench/profile_splat_step.py --downscale 1 --steps 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_splat_lego import CPU_MINUTES, LEGO, coarse_to_fine, config_for  # noqa: E402

from mp3d.cameras import invert_rigid  # noqa: E402
from mp3d.data.scene import load_scene  # noqa: E402
from mp3d.splat.density import DensityStats, densify_and_prune  # noqa: E402
from mp3d.splat.pipeline import INIT_POINTS_CPU, initial_gaussians  # noqa: E402
from mp3d.splat.trainer import (  # noqa: E402
    _optimizer,
    _set_learning_rates,
    _train_step,
    scene_extent,
)

# (label, indent): the rows of the step table, nested as the labels nest.
STEP_STAGES = (
    ("render", 0),
    ("project", 1),
    ("sh", 1),
    ("bin", 1),
    ("rasterize", 1),
    ("loss", 0),
    ("ssim", 1),
    ("backward", 0),
    ("rasterize_backward", 1),
    ("project_backward", 1),
    ("sh_backward", 1),
    ("optimizer", 0),
    ("stats", 0),
    ("densify", 0),
)
W = 14  # column width
RENDER_STAGES = (("render", 0), ("project", 1), ("sh", 1), ("bin", 1), ("rasterize", 1))


def stage_ms(prof, stages, per: int) -> dict[str, float]:
    """Milliseconds per call of each "splat.<stage>" label over `per` calls."""
    totals = {stage: 0.0 for stage, _ in stages}
    for event in prof.key_averages():
        if event.key.startswith("splat.") and event.key[6:] in totals:
            totals[event.key[6:]] += event.cpu_time_total / 1e3 / per
    return totals


class Trainer:
    """The trainer's state (Gaussians, Adam, density control) outside its loop, so steps can
    be run one at a time on any view size; steps count on from the warm-up."""

    def __init__(self, views, config, n_points: int, seed: int = 0):
        self.config = config
        self.model = initial_gaussians(views, n_points, seed=seed).train()
        self.extent = scene_extent(views.c2ws)
        self.optimizer = _optimizer(self.model, config, self.extent)
        self.strategy = config.density_control(self.extent)
        self.strategy.stats = DensityStats.zeros(len(self.model))
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.use(views)

    def use(self, views) -> None:
        """Trains on `views` from now on."""
        self.views = views
        self.viewmats = invert_rigid(views.c2ws.double()).float()
        self.background = views.background_rgb.float()

    def run(self, steps: int) -> list[float]:
        """Runs `steps` training steps; returns each one's wall seconds."""
        times = []
        for _ in range(steps):
            begin = time.perf_counter()
            self.step += 1
            progress = self.step / self.config.steps
            _set_learning_rates(self.optimizer, self.config, self.extent, progress)
            view = int(torch.randint(len(self.views), (1,), generator=self.generator))
            _train_step(
                self.model,
                self.optimizer,
                self.strategy,
                self.config,
                (
                    self.viewmats[view],
                    self.views.Ks[view].float(),
                    self.views.images[view],
                    self.background,
                ),
                self.step,
                progress,
                self.generator,
            )
            times.append(time.perf_counter() - begin)
        return times

    def copy(self) -> Trainer:
        """An independent copy (Gaussians, Adam moments and statistics together)."""
        return copy.deepcopy(self)

    def densify_seconds(self) -> tuple[float, dict[str, int]]:
        """Wall seconds of one densify-and-prune on a copy of the current state (with the
        screen-size test, as after the first opacity reset), and what it did."""
        other = self.copy()
        strategy = other.strategy
        begin = time.perf_counter()
        with record_function("splat.densify"):
            counts = densify_and_prune(
                other.model,
                other.optimizer,
                strategy.stats,
                strategy.scene_extent,
                grad_threshold=strategy.grad_threshold,
                percent_dense=strategy.percent_dense,
                min_opacity=strategy.min_opacity,
                max_screen_size=strategy.max_screen_size,
                generator=other.generator,
            )
        return time.perf_counter() - begin, counts


def profile_resolution(warm: Trainer, downscale: int, args) -> dict:
    views = load_scene(args.data, downscale, holdout=8, progress=False)[0]
    trainer = warm.copy()
    trainer.use(views)
    trainer.run(2)  # not timed: first calls at this size
    wall = trainer.run(args.steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.run(args.steps)
    stages = stage_ms(prof, STEP_STAGES, args.steps)
    densify_s, counts = trainer.densify_seconds()
    stages["densify"] = 1e3 * densify_s / trainer.config.densify_every
    row = {
        "name": f"{views.width}px",
        "width": views.width,
        "step_ms": 1e3 * statistics.median(wall),
        "stages": stages,
        "gaussians": len(trainer.model),
        "densify_counts": counts,
    }
    model = trainer.model.eval()
    camera = views.camera(0)
    background = trainer.background
    with torch.no_grad():
        model.render(camera, background)  # first call at this size
        times = []
        for _ in range(3):
            begin = time.perf_counter()
            model.render(camera, background)
            times.append(time.perf_counter() - begin)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.render(camera, background)
    seconds = statistics.median(times)
    row["render_ms"] = 1e3 * seconds
    row["render_mpix_per_s"] = views.width * views.height / seconds / 1e6
    row["render_stages"] = stage_ms(prof, RENDER_STAGES, 1)
    return row


def run_estimate(rows, row, schedule) -> tuple[float, float] | None:
    """(steps, steps before half-way) of a CPU_MINUTES run on row's views under `schedule`
    ((fraction, factor), ...), from the rows' step times; None when a size is not measured."""
    step_ms = {r["width"]: r["step_ms"] for r in rows}
    phases, start = [], 0.0
    for fraction, factor in (*schedule, (1.0, 1)):
        if row["width"] % factor or row["width"] // factor not in step_ms:
            return None
        phases.append((start, fraction, step_ms[row["width"] // factor]))
        start = fraction
    seconds = 60 * CPU_MINUTES
    total = sum((end - begin) * seconds * 1e3 / ms for begin, end, ms in phases)
    early = sum(
        (min(end, 0.5) - begin) * seconds * 1e3 / ms for begin, end, ms in phases if begin < 0.5
    )
    return total, early


def print_stages(rows, stages, key: str, digits: int = 1) -> None:
    for stage, indent in stages:
        label = "  " * indent + stage
        print(f"{label:<20}" + "".join(f"{row[key][stage]:>{W}.{digits}f}" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LEGO)
    parser.add_argument("--downscale", type=int, nargs="+", default=[4, 2, 1])
    parser.add_argument("--warmup", type=int, default=300, help="training steps before timing")
    parser.add_argument("--warmup-downscale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed and profiled steps")
    parser.add_argument("--init-points", type=int, default=INIT_POINTS_CPU)
    parser.add_argument("--sh-degree", type=int, default=3, help="active SH degree when timing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not (args.data / "transforms_train.json").is_file():
        raise SystemExit(f"lego scene not found at {args.data} (see shared/data/README.md)")
    config = config_for(False, steps=10**6, minutes=None, impl="auto")
    views = load_scene(args.data, args.warmup_downscale, holdout=8, progress=False)[0]
    warm = Trainer(views, config, args.init_points)
    begin = time.perf_counter()
    warm.run(args.warmup)
    warm_s = time.perf_counter() - begin
    warm.model.active_sh_degree = args.sh_degree
    rows = [profile_resolution(warm, d, args) for d in args.downscale]
    print(
        f"3DGS lego, {torch.get_num_threads()} threads; {args.init_points} Gaussians -> "
        f"{len(warm.model)} after {args.warmup} warm-up steps at {views.width}px "
        f"({warm_s:.0f} s), SH degree {args.sh_degree}; ms per training step "
        f"({args.steps} timed, {args.steps} profiled)"
    )
    print(f"{'stage':<20}" + "".join(f"{row['name']:>{W}}" for row in rows))
    print(f"{'step (wall)':<20}" + "".join(f"{row['step_ms']:>{W}.1f}" for row in rows))
    print_stages(rows, STEP_STAGES, "stages")
    base = rows[0]["step_ms"]
    print(f"{'vs first':<20}" + "".join(f"{row['step_ms'] / base:>{W - 1}.2f}x" for row in rows))
    print(f"{'steps/s':<20}" + "".join(f"{1e3 / row['step_ms']:>{W}.2f}" for row in rows))
    print(f"{'gaussians':<20}" + "".join(f"{row['gaussians']:>{W}d}" for row in rows))
    print(
        f"{'densify +/-':<20}"
        + "".join(
            f"{'+' + str(c['cloned'] + c['split']) + '/-' + str(c['pruned']):>{W}}"
            for c in (row["densify_counts"] for row in rows)
        )
    )
    print("rendering one training view (no autograd): ms per stage")
    print_stages(rows, RENDER_STAGES, "render_stages")
    print(f"{'total ms (wall)':<20}" + "".join(f"{row['render_ms']:>{W}.1f}" for row in rows))
    print(f"{'Mpixels/s':<20}" + "".join(f"{row['render_mpix_per_s']:>{W}.2f}" for row in rows))
    print(f"a {CPU_MINUTES:g}-minute run at these step times: steps (before half-way)")
    for label, schedule_of in (("full size", lambda w: ()), ("coarse to fine", coarse_to_fine)):
        cells = []
        for row in rows:
            estimate = run_estimate(rows, row, schedule_of(row["width"]))
            cells.append("-" if estimate is None else f"{estimate[0]:.0f} ({estimate[1]:.0f})")
        print(f"{label:<20}" + "".join(f"{cell:>{W}}" for cell in cells))


if __name__ == "__main__":
    main()
